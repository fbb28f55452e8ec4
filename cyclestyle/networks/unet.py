"""U-Net generator (pix2pix) with the reference implementation's nested module layout."""
from __future__ import annotations

import torch
import torch.nn as nn

from .layers import conv_bias, norm_layer


class UnetSkipBlock(nn.Module):
    """One U-Net level: down, `inner` (the deeper levels), up; the input is concatenated back
    onto the output except at the outermost level."""

    def __init__(
        self,
        outer: int,
        inner: int,
        *,
        sub: nn.Module | None,
        in_channels: int | None = None,
        outermost: bool = False,
        norm: str,
        dropout: bool = False,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        bias, make_norm = conv_bias(norm), norm_layer(norm)
        down = nn.Conv2d(in_channels or outer, inner, 4, stride=2, padding=1, bias=bias)
        if outermost:
            layers = [down, sub, nn.ReLU(True), nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1), nn.Tanh()]
        elif sub is None:  # innermost: no skip inside, so the up-conv sees `inner` channels
            up = nn.ConvTranspose2d(inner, outer, 4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True), up, make_norm(outer)]
        else:
            up = nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), down, make_norm(inner), sub, nn.ReLU(True), up, make_norm(outer)]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)  # (B, outer + outer, H, W)


class UnetGenerator(nn.Module):
    """U-Net with `num_downs` stride-2 levels: 7 for 128x128 inputs, 8 for 256x256.

    Input height and width must be multiples of 2**num_downs.
    """

    def __init__(self, *, in_channels: int = 3, out_channels: int = 3, num_downs: int = 8, ngf: int = 64,
                 norm: str = "batch", dropout: bool = False) -> None:
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"num_downs must be >= 5, got {num_downs}")
        self.size_multiple = 2**num_downs
        block = UnetSkipBlock(ngf * 8, ngf * 8, sub=None, norm=norm)
        for _ in range(num_downs - 5):
            block = UnetSkipBlock(ngf * 8, ngf * 8, sub=block, norm=norm, dropout=dropout)
        for mult in (4, 2, 1):
            block = UnetSkipBlock(ngf * mult, ngf * mult * 2, sub=block, norm=norm)
        self.model = UnetSkipBlock(out_channels, ngf, sub=block, in_channels=in_channels, outermost=True, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # (B, in, H, W) -> (B, out, H, W) in [-1, 1]
