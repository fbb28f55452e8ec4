"""Johnson et al.'s image transformation network (ECCV 2016, "Perceptual Losses for Real-Time Style
Transfer"), and its conditional-instance-norm variant (Dumoulin et al., ICLR 2017, "A Learned
Representation for Artistic Style") that holds several styles in one network.

    net = TransformerNet()                       # one style: net(x), x (B, 3, H, W) in [-1, 1]
    net = TransformerNet(n_styles=4)             # four styles: net(x, mix), mix (B, 4) style weights
    StyleMixed(net, [0, 1, 0, 0])(x)             # one style (or a blend) bound: image -> image again

Layers: 9x9 stride-1 conv, two 3x3 stride-2 convs, `n_blocks` residual blocks, two upsamplings by
nearest-neighbour resize + 3x3 conv (no transposed convs, hence no checkerboard), a 9x9 output conv;
reflection padding, instance norm with a learned scale and shift after every conv but the last, and no
output activation (translate clamps). Parameter names are those of pytorch/examples'
`fast_neural_style` TransformerNet (`conv1.conv2d.*`, `in1.*`, `res1..res5.{conv1,in1,conv2,in2}`,
`deconv1..3.*`, `in4`, `in5`), so its saved models (candy, mosaic, rain_princess, udnie) load as they
are into `TransformerNet(pixels="0-255")`.

Pixels: the seam's networks take and return RGB in [-1, 1]. pytorch/examples' models were trained on
RGB in 0..255 in and out; `pixels="0-255"` converts at the boundary (x -> 127.5 (x + 1) in,
y -> y / 127.5 - 1 out), so the same weights run unchanged inside. Networks trained here use
`pixels="signed"` (no conversion).

Conditional instance norm: with `n_styles` = N every norm holds an (N, C) scale and shift (under the
same `in*.weight`/`in*.bias` names); `mix` (B, N) weighs them, so a one-hot row is one style and
other rows blend the styles' scales and shifts (Dumoulin et al., section 4). Mix rows are used as
given: `StyleMixed` and `translate --style-mix` normalise them to sum 1.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["PIXELS", "ConditionalInstanceNorm", "StyleMixed", "TransformerNet", "infer_fast_neural_style",
           "is_fast_neural_style"]

PIXELS = ("signed", "0-255")


class ConvLayer(nn.Module):
    """Reflection padding then a convolution (the padding keeps the size at stride 1)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2d(self.pad(x))


