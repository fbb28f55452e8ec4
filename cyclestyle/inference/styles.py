"""`translate`'s style options for style-image-conditioned models (AdaIN): which style images, how
they blend, and one bound image -> image generator per style (or blend), so batching, tiling, devices,
precisions and video stay those of every other model.

    cyclestyle translate adain.ckpt photos/ --style a.jpg b.jpg --output out/          # photo__a.png, photo__b.png
    cyclestyle translate adain.ckpt photos/ --style a.jpg b.jpg --style-weights 0.7,0.3 --output out/  # photo__a+b.png
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

STYLE_FLAGS = "--style-weights, --blend, --alpha, --preserve-color, --style-size"


@dataclass
class Styles:
    """The style options of one translate run."""

    names: list[str]  # per style image: its output-name part (file stem or builtin name)
    images: list[torch.Tensor]  # per style image: (1, 3, h, w) in [-1, 1]
    weights: list[float] | None  # blend weights (None: each style on its own, unless `blend`)
    blend: bool
    alpha: float
    preserve_color: bool
    net: nn.Module | None = field(default=None, repr=False)  # the checkpoint's network, once bound


def read_styles(style: list[str] | None, *, weights: list[float] | None = None, blend: bool = False,
                alpha: float | None = None, preserve_color: bool = False, size: int = 512) -> Styles | None:
    """The checked style options (None without `style`: files, folders, glob patterns or builtin:NAME);
    style settings without `style` are an error. Messages name translate's flags."""
    if style is None:
        given = [flag for flag, value in (("--style-weights", weights), ("--blend", blend),
                                          ("--alpha", alpha), ("--preserve-color", preserve_color))
                 if value not in (None, False)]
        if given:
            raise ValueError(f"{', '.join(given)} need --style STYLE...")
        return None
    alpha = 1.0 if alpha is None else float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"--alpha must be in [0, 1], got {alpha}")
    if size < 0:
        raise ValueError(f"--style-size must be >= 0 (0 keeps the size), got {size}")
    from ..data.paintings import BUILTIN_PREFIX, load_style
    from ..networks.adain import blend_weights
    from .files import collect

    entries = []
    for item in style:
        entries += [item] if item.startswith(BUILTIN_PREFIX) else [str(path) for path, _, _ in collect([item])]
    if weights is not None:
        try:
            blend_weights(weights, len(entries))
        except ValueError as error:
            raise ValueError(f"--style-weights: {error}") from None
    names = [e[len(BUILTIN_PREFIX):] if e.startswith(BUILTIN_PREFIX) else Path(e).stem for e in entries]
    images = [_scaled(load_style(entry, setting="--style"), size) for entry in entries]
    return Styles(names, images, weights, blend or weights is not None, alpha, preserve_color)


def _scaled(rgb, size: int) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, h, w) in [-1, 1] with the shorter side `size` (0: unchanged)."""
    from ..pixels import from_rgb_array

    x = from_rgb_array(np.array(rgb))  # a copy: decoders may return read-only arrays
    h, w = x.shape[2:]
    if size == 0 or min(h, w) == size:
        return x
    scale = size / min(h, w)
    return F.interpolate(x, size=(max(1, round(h * scale)), max(1, round(w * scale))), mode="bilinear",
                         antialias=True, align_corners=False)


def groups(styles: Styles) -> list[tuple[int, ...]]:
    """The style images of each output kind: one blend of all, or each on its own."""
    count = len(styles.images)
    return [tuple(range(count))] if styles.blend else [(i,) for i in range(count)]


def _styled(styles: Styles, group: tuple[int, ...]) -> nn.Module:
    """The bound network (`styles.net`) with style `group` (one image, or the blend of several)."""
    from ..networks.adain import StyledAdaIN

    weights = [styles.weights[i] for i in group] if styles.weights else None
    return StyledAdaIN(styles.net, [styles.images[i] for i in group], weights=weights, alpha=styles.alpha,
                       preserve_color=styles.preserve_color)


def bind_for(styles: Styles | None):
    """`load_generator(bind=...)`: binds a style-image network (condition "style_image") to the
    first style group; style options for a network without a style input are an error, as is a
    style network without them."""
    def bind(net: nn.Module, condition: str | None) -> nn.Module:
        if condition == "style_image":
            if styles is None:
                raise ValueError("this AdaIN model stylises with any style image: give --style STYLE...")
            styles.net = net
            return _styled(styles, groups(styles)[0])
        if condition is None and styles is not None:
            raise ValueError(f"--style (and {STYLE_FLAGS}) apply to AdaIN checkpoints only; this model "
                             f"takes no style image")
        if condition is not None:
            raise ValueError(f"a style-conditioned model ({condition}): give its style options")
        return net

    return bind


def runs(generator, styles: Styles | None, jobs: list, *, precision: str, compile: bool = False
         ) -> list[tuple[object, list]]:
    """(generator, its jobs) per style group: `generator` (bound to the first group) and one more per
    further group sharing its network; one run of all jobs without styles."""
    if styles is None:
        return [(generator, jobs)]
    if styles.net is None:
        raise ValueError("--style needs a cyclestyle AdaIN checkpoint (.ckpt); exported files take the "
                         "style as their second input")
    from .sources import Generator

    out = []
    for i, group in enumerate(groups(styles)):
        if i:
            generator = Generator(_styled(styles, group).eval().to(generator.device), size_multiple=generator.size_multiple,
                                  fixed_size=generator.fixed_size, device=generator.device,
                                  precision=precision, spec=generator.spec, compile=compile)
        out.append((generator, [job for job in jobs if job.styles == group]))
    return out
