"""ResNet generator (Johnson et al. 2016) as used by CycleGAN.

The module tree mirrors the reference implementation so that its `state_dict` keys
(`model.1.weight`, `model.10.conv_block.5.weight`, ...) load unchanged.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .layers import ReflectionPad2d, conv_bias, norm_layer


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

    Input height and width must be multiples of 4 (two stride-2 stages).
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
            layers += [nn.Conv2d(cin, cin * 2, 3, stride=2, padding=1, bias=bias), make_norm(cin * 2), nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 4, norm=norm, dropout=dropout) for _ in range(n_blocks)]
        for i in range(2):  # upsample: 4 ngf -> 2 ngf -> ngf
            cin = ngf * 2 ** (2 - i)
            layers += [
                nn.ConvTranspose2d(cin, cin // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                make_norm(cin // 2),
                nn.ReLU(True),
            ]
        layers += [ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # (B, in, H, W) -> (B, out, H, W) in [-1, 1]
