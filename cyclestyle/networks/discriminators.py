"""PatchGAN and per-pixel discriminators; they output raw logits, one per patch/pixel."""
from __future__ import annotations

import torch
import torch.nn as nn

from .layers import Downsample, conv_bias, norm_layer


class NLayerDiscriminator(nn.Module):
    """PatchGAN: `n_layers` stride-2 4x4 convs, then two stride-1 ones.

    `n_layers=3` is the 70x70 "basic" discriminator: a 256x256 input gives a 30x30 map.
    `antialias` (the official CUT's default): each stride-2 conv becomes a stride-1 conv followed
    by a blur-downsample after its activation, with the official CUT's layer indices and keys
    (`model.2.filt`, `model.3.weight`, ...); off, the keys are the reference CycleGAN's.
    """

    def __init__(self, *, in_channels: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance",
                 antialias: bool = False) -> None:
        super().__init__()
        bias, make_norm = conv_bias(norm), norm_layer(norm)
        stride = 1 if antialias else 2
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=stride, padding=1), nn.LeakyReLU(0.2, True)]
        if antialias:
            layers.append(Downsample(ndf))
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            strided = n < n_layers
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride=2 if strided and not antialias else 1, padding=1,
                          bias=bias),
                make_norm(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
            if strided and antialias:
                layers.append(Downsample(ndf * mult))
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # (B, C, H, W) -> (B, 1, h, w) logits


class PixelDiscriminator(nn.Module):
    """1x1 PatchGAN: judges each pixel's colour on its own."""

    def __init__(self, *, in_channels: int = 3, ndf: int = 64, norm: str = "instance") -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, ndf, 1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 1, bias=conv_bias(norm)),
            norm_layer(norm)(ndf * 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, 1, bias=conv_bias(norm)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, C, H, W) -> (B, 1, H, W) logits
