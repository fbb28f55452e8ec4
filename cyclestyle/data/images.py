"""Finding image files and decoding any of them to 8-bit RGB."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


def find_images(folder: str | os.PathLike, *, setting: str = "folder") -> list[Path]:
    """All image files under `folder` (recursive, sorted); fails naming the folder and `setting`."""
    root = Path(folder).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"{setting}: folder not found: {root}")
    if not root.is_dir():
        raise NotADirectoryError(f"{setting}: not a folder: {root}")
    files = sorted(
        Path(dirpath) / name
        for dirpath, _, names in os.walk(root, followlinks=True)
        for name in names
        if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")
    )
    if not files:
        raise ValueError(f"{setting}: no images ({', '.join(IMAGE_EXTENSIONS)}) found under {root}")
    return files


def to_rgb(image: Image.Image) -> np.ndarray:
    """PIL image of any mode -> (H, W, 3) uint8.

    EXIF orientation is applied; 16-bit and float images are scaled to 8 bits; transparent
    pixels are composited over white; grayscale, palette and CMYK become RGB.
    """
    image = ImageOps.exif_transpose(image)
    if image.mode.startswith("I") or image.mode == "F":  # 16/32-bit integer or float grayscale
        values = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16") or (image.mode == "I" and values.max() > 255):
            values = values / 257.0  # 0..65535 -> 0..255
        elif image.mode == "F" and values.max() <= 1.0:
            values = values * 255.0  # 0..1 -> 0..255
        gray = np.clip(values + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return np.asarray(image.convert("RGB"))


def load_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decode `path` to (H, W, 3) uint8 RGB; raises OSError/ValueError for broken files."""
    with Image.open(path) as image:
        image.load()  # decode now so truncated files fail here
        return to_rgb(image)
