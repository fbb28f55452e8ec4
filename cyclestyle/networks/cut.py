"""CUT's networks (Park et al., ECCV 2020; official code taesungp/contrastive-unpaired-translation):
the PatchNCE projection heads and the generator's encoder features, and readers of official files.

The generator is our `ResnetGenerator` with `antialias=True, antialias_up=True` (the official
default; `resnet.py`), so translation and export use the plain image -> image network. PatchNCE
reads the outputs of chosen entries of its layer list `generator.model`, counted as the official
code counts them. With anti-aliasing and 9 blocks the default layers 0, 4, 8, 12, 16 are the
padded input (3 channels), the first downsampling conv (2 ngf, full size), the second (4 ngf,
half size) and the outputs of residual blocks 1 and 5 (4 ngf, quarter size):

    g = ResnetGenerator(ngf=64, n_blocks=9, antialias=True, antialias_up=True)
    channels = feature_channels(g, [0, 4, 8, 12, 16])      # [3, 128, 256, 256, 256]
    f = PatchHeads(channels)                               # official netF: mlp_0 ... mlp_4, built now
    feats = encoder_features(g, x, [0, 4, 8, 12, 16])      # [(B, 3, H+6, W+6), (B, 128, H, W), ...]
    ids = draw_patch_ids(feats, 256, torch.Generator().manual_seed(0))
    z = f([gather_patches(t, i) for t, i in zip(feats, ids)])  # per layer (B*256, 256), unit length

Official files are bare state dicts: `latest_net_G.pth` loads into
`ResnetGenerator(**infer_cut_generator(state))`, `latest_net_D.pth` into
`build_discriminator(**infer_cut_discriminator(state))`, `latest_net_F.pth` into
`PatchHeads(**infer_cut_heads(state))`, all strictly (the anti-aliasing filters are persistent
buffers named `filt` there and here).
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import torch
import torch.nn as nn

from .resnet import ResnetGenerator

__all__ = [
    "PatchHeads", "check_nce_layers", "draw_patch_ids", "encoder_features", "feature_channels", "gather_patches",
    "infer_cut_discriminator", "infer_cut_generator", "infer_cut_heads", "is_cut_generator", "l2_normalize",
    "run_layers",
]


def check_nce_layers(generator: ResnetGenerator, layers: Sequence[int]) -> list[int]:
    """`layers` as a list of ints, or a ValueError naming model.nce_layers: they must be increasing
    indices into `generator.model` (the official code stops its encoder pass at the last one)."""
    layers = [int(i) for i in layers]
    count = len(generator.model)
    if not layers or any(b <= a for a, b in zip(layers, layers[1:])) or layers[0] < 0 or layers[-1] >= count:
        raise ValueError(f"model.nce_layers={layers} must be increasing indices into the generator's {count} layers "
                         f"(0 .. {count - 1}); the official default is 0,4,8,12,16")
    return layers


def feature_channels(generator: ResnetGenerator, layers: Sequence[int]) -> list[int]:
    """Channels of the output of each of `layers`, read off the layer list (no forward pass):
    only convolutions change the channel count."""
    convs = [m for m in generator.model if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    channels, after = convs[0].in_channels, []
    for layer in generator.model:
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            channels = layer.out_channels
        after.append(channels)
    return [after[i] for i in check_nce_layers(generator, layers)]


def encoder_features(generator: ResnetGenerator, x: torch.Tensor, layers: Sequence[int]) -> list[torch.Tensor]:
    """The outputs of `generator.model[i]` for i in `layers` (increasing), running the layers only
    up to the last of them (the official `netG(x, layers, encode_only=True)`)."""
    return run_layers(generator, x, layers, encode_only=True)[1]


def run_layers(generator: ResnetGenerator, x: torch.Tensor, layers: Sequence[int], *, encode_only: bool = False
               ) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
    """(the generator's output, or None with `encode_only`; the outputs of `generator.model[i]` for
    i in `layers`). As in the official code the ReLUs work in place, so a feature taken just before a
    ReLU (e.g. a norm's output without anti-aliasing) is seen after it."""
    wanted, feats = set(layers), []
    for i, layer in enumerate(generator.model):
        x = layer(x)
        if i in wanted:
            feats.append(x)
        if encode_only and i == layers[-1]:
            return None, feats
    return x, feats


def draw_patch_ids(feats: Sequence[torch.Tensor], num_patches: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Per feature map (B, C, H, W): `num_patches` distinct locations (all H*W if fewer), drawn with
    `generator` on the CPU and shared by every image of the batch, as the official PatchSampleF."""
    ids = []
    for feat in feats:
        locations = feat.shape[2] * feat.shape[3]
        ids.append(torch.randperm(locations, generator=generator)[:num_patches].to(feat.device, non_blocking=True))
    return ids


def gather_patches(feat: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) features at flat locations `ids` (P,) -> (B * P, C), image-major."""
    return feat.flatten(2).index_select(2, ids).transpose(1, 2).flatten(0, 1)


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    """Rows to unit length, in fp32, as the official `Normalize`: x / (||x|| + 1e-7)."""
    x = x.float()
    return x / (x.norm(dim=1, keepdim=True) + 1e-7)


class PatchHeads(nn.Module):
    """The official PatchSampleF's projection heads: per feature layer i, `mlp_i` = Linear(C_i,
    units), ReLU, Linear(units, units); outputs L2-normalised. Built from the channel counts, so
    every parameter exists from construction (the official builds them at the first forward)."""

    def __init__(self, channels: Sequence[int], *, units: int = 256) -> None:
        super().__init__()
        self.channels, self.units = [int(c) for c in channels], int(units)
        for i, c in enumerate(self.channels):
            setattr(self, f"mlp_{i}", nn.Sequential(nn.Linear(c, units), nn.ReLU(), nn.Linear(units, units)))

    def forward(self, samples: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Per layer (N, C_i) sampled features -> (N, units) unit vectors (fp32)."""
        return [l2_normalize(getattr(self, f"mlp_{i}")(x)) for i, x in enumerate(samples)]


# --- official files ---------------------------------------------------------------------------
_BLOCK = re.compile(r"^model\.(\d+)\.conv_block\.")
_LAYER_WEIGHT = re.compile(r"^model\.(\d+)\.weight$")


def _norm(state: dict) -> str:
    """Batch norm has 1-D affine weights; instance norm (affine=False) has no norm weights at all."""
    return "batch" if any(k.endswith(".weight") and v.ndim == 1 for k, v in state.items()) else "instance"


def is_cut_generator(state: dict) -> bool:
    """An official CUT ResNet generator with anti-aliased down- or upsampling (blur filters saved as
    `model.N.filt`). Without either it is laid out exactly as a reference CycleGAN generator."""
    return isinstance(state, dict) and "model.1.weight" in state and any(
        isinstance(k, str) and k.startswith("model.") and k.endswith(".filt") for k in state)


def infer_cut_generator(state: dict) -> dict:
    """`ResnetGenerator` keyword arguments (ngf, n_blocks, antialias, antialias_up, norm, dropout,
    in/out channels) that reproduce an official CUT `latest_net_G.pth` (a bare state dict)."""
    first = state.get("model.1.weight") if isinstance(state, dict) else None
    if not isinstance(first, torch.Tensor) or first.ndim != 4:
        raise ValueError("not a CUT ResNet generator: expected keys like 'model.1.weight' (ngf, in, 7, 7), found "
                         f"{sorted(map(str, state))[:4] if isinstance(state, dict) else type(state).__name__}")
    antialias = "model.7.filt" in state  # conv, norm, ReLU, blur at 4..7 (else a stride-2 conv at 4, 7)
    start = 12 if antialias else 10
    blocks = sorted({int(m.group(1)) for k in state if (m := _BLOCK.match(str(k)))})
    if blocks != list(range(start, start + len(blocks))):
        raise ValueError(f"not a CUT ResNet generator: residual blocks at model.{blocks[:3]}..., expected them "
                         f"from model.{start} ({'with' if antialias else 'without'} anti-aliased downsampling)")
    up = start + len(blocks)
    antialias_up = f"model.{up}.filt" in state  # blur-upsample then conv (else a transposed conv)
    if not antialias_up and f"model.{up}.weight" not in state:
        raise ValueError(f"not a CUT ResNet generator: no upsampling layer at model.{up}")
    last = max(int(m.group(1)) for k in state if (m := _LAYER_WEIGHT.match(str(k))) and state[k].ndim == 4)
    return {
        "ngf": int(first.shape[0]),
        "n_blocks": len(blocks),
        "antialias": antialias,
        "antialias_up": antialias_up,
        "norm": _norm(state),
        "dropout": any(".conv_block.6." in str(k) for k in state),
        "in_channels": int(first.shape[1]),
        "out_channels": int(state[f"model.{last}.weight"].shape[0]),
    }


def infer_cut_discriminator(state: dict) -> dict:
    """`build_discriminator` keyword arguments for an official CUT `latest_net_D.pth`
    (PatchGAN with or without anti-aliasing, or pixel)."""
    if not isinstance(state, dict):
        raise ValueError(f"not a CUT discriminator state dict: {type(state).__name__}")
    if "net.0.weight" in state:
        return {"name": "pixel", "ndf": int(state["net.0.weight"].shape[0]), "norm": _norm(state),
                "in_channels": int(state["net.0.weight"].shape[1])}
    if "model.0.weight" not in state:
        raise ValueError("not a CUT PatchGAN discriminator: expected 'model.0.weight', found "
                         f"{sorted(map(str, state))[:4]}")
    convs = [k for k in state if _LAYER_WEIGHT.match(str(k)) and state[k].ndim == 4]
    n_layers = len(convs) - 2  # first conv, n_layers - 1 downsampling ones, one stride-1, the output conv
    return {"name": "basic" if n_layers == 3 else "n_layers", "ndf": int(state["model.0.weight"].shape[0]),
            "n_layers": n_layers, "norm": _norm(state), "in_channels": int(state["model.0.weight"].shape[1]),
            "antialias": "model.2.filt" in state}


def infer_cut_heads(state: dict) -> dict:
    """`PatchHeads` keyword arguments (channels per layer, units) for an official `latest_net_F.pth`."""
    firsts = {}
    for key, value in (state.items() if isinstance(state, dict) else ()):
        if (m := re.fullmatch(r"mlp_(\d+)\.0\.weight", str(key))) and getattr(value, "ndim", 0) == 2:
            firsts[int(m.group(1))] = value
    if not firsts or sorted(firsts) != list(range(len(firsts))):
        raise ValueError("not CUT PatchNCE heads (netF): expected keys mlp_0.0.weight, mlp_1.0.weight, ...")
    return {"channels": [int(firsts[i].shape[1]) for i in range(len(firsts))], "units": int(firsts[0].shape[0])}
