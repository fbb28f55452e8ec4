"""Style images for the feed-forward style families: image files, or built-in paintings made here.

    load_style("~/art/starry_night.jpg")   # (H, W, 3) uint8 RGB
    load_style("builtin:swirls")           # a procedurally painted style image, offline, deterministic

Built-in paintings (256 x 256, drawn from a fixed seed in well under a second, nothing downloaded):
  swirls       thick blue, ochre and white brush strokes following a field of vortices (van Gogh-like)
  mosaic       Voronoi tesserae in a warm palette with dark grout lines (stained glass / mosaic)
  watercolour  the demo's watercolour rendering (`demo.stylize`) of a scikit-image photograph
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .images import load_rgb

BUILTIN_PREFIX = "builtin:"
SIZE = 256


def _swirls(rng: np.random.Generator) -> np.ndarray:
    """Short curved strokes advected along a sum of vortices, light on a dark blue ground."""
    canvas = np.empty((SIZE, SIZE, 3), np.uint8)
    canvas[:] = (22, 38, 92)
    palette = np.array([(38, 74, 160), (70, 120, 200), (232, 196, 74), (250, 236, 170), (120, 170, 220),
                        (16, 28, 70)], np.float64)
    centres = rng.uniform(0, SIZE, (5, 2))
    spins = rng.choice([-1.0, 1.0], 5) * rng.uniform(0.5, 1.5, 5)

    def flow(p: np.ndarray) -> np.ndarray:  # (2,) -> unit direction
        d = p - centres  # (5, 2)
        r2 = (d ** 2).sum(1) + 400.0
        v = (spins[:, None] * np.stack([-d[:, 1], d[:, 0]], 1) / r2[:, None]).sum(0)
        return v / (np.linalg.norm(v) + 1e-9)

    for _ in range(1400):
        p = rng.uniform(0, SIZE, 2)
        colour = palette[rng.integers(len(palette))] + rng.normal(0, 12, 3)
        points = [p.copy()]
        for _ in range(int(rng.integers(6, 14))):
            p = p + 3.0 * flow(p)
            points.append(p.copy())
        cv2.polylines(canvas, [np.round(np.array(points)).astype(np.int32)], False,
                      tuple(int(c) for c in np.clip(colour, 0, 255)), int(rng.integers(2, 5)), cv2.LINE_AA)
    return canvas


def _mosaic(rng: np.random.Generator) -> np.ndarray:
    """Each pixel takes the colour of its nearest of ~140 random seeds; dark lines where two meet."""
    seeds = rng.uniform(0, SIZE, (140, 2))
    palette = np.array([(200, 60, 40), (236, 160, 48), (245, 214, 120), (60, 120, 110), (150, 40, 60),
                        (230, 110, 70)], np.float64)
    colours = palette[rng.integers(len(palette), size=len(seeds))] + rng.normal(0, 10, (len(seeds), 3))
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    d = (yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2  # (H, W, n)
    nearest = np.argsort(d, axis=2)[..., :2]
    d1 = np.take_along_axis(d, nearest[..., :1], 2)[..., 0] ** 0.5
    d2 = np.take_along_axis(d, nearest[..., 1:], 2)[..., 0] ** 0.5
    image = colours[nearest[..., 0]]
    image[(d2 - d1) < 2.5] = (40, 28, 24)  # grout
    return np.clip(image, 0, 255).astype(np.uint8)


def _watercolour(rng: np.random.Generator) -> np.ndarray:
    from .demo import sample_photos, stylize

    photo = sample_photos(short_side=SIZE)[2]  # coffee.png
    return stylize(np.ascontiguousarray(photo[:SIZE, :SIZE]))


BUILTIN = {"swirls": _swirls, "mosaic": _mosaic, "watercolour": _watercolour}


def builtin_style(name: str) -> np.ndarray:
    """The built-in painting `name` as (256, 256, 3) uint8 RGB, the same on every call."""
    if name not in BUILTIN:
        raise ValueError(f"no built-in style {name!r}; choose one of {', '.join(BUILTIN)}")
    return BUILTIN[name](np.random.default_rng(list(name.encode())))


def load_style(entry: str, *, setting: str = "model.styles") -> np.ndarray:
    """(H, W, 3) uint8 RGB of a style image file or a `builtin:NAME` painting; errors name `setting`."""
    entry = str(entry)
    if entry.startswith(BUILTIN_PREFIX):
        try:
            return builtin_style(entry[len(BUILTIN_PREFIX):])
        except ValueError as error:
            raise ValueError(f"{setting}: {error}") from None
    path = Path(entry).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{setting}: style image not found: {path} (or use {BUILTIN_PREFIX}"
                                f"{'|'.join(BUILTIN)})")
    try:
        return load_rgb(path)
    except Exception as error:  # PIL raises many types for broken files
        raise ValueError(f"{setting}: cannot read style image {path}: {error}") from None
