"""ResNet generator (Johnson et al. 2016) as used by CycleGAN, and by CUT with anti-aliasing.

The module tree mirrors the reference implementation so that its `state_dict` keys
(`model.1.weight`, `model.10.conv_block.5.weight`, ...) load unchanged. `antialias` /
`antialias_up` give the official CUT variant (taesungp/contrastive-unpaired-translation, the
default there): a stride-1 conv followed by a blur-downsample instead of a stride-2 conv, and a
blur-upsample followed by a conv instead of a transposed conv; its layer list, and so its keys
(`model.7.filt`, `model.12.conv_block.1.weight`, ...), are the official ones. Off (the default),
the network and its keys are exactly the reference CycleGAN's.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .layers import Downsample, ReflectionPad2d, Upsample, conv_bias, norm_layer


class ResnetBlock(nn.Module):
    """pad-conv-norm-relu-[dropout]-pad-conv-norm plus a skip connection."""

    def __init__(self, dim: int, *, norm: str, dropout: bool) -> None:
        super().__init__()
        bias, make_norm = conv_bias(norm), norm_layer(norm)
        layers = [ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), make_norm(dim), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), make_norm(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """c7s1-ngf, two stride-2 downsamplings, `n_blocks` residual blocks, two upsamplings, c7s1-3, tanh.

    Input height and width must be multiples of 4 (two stride-2 stages). `antialias`: each
    downsampling is conv (stride 1), norm, ReLU, blur-downsample; `antialias_up`: each upsampling
    is blur-upsample, conv, norm, ReLU (both as in the official CUT).
    """

    size_multiple = 4

    def __init__(
        self,
        *,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        n_blocks: int = 9,
        norm: str = "instance",
        dropout: bool = False,
        antialias: bool = False,
        antialias_up: bool = False,
    ) -> None:
        super().__init__()
        bias, make_norm = conv_bias(norm), norm_layer(norm)
        layers: list[nn.Module] = [
            ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, 7, bias=bias),
            make_norm(ngf),
            nn.ReLU(True),
        ]
        for i in range(2):  # downsample: ngf -> 2 ngf -> 4 ngf
            cin = ngf * 2**i
            conv = nn.Conv2d(cin, cin * 2, 3, stride=1 if antialias else 2, padding=1, bias=bias)
            layers += [conv, make_norm(cin * 2), nn.ReLU(True)]
            if antialias:
                layers.append(Downsample(cin * 2))
        layers += [ResnetBlock(ngf * 4, norm=norm, dropout=dropout) for _ in range(n_blocks)]
        for i in range(2):  # upsample: 4 ngf -> 2 ngf -> ngf
            cin = ngf * 2 ** (2 - i)
            if antialias_up:
                layers += [Upsample(cin), nn.Conv2d(cin, cin // 2, 3, padding=1, bias=bias)]
            else:
                layers.append(nn.ConvTranspose2d(cin, cin // 2, 3, stride=2, padding=1, output_padding=1, bias=bias))
            layers += [make_norm(cin // 2), nn.ReLU(True)]
        layers += [ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # (B, in, H, W) -> (B, out, H, W) in [-1, 1]
