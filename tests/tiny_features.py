"""A small fixed feature network standing in for InceptionV3 in FID/KID tests (no download)."""
import torch
import torch.nn as nn


class TinyFeatures(nn.Module):
    """(B, 3, H, W) in [0, 1] -> (B, 8): fixed random conv features, globally pooled."""

    num_features = 8

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 5, stride=2)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=generator))
            self.conv.bias.zero_()
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(x.float())).mean(dim=(2, 3)).double()  # (B, 8)
