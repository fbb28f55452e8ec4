"""Pixel conventions shared by training and inference: networks see (B, 3, H, W) floats in
[-1, 1]; files hold uint8. Written once here, below both."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] -> (B, 3, H, W) uint8."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def from_uint8(images: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) uint8 -> float32 in [-1, 1]."""
    return images.float().div_(127.5).sub_(1)


def from_rgb_array(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 array -> (1, 3, H, W) float32 in [-1, 1]."""
    rgb = np.ascontiguousarray(rgb)
    if not rgb.flags.writeable:  # e.g. np.asarray of a PIL image: torch warns on read-only memory
        rgb = rgb.copy()
    return from_uint8(torch.from_numpy(rgb).permute(2, 0, 1)[None])


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1] (what Inception-based metrics expect)."""
    return ((images.float() + 1) / 2).clamp(0, 1)


def heatmap_image(heatmap: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, 1, h, w) attention map -> (B, 3, H, W) in [-1, 1]: each map scaled to its own
    min..max and upsampled, shown in gray so grids can put it beside the images."""
    low = heatmap.amin(dim=(1, 2, 3), keepdim=True)
    high = heatmap.amax(dim=(1, 2, 3), keepdim=True)
    unit = (heatmap.float() - low) / (high - low).clamp_min(1e-8)  # (B, 1, h, w) in [0, 1]
    return F.interpolate(unit, size=size, mode="bilinear", align_corners=False).expand(-1, 3, -1, -1) * 2 - 1


def psnr(x: np.ndarray, y: np.ndarray) -> float:
    """PSNR in dB of two uint8 images of equal shape."""
    mse = np.mean((x.astype(np.float64) - y.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))