class UpsampleConvLayer(ConvLayer):
    """Nearest-neighbour upsampling by 2, then a padded stride-1 convolution."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.interpolate(x, scale_factor=2, mode="nearest"))


class ConditionalInstanceNorm(nn.Module):
    """Instance norm whose scale and shift are a mix of `n_styles` learned ones: (B, C, H, W), (B, N)."""

    def __init__(self, n_styles: int, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n_styles, channels))  # (N, C)
        self.bias = nn.Parameter(torch.zeros(n_styles, channels))  # (N, C)

    def forward(self, x: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
        mix = mix.to(self.weight.dtype)
        scale, shift = mix @ self.weight, mix @ self.bias  # (B, C)
        return F.instance_norm(x) * scale[:, :, None, None].to(x.dtype) + shift[:, :, None, None].to(x.dtype)


def _norm(n_styles: int, channels: int) -> nn.Module:
    return ConditionalInstanceNorm(n_styles, channels) if n_styles else nn.InstanceNorm2d(channels, affine=True)


def _apply(norm: nn.Module, x: torch.Tensor, mix: torch.Tensor | None) -> torch.Tensor:
    return norm(x, mix) if isinstance(norm, ConditionalInstanceNorm) else norm(x)


class ResidualBlock(nn.Module):
    """x + norm(conv(relu(norm(conv(x))))), 3x3 convs, same width."""

    def __init__(self, channels: int, n_styles: int) -> None:
        super().__init__()
        self.conv1, self.in1 = ConvLayer(channels, channels, 3), _norm(n_styles, channels)
        self.conv2, self.in2 = ConvLayer(channels, channels, 3), _norm(n_styles, channels)

    def forward(self, x: torch.Tensor, mix: torch.Tensor | None = None) -> torch.Tensor:
        y = F.relu(_apply(self.in1, self.conv1(x), mix))
        return x + _apply(self.in2, self.conv2(y), mix)


class TransformerNet(nn.Module):
    """(B, 3, H, W) RGB in [-1, 1] -> stylised, same shape; H and W multiples of 4 (two stride-2 convs).

    `channels` is the first layer's width (32 in the paper; then 2x and 4x); `n_blocks` residual blocks
    (5); `n_styles` 0 = one style with plain instance norm, N >= 1 = conditional instance norm over N
    styles and forward(x, mix); `pixels` the range the weights work in (see the module docstring)."""

    size_multiple = 4

    def __init__(self, *, channels: int = 32, n_blocks: int = 5, n_styles: int = 0, pixels: str = "signed") -> None:
        super().__init__()
        if pixels not in PIXELS:
            raise ValueError(f"pixels={pixels!r}: choose one of {', '.join(PIXELS)}")
        if channels < 1 or n_blocks < 0 or n_styles < 0:
            raise ValueError(f"channels must be >= 1, n_blocks and n_styles >= 0; got {channels}, {n_blocks}, {n_styles}")
        self.n_styles, self.pixels = int(n_styles), pixels
        c1, c2, c3 = channels, 2 * channels, 4 * channels
        self.conv1, self.in1 = ConvLayer(3, c1, 9), _norm(n_styles, c1)
        self.conv2, self.in2 = ConvLayer(c1, c2, 3, stride=2), _norm(n_styles, c2)
        self.conv3, self.in3 = ConvLayer(c2, c3, 3, stride=2), _norm(n_styles, c3)
        self.n_blocks = int(n_blocks)
        for i in range(1, n_blocks + 1):
            setattr(self, f"res{i}", ResidualBlock(c3, n_styles))
        self.deconv1, self.in4 = UpsampleConvLayer(c3, c2, 3), _norm(n_styles, c2)
        self.deconv2, self.in5 = UpsampleConvLayer(c2, c1, 3), _norm(n_styles, c1)
        self.deconv3 = ConvLayer(c1, 3, 9)

    def forward(self, x: torch.Tensor, mix: torch.Tensor | None = None) -> torch.Tensor:
        if self.n_styles and not torch.jit.is_tracing() and (mix is None or mix.shape != (len(x), self.n_styles)):
            raise ValueError(f"a {self.n_styles}-style TransformerNet needs mix of shape ({len(x)}, {self.n_styles}), "
                             f"got {None if mix is None else tuple(mix.shape)}")
        if self.pixels == "0-255":
            x = (x + 1) * 127.5
        y = F.relu(_apply(self.in1, self.conv1(x), mix))  # (B, c1, H, W)
        y = F.relu(_apply(self.in2, self.conv2(y), mix))  # (B, c2, H/2, W/2)
        y = F.relu(_apply(self.in3, self.conv3(y), mix))  # (B, c3, H/4, W/4)
        for i in range(1, self.n_blocks + 1):
            y = getattr(self, f"res{i}")(y, mix)
        y = F.relu(_apply(self.in4, self.deconv1(y), mix))  # (B, c2, H/2, W/2)
        y = F.relu(_apply(self.in5, self.deconv2(y), mix))  # (B, c1, H, W)
        y = self.deconv3(y)  # (B, 3, H, W)
        return y / 127.5 - 1 if self.pixels == "0-255" else y


class StyleMixed(nn.Module):
    """A multi-style TransformerNet with its style weights bound: (B, 3, H, W) -> stylised.

    The weights (normalised to sum 1) live in a buffer, so TorchScript and ONNX exports carry them as
    a constant: one style (or one blend) baked into an image -> image file."""

    def __init__(self, net: TransformerNet, weights: Sequence[float] | torch.Tensor) -> None:
        super().__init__()
        if not getattr(net, "n_styles", 0):
            raise ValueError("StyleMixed needs a multi-style TransformerNet (n_styles >= 1)")
        self.net = net
        self.register_buffer("mix", normalise_mix(weights, net.n_styles)[None])  # (1, N)
        self.size_multiple = net.size_multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, self.mix.expand(len(x), -1))


def normalise_mix(weights: Sequence[float] | torch.Tensor, n_styles: int) -> torch.Tensor:
    """(N,) float weights summing to 1; ValueError unless there are N non-negative ones with a positive sum."""
    mix = torch.as_tensor(weights, dtype=torch.float32).flatten()
    if len(mix) != n_styles or not bool(torch.isfinite(mix).all()) or bool((mix < 0).any()) or float(mix.sum()) <= 0:
        raise ValueError(f"style weights {[round(float(w), 6) for w in mix]}: need {n_styles} non-negative numbers "
                         f"(one per style) with a positive sum")
    return mix / mix.sum()


# --- pytorch/examples fast_neural_style saved models ------------------------------------------------
_STALE = ("running_mean", "running_var", "num_batches_tracked")


def is_fast_neural_style(state) -> bool:
    """A pytorch/examples fast_neural_style TransformerNet state dict (candy.pth, mosaic.pth, ...)."""
    return isinstance(state, dict) and "conv1.conv2d.weight" in state and "deconv3.conv2d.weight" in state


def infer_fast_neural_style(state: dict) -> tuple[dict, dict]:
    """(TransformerNet keyword arguments, the state dict without the instance-norm running statistics
    that files saved by old PyTorch versions carry) for a pytorch/examples saved model."""
    first = state.get("conv1.conv2d.weight") if isinstance(state, dict) else None
    if not isinstance(first, torch.Tensor) or first.ndim != 4:
        raise ValueError("not a fast_neural_style TransformerNet: expected 'conv1.conv2d.weight' (32, 3, 9, 9)")
    blocks = 0
    while f"res{blocks + 1}.conv1.conv2d.weight" in state:
        blocks += 1
    kept = {k: v for k, v in state.items() if not k.endswith(_STALE)}
    return {"channels": int(first.shape[0]), "n_blocks": blocks, "pixels": "0-255"}, kept
