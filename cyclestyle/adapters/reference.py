"""The reference CycleGAN's files (junyanz/pytorch-CycleGAN-and-pix2pix): generators and
discriminators saved as bare `state_dict`s, `{epoch}_net_{G_A|G_B|D_A|D_B}.pth` or the zoo's
`latest_net_G.pth`. The architecture is read off the keys; the result is a cyclegan record.
"""
from __future__ import annotations

import re

import torch

from ..checkpoints import build_network
from ..models import cyclegan
from ..networks import UNET_LEVELS, build_discriminator
from ..networks.layers import drop_stale_norm_keys
from ..record import CYCLEGAN_BUILDER, TranslatorSpec, new_checkpoint
from .base import Adapter, File, tensors_only

_RESNET_BLOCK = re.compile(r"^model\.(\d+)\.conv_block\.")


def _norm(state: dict[str, torch.Tensor]) -> str:
    """Batch norm has 1-D affine weights; instance norm (affine=False) has no norm weights at all."""
    return "batch" if any(k.endswith(".weight") and v.ndim == 1 for k, v in state.items()) else "instance"


def infer_generator(state: dict[str, torch.Tensor]) -> dict:
    """Keyword arguments of `build_generator` that reproduce the network saved in `state`.

    Norm `none` and `instance` save the same keys; `instance` (the reference default) is assumed.
    """
    if "model.1.weight" in state and state["model.1.weight"].ndim == 4:  # ResNet: pad, c7s1-ngf, ...
        blocks = {int(m.group(1)) for k in state if (m := _RESNET_BLOCK.match(k))}
        if len(blocks) not in (6, 9):
            raise ValueError(f"a ResNet generator with {len(blocks)} residual blocks is not supported (6 or 9)")
        first = state["model.1.weight"]  # (ngf, in, 7, 7)
        return {
            "name": f"resnet_{len(blocks)}blocks",
            "ngf": first.shape[0],
            "in_channels": first.shape[1],
            "out_channels": state[f"model.{max(_resnet_layers(state))}.weight"].shape[0],
            "norm": _norm(state),
            "dropout": any(".conv_block.6." in k for k in state),
        }
    if "model.model.0.weight" in state:  # U-Net: nested skip blocks, one "model." per level
        levels = max(k.count("model.") for k in state) - 1
        names = {v: k for k, v in UNET_LEVELS.items()}
        if levels not in names:
            raise ValueError(f"a U-Net generator with {levels} levels is not supported ({sorted(names)})")
        first = state["model.model.0.weight"]  # (ngf, in, 4, 4)
        outer_up = [k for k in state if re.fullmatch(r"model\.model\.\d+\.weight", k)][-1]
        return {
            "name": names[levels],
            "ngf": first.shape[0],
            "in_channels": first.shape[1],
            "out_channels": state[outer_up].shape[1],  # ConvTranspose2d weight: (in, out, k, k)
            "norm": _norm(state),
            "dropout": False,  # U-Net dropout adds no keys and does nothing at inference; flags override
        }
    raise ValueError(
        "not a reference CycleGAN generator: expected ResNet keys like 'model.1.weight' or U-Net keys like "
        f"'model.model.0.weight', found {sorted(state)[:4]}"
    )


def _resnet_layers(state: dict[str, torch.Tensor]) -> list[int]:
    return [int(k.split(".")[1]) for k in state if re.fullmatch(r"model\.\d+\.weight", k)]


def infer_discriminator(state: dict[str, torch.Tensor]) -> dict:
    """Keyword arguments of `build_discriminator` for a reference PatchGAN or pixel discriminator."""
    if "net.0.weight" in state:
        return {"name": "pixel", "ndf": state["net.0.weight"].shape[0], "norm": _norm(state)}
    convs = [k for k, v in state.items() if re.fullmatch(r"model\.\d+\.weight", k) and v.ndim == 4]
    if "model.0.weight" not in state:
        raise ValueError(f"not a reference CycleGAN discriminator: found keys {sorted(state)[:4]}")
    n_layers = len(convs) - 2  # first conv, n_layers - 1 strided, one stride-1, output conv
    return {"name": "basic" if n_layers == 3 else "n_layers", "ndf": state["model.0.weight"].shape[0],
            "n_layers": n_layers, "norm": _norm(state)}


def generator_from_state(state, overrides: dict | None = None, *, source: str) -> tuple[torch.nn.Module, dict]:
    """(generator, its `build_generator` arguments): the network `state` describes (with the
    `overrides` that are set), loaded strictly. ValueError naming `source` for anything that does not fit."""
    if not tensors_only(state):
        raise ValueError(f"{source}: not a generator state_dict (a dict of named tensors)")
    try:
        spec = {**infer_generator(state), **{k: v for k, v in (overrides or {}).items() if v is not None}}
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None
    net = build_network(TranslatorSpec(module="", builder=CYCLEGAN_BUILDER, kwargs=spec), source=source)
    try:
        net.load_state_dict(drop_stale_norm_keys(state, spec["norm"]), strict=True)
    except RuntimeError as error:
        raise ValueError(f"{source}: the weights do not fit a {spec} generator: {error}") from None
    return net, spec


def _discriminator(file: File) -> tuple[torch.nn.Module, dict]:
    state = file.state
    if not tensors_only(state):
        raise ValueError(f"{file.name}: not a discriminator state_dict (a dict of named tensors)")
    try:
        spec = infer_discriminator(state)
    except ValueError as error:
        raise ValueError(f"{file.name}: {error}") from None
    net = build_discriminator(**spec)
    try:
        net.load_state_dict(drop_stale_norm_keys(state, spec["norm"]), strict=True)
    except RuntimeError as error:
        raise ValueError(f"{file.name}: the weights do not fit a {spec} discriminator: {error}") from None
    return net, spec


def convert(files: dict[str, File], *, overrides: dict | None = None) -> dict:
    """A cyclegan checkpoint from G_A (required), G_B, D_A, D_B. One generator alone (what translate
    runs) gives the A -> B translator only; both discriminators or neither."""
    state_dict, specs = {}, {}
    for prefix in ("g_a", "g_b"):
        if prefix in files:
            net, specs[prefix] = generator_from_state(files[prefix].state, overrides, source=files[prefix].name)
            state_dict.update({f"{prefix}.{k}": v for k, v in net.state_dict().items()})
            multiple = net.size_multiple
    if len(set(map(str, specs.values()))) > 1:
        raise ValueError(f"G_A ({specs['g_a']}) and G_B ({specs['g_b']}) differ; cyclestyle uses one generator architecture")
    hparams = {"generator": specs["g_a"]}
    if ("d_a" in files) != ("d_b" in files):
        raise ValueError("give both --d-a and --d-b, or neither")
    for prefix in ("d_a", "d_b"):
        if prefix in files:
            net, hparams["discriminator"] = _discriminator(files[prefix])
            state_dict.update({f"{prefix}.{k}": v for k, v in net.state_dict().items()})
    translators = {d: spec for d, spec in cyclegan.translator_specs(specs["g_a"], size_multiple=multiple).items()
                   if spec.module in specs}
    return new_checkpoint("cyclegan", translators, state_dict, hparams,
                          imported_from={role: file.name for role, file in files.items()})


ADAPTER = Adapter(
    name="cyclegan", title="reference CycleGAN generator (junyanz/pytorch-CycleGAN-and-pix2pix .pth)",
    roles=("g_a", "g_b", "d_a", "d_b"), required=("g_a",), recognises=tensors_only, convert=convert,
    one_way=True, takes_overrides=True)
