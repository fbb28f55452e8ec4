"""Running a generator on images of any size: pad to the multiple it needs and crop back, or,
for large images, run overlapping tiles and blend them with a smooth window so no seams show.
Tiling bounds the generator's activations by the tile size, whatever the image size."""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

Net = Callable[[torch.Tensor], torch.Tensor]


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H', W') with H', W' the next multiples of `multiple`, padded at the
    bottom/right by reflection (replication where the image is too small to reflect)."""
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    mode = "reflect" if pad_h < h and pad_w < w else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def run_whole(net: Net, x: torch.Tensor, multiple: int) -> torch.Tensor:
    """net over (B, 3, H, W) images of any H, W; returns (B, 3, H, W)."""
    h, w = x.shape[-2:]
    return net(pad_to_multiple(x, multiple))[..., :h, :w]


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile offsets covering [0, length): stride tile - overlap, the last tile flush with the end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, tile - overlap))
    return starts + [length - tile]


def _ramp(size: int, start: int, length: int, overlap: int) -> torch.Tensor:
    """(size,) weights: a raised-cosine rise over `overlap` pixels on sides shared with a
    neighbouring tile, 1 elsewhere (and on the image border, so weights never vanish there)."""
    weights = torch.ones(size)
    ramp = min(overlap, size)
    if ramp == 0:
        return weights
    rise = 0.5 - 0.5 * torch.cos(math.pi * (torch.arange(ramp) + 0.5) / ramp)  # (0, 1)
    if start > 0:
        weights[:ramp] = rise
    if start + size < length:
        weights[-ramp:] = torch.minimum(weights[-ramp:], rise.flip(0))
    return weights


def run_tiled(net: Net, x: torch.Tensor, multiple: int, *, tile: int, overlap: int) -> torch.Tensor:
    """net over (B, 3, H, W) in overlapping `tile` x `tile` pieces, blended; returns (B, 3, H, W).

    `tile` is rounded up to `multiple`; `overlap` must be smaller than `tile`."""
    tile = math.ceil(tile / multiple) * multiple
    if not 0 <= overlap < tile:
        raise ValueError(f"tile overlap must be in [0, tile size {tile}), got {overlap}")
    b, c, h, w = x.shape
    if h <= tile and w <= tile:
        return run_whole(net, x, multiple)
    out = torch.zeros(b, c, h, w)  # weighted sum of tile outputs
    total = torch.zeros(h, w)  # sum of weights
    for top in _starts(h, tile, overlap):
        for left in _starts(w, tile, overlap):
            piece = x[..., top : top + tile, left : left + tile]
            th, tw = piece.shape[-2:]
            weight = _ramp(th, top, h, overlap)[:, None] * _ramp(tw, left, w, overlap)[None, :]  # (th, tw)
            out[..., top : top + th, left : left + tw] += run_whole(net, piece, multiple).float().cpu() * weight
            total[top : top + th, left : left + tw] += weight
    return out.div_(total)
