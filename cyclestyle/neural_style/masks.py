"""Colour-coded segmentation masks, as in deep-photo-styletransfer: paint the content photo's
regions (sky, buildings, water...) in flat colours, and the same colours on each style image; the
style loss then compares Gram matrices region by region, so the sky takes the style's sky.

The content mask's colours define the regions (every colour covering at least `MIN_SHARE` of it;
each pixel goes to the nearest of them, so JPEG noise and anti-aliased edges are harmless).
A style mask's pixels join the region of the nearest such colour within `TOLERANCE`; other colours
are ignored. A region that no style image paints gets no style loss (it keeps the content).
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

MIN_SHARE = 0.005  # of the content mask's pixels, for a colour to be a region
TOLERANCE = 60.0  # RGB distance (0-255) within which a style mask's colour counts as a region's


def palette(content_mask: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (K, 3) the region colours, most frequent first."""
    colours, counts = np.unique(content_mask.reshape(-1, 3), axis=0, return_counts=True)
    keep = counts >= MIN_SHARE * counts.sum()
    if not keep.any():
        raise ValueError(f"no colour covers {MIN_SHARE:.1%} of the content mask: paint its regions in flat colours")
    order = np.argsort(-counts[keep], kind="stable")
    return colours[keep][order]


def regions(mask: np.ndarray, colours: np.ndarray, size: tuple[int, int], *, tolerance: float | None = None) -> torch.Tensor:
    """(H, W, 3) uint8 mask resized (nearest) to `size` = (h, w) -> (1, K, h, w) float one-hot maps
    (one per colour of `colours`); with a `tolerance`, pixels farther than it from every colour
    belong to no region."""
    resized = np.asarray(Image.fromarray(mask).resize((size[1], size[0]), Image.NEAREST)).astype(np.float32)
    distance = np.linalg.norm(resized[:, :, None, :] - colours[None, None].astype(np.float32), axis=-1)  # (h, w, K)
    nearest = distance.argmin(axis=-1)  # (h, w)
    one_hot = nearest[None] == np.arange(len(colours))[:, None, None]  # (K, h, w)
    if tolerance is not None:
        one_hot &= distance.min(axis=-1)[None] <= tolerance
    return torch.from_numpy(one_hot.astype(np.float32)).unsqueeze(0)
