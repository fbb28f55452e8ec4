"""Running a generator on images of any size: pad to the multiple it needs and crop back, or,
for large images, run overlapping tiles and blend them with a smooth window so no seams show.
Tiling bounds the generator's activations by the tile size, whatever the image size."""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..pixels import from_uint8, to_uint8

Net = Callable[[torch.Tensor], torch.Tensor]


# Images above AUTO_TILE_PIXELS run on AUTO_TILE tiles unless a tile size is given (tile=0: always
# whole): a ResNet generator's first layer alone holds ngf x H x W floats, 37 GB for a 12000 x 12000
# photo at ngf 64, where 1024 px tiles need 270 MB. Below it whole images are faster and seam-free.
AUTO_TILE_PIXELS = 2048 * 2048
AUTO_TILE = 1024
MIN_SIDE = 8  # px: a ResNet generator's 1/4-scale bottleneck must be >= 2 x 2 for its reflection padding
# and instance norm; U-Nets need their multiple anyway (their 1 x 1 innermost level has no norm).


def _pad_end(x: torch.Tensor, dim: int, pad: int) -> torch.Tensor:
    """`pad` more rows (dim -2) or columns (dim -1) at the end: mirrored as far as the image allows,
    repeatedly for pads longer than the image, replicated for a single row or column."""
    while pad > 0:
        size = x.shape[dim]
        mode, step = ("reflect", min(pad, size - 1)) if size > 1 else ("replicate", pad)
        x = F.pad(x, (0, step, 0, 0) if dim == -1 else (0, 0, 0, step), mode=mode)
        pad -= step
    return x


def pad_to_multiple(x: torch.Tensor, multiple: int, min_side: int = MIN_SIDE) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H', W') with H', W' the next multiples of `multiple` that are also at
    least `min_side`, padded at the bottom/right by reflection (replication for 1-pixel lines)."""
    h, w = x.shape[-2:]
    pad_h = multiple * math.ceil(max(h, min_side) / multiple) - h
    pad_w = multiple * math.ceil(max(w, min_side) / multiple) - w
    return _pad_end(_pad_end(x, -1, pad_w), -2, pad_h)


def run_whole(net: Net, x: torch.Tensor, multiple: int, *, min_side: int = MIN_SIDE) -> torch.Tensor:
    """net over (B, 3, H, W) images of any H, W (even 1 x 1); returns (B, 3, H, W)."""
    h, w = x.shape[-2:]
    return net(pad_to_multiple(x, multiple, min_side))[..., :h, :w]


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


def run_tiled(net: Net, x: torch.Tensor, multiple: int, *, tile: int, overlap: int,
              min_side: int = MIN_SIDE) -> torch.Tensor:
    """net over (B, 3, H, W) in overlapping `tile` x `tile` pieces, blended; returns (B, 3, H, W).

    `tile` is rounded up to `multiple`; `overlap` must be smaller than `tile`; pieces smaller than
    `min_side` (at the image's edges) are padded up to it."""
    tile = math.ceil(tile / multiple) * multiple
    if not 0 <= overlap < tile:
        raise ValueError(f"tile overlap must be in [0, tile size {tile}), got {overlap}")
    b, c, h, w = x.shape
    if h <= tile and w <= tile:
        return run_whole(net, x, multiple, min_side=min_side)
    out = torch.zeros(b, c, h, w)  # weighted sum of tile outputs
    total = torch.zeros(h, w)  # sum of weights
    for top in _starts(h, tile, overlap):
        for left in _starts(w, tile, overlap):
            piece = x[..., top : top + tile, left : left + tile]
            th, tw = piece.shape[-2:]
            weight = _ramp(th, top, h, overlap)[:, None] * _ramp(tw, left, w, overlap)[None, :]  # (th, tw)
            out[..., top : top + th, left : left + tw] += (
                run_whole(net, piece, multiple, min_side=min_side).float().cpu() * weight)
            total[top : top + th, left : left + tw] += weight
    return out.div_(total)


def chosen_tile(tile: int | None, height: int, width: int) -> int | None:
    """The tile size to run an H x W image with: `tile` if given (0: none, whole), else AUTO_TILE
    for images above AUTO_TILE_PIXELS, else None (whole)."""
    if tile is None:
        return AUTO_TILE if height * width > AUTO_TILE_PIXELS else None
    return tile or None


def translate_any_size(net: Net, x: torch.Tensor, *, multiple: int, fixed_size: int | None = None,
                       tile: int | None = None, overlap: int = 32) -> torch.Tensor:
    """net over (B, 3, H, W) images of any size: whole, or in `tile` pieces (`chosen_tile`). A network that only
    takes `fixed_size` x `fixed_size` inputs (full U-GAT-IT: its MLP is tied to the training size)
    always runs on tiles of exactly that size, smaller images and edge pieces padded up to it."""
    if fixed_size is not None:
        overlap = min(overlap, fixed_size // 2)
        return run_tiled(net, x, multiple, tile=fixed_size, overlap=overlap, min_side=fixed_size)
    tile = chosen_tile(tile, *x.shape[2:])
    if tile:
        return run_tiled(net, x, multiple, tile=tile, overlap=overlap)
    return run_whole(net, x, multiple)


def translate_frames(generator, rgbs: list, tile: int | None, overlap: int):
    """(B, H, W, 3) uint8 numpy outputs of same-size (H, W, 3) uint8 frames: the path images take
    (uint8 -> [-1, 1] -> `translate_any_size` -> uint8), for videos and animations."""
    x = from_uint8(torch.from_numpy(np.stack(rgbs)).permute(0, 3, 1, 2))  # (B, 3, H, W)
    y = translate_any_size(generator, x, multiple=generator.size_multiple, fixed_size=generator.fixed_size,
                           tile=tile, overlap=overlap)
    return to_uint8(y).permute(0, 2, 3, 1).cpu().numpy()  # (B, H, W, 3)
