"""`translate`'s style options for style-image-conditioned models (AdaIN): which style images, how
they blend, and one bound image -> image generator per style (or blend), so batching, tiling, devices,
precisions and video stay those of every other model.

    cyclestyle translate adain.ckpt photos/ --style a.jpg b.jpg --output out/          # photo__a.png, photo__b.png
    cyclestyle translate adain.ckpt photos/ --style a.jpg b.jpg --style-weights 0.7,0.3 --output out/  # photo__a+b.png
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

STYLE_FLAGS = "--style-weights, --blend, --alpha, --preserve-color, --style-size"


def add_style_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("style (AdaIN checkpoints: any style image at translation time)")
    group.add_argument("--style", nargs="+", default=None, metavar="STYLE",
                       help="style images (files, folders, glob patterns or builtin:swirls|mosaic|watercolour): "
                            "every input x every style gives <input>__<style>.<ext>")
    group.add_argument("--style-weights", nargs="+", default=None, metavar="W",
                       help="blend all styles with these weights (one per style image, e.g. 0.7,0.3 or 0.7 0.3; "
                            "normalised to sum 1): one <input>__<s1>+<s2>.<ext> per input")
    group.add_argument("--blend", action="store_true", help="blend all styles with equal weights")
    group.add_argument("--alpha", type=float, default=None,
                       help="style strength in [0, 1]: 0 = the content as the decoder reconstructs it, 1 = full "
                            "style (default: 1)")
    group.add_argument("--preserve-color", action="store_true",
                       help="keep the content's colours: each style is first recoloured to the content's colour "
                            "mean and covariance (then encoded per image, not once per style)")
    group.add_argument("--style-size", type=int, default=512,
                       help="style images are scaled so that their shorter side has this many pixels, as "
                            "pytorch-AdaIN; 0 keeps their size (default: %(default)s)")


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


def style_weights(values: list[str] | None) -> list[float] | None:
    """--style-weights "0.7,0.3" or "0.7 0.3" -> [0.7, 0.3]."""
    if values is None:
        return None
    try:
        return [float(part) for value in values for part in value.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--style-weights must be numbers, got {' '.join(values)!r}") from None


def read_styles(args: argparse.Namespace) -> Styles | None:
    """The checked style options (None without --style); style flags without --style are an error."""
    weights = style_weights(args.style_weights)
    if args.style is None:
        given = [flag for flag, value in (("--style-weights", weights), ("--blend", args.blend),
                                          ("--alpha", args.alpha), ("--preserve-color", args.preserve_color))
                 if value not in (None, False)]
        if given:
            raise ValueError(f"{', '.join(given)} need --style STYLE...")
        return None
    alpha = 1.0 if args.alpha is None else args.alpha
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"--alpha must be in [0, 1], got {alpha}")
    if args.style_size < 0:
        raise ValueError(f"--style-size must be >= 0 (0 keeps the size), got {args.style_size}")
    from ..data.paintings import BUILTIN_PREFIX, load_style
    from ..networks.adain import blend_weights
    from .files import collect

    entries = []
    for item in args.style:
        entries += [item] if item.startswith(BUILTIN_PREFIX) else [str(path) for path, _, _ in collect([item])]
    if weights is not None:
        try:
            blend_weights(weights, len(entries))
        except ValueError as error:
            raise ValueError(f"--style-weights: {error}") from None
    names = [e[len(BUILTIN_PREFIX):] if e.startswith(BUILTIN_PREFIX) else Path(e).stem for e in entries]
    images = [_scaled(load_style(entry, setting="--style"), args.style_size) for entry in entries]
    return Styles(names, images, weights, args.blend or weights is not None, alpha, args.preserve_color)


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
