"""Generators and discriminators saved by the reference CycleGAN (junyanz/pytorch-CycleGAN-and-pix2pix):
bare `state_dict`s such as the zoo's `latest_net_G.pth`. The architecture is read off the keys.
"""
from __future__ import annotations

import re

import torch

from ..networks import UNET_LEVELS

STALE_NORM_KEYS = ("running_mean", "running_var", "num_batches_tracked")
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


def drop_stale_norm_keys(state: dict[str, torch.Tensor], norm: str) -> dict[str, torch.Tensor]:
    """Older reference files keep InstanceNorm running statistics our (and today's) modules lack."""
    if norm == "batch":
        return dict(state)
    return {k: v for k, v in state.items() if not k.endswith(STALE_NORM_KEYS)}


# The official U-GAT-IT (znxlwm/UGATIT-pytorch) saves one dict per checkpoint; our U-GAT-IT model
# keeps the same networks under these attribute names.
UGATIT_NETWORKS = {"genA2B": "g_a", "genB2A": "g_b", "disGA": "d_ga", "disGB": "d_gb", "disLA": "d_la", "disLB": "d_lb"}


def is_ugatit_params(checkpoint) -> bool:
    """An official U-GAT-IT `<dataset>_params_<step>.pt` / `_params_latest.pt` file."""
    return isinstance(checkpoint, dict) and "genA2B" in checkpoint and "genB2A" in checkpoint


def read_ugatit_params(params: dict, *, source: str) -> tuple[dict[str, dict[str, torch.Tensor]], dict, dict]:
    """(state dict per network attribute, generator A->B settings, discriminator settings) of an
    official U-GAT-IT checkpoint; every network is loaded strictly into ours to check it fits."""
    from ..networks.ugatit import UgatitDiscriminator, UgatitGenerator, infer_ugatit_generator

    missing = [name for name in UGATIT_NETWORKS if not isinstance(params.get(name), dict)]
    if missing:
        raise ValueError(f"{source}: not a whole U-GAT-IT checkpoint: {', '.join(missing)} missing "
                         f"(expected {', '.join(UGATIT_NETWORKS)})")
    try:
        generator = infer_ugatit_generator(params["genA2B"])
        ndf = int(params["disGA"]["model.1.weight_orig"].shape[0])  # spectral-normed first conv (ndf, in, 4, 4)
    except (ValueError, KeyError, AttributeError, IndexError) as error:
        raise ValueError(f"{source}: {error}") from None
    layers = {name: 1 + sum(1 for k in params[name] if re.fullmatch(r"model\.\d+\.weight_orig", k))
              for name in ("disGA", "disGB", "disLA", "disLB")}  # n_layers - 1 trunk convs (official: 7 and 5)
    channels = {"A": generator["in_channels"], "B": generator["out_channels"]}
    reverse = {**generator, "in_channels": generator["out_channels"], "out_channels": generator["in_channels"]}
    nets = {"genA2B": UgatitGenerator(**generator), "genB2A": UgatitGenerator(**reverse)}
    nets.update({name: UgatitDiscriminator(in_channels=channels[name[-1]], ndf=ndf, n_layers=depth)
                 for name, depth in layers.items()})
    states = {}
    for name, net in nets.items():
        try:
            net.load_state_dict(params[name], strict=True)
        except RuntimeError as error:
            raise ValueError(f"{source}: {name} does not fit a U-GAT-IT network with {generator}: "
                             f"{str(error).splitlines()[0]}") from None
        states[UGATIT_NETWORKS[name]] = net.state_dict()
    if layers["disGA"] != layers["disGB"] or layers["disLA"] != layers["disLB"]:
        raise ValueError(f"{source}: the two domains' discriminators differ in depth ({layers})")
    return states, generator, {"ndf": ndf, "global_layers": layers["disGA"], "local_layers": layers["disLA"]}
