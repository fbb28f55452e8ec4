"""The built-in demo task: photographs (A) <-> the same kind of photographs rendered as
watercolours (B): OpenCV's `cv2.stylization` painterly rendering, washed onto cream paper
(lower contrast, warm paper tone), so that the domains differ in palette as well as in
brushwork. The palette is what a CycleGAN learns in a few CPU minutes; the brushwork (edge
lines, flat regions) takes far longer, so on its own it would not show learning in a demo.

Domain A crops come from the sample photographs that ship inside scikit-image, domain B
crops from their stylized versions at other, random positions, so no pair is shared.
A strip at the side of every photo is held out: `testA` holds crops from it and
`testA_stylized` their stylized versions, the ground truth the demo's PSNR check compares
A->B translations with. Built once, offline, in a few seconds, at `root` (by default
~/.cache/cyclestyle/demo; see `paths.cache_dir`).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
from filelock import FileLock
from PIL import Image

from .datamodule import UnpairedDataModule

PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "motorcycle_right.png", "rocket.jpg")
VERSION = "3"  # bump when the recipe below changes, so caches are rebuilt
# Geometry per pixel of crop size, so a crop shows the same part of a scene at any size:
SHORT_SIDE_PER_PX = 200 / 72  # photos scaled to a 200 px shorter side for 72 px crops
HELD_OUT_PER_PX = 80 / 72  # an 80 px strip of every photo is held out for 72 px crops


PAPER_RGB = np.array([242.0, 228.0, 200.0])  # cream watercolour paper
WASH = 0.4  # how much paper shows through the paint


def stylize(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> its watercolour rendering, same shape."""
    painted = cv2.stylization(rgb[:, :, ::-1].copy(), sigma_s=60, sigma_r=0.45)[:, :, ::-1]
    return np.clip((1 - WASH) * painted + WASH * PAPER_RGB + 0.5, 0, 255).astype(np.uint8)


def sample_photos(short_side: int) -> list[np.ndarray]:
    """The sample photographs, RGB, scaled so their shorter side is `short_side`."""
    from skimage import data as skimage_data

    folder = Path(skimage_data.__file__).parent
    photos = []
    for name in PHOTOS:
        rgb = np.asarray(Image.open(folder / name).convert("RGB"))
        h, w = rgb.shape[:2]
        scale = short_side / min(h, w)
        photos.append(cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA))
    return photos


def _random_boxes(shape: tuple, count: int, size: int, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """`count` square boxes (y, x, side), side random in [size, 1.5 size]."""
    h, w = shape[:2]
    boxes = []
    for _ in range(count):
        side = int(rng.integers(size, min(int(size * 1.5), h, w) + 1))
        boxes.append((int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1)), side))
    return boxes


def _cut(image: np.ndarray, box: tuple[int, int, int], size: int) -> np.ndarray:
    y, x, side = box
    return cv2.resize(image[y : y + side, x : x + side], (size, size), interpolation=cv2.INTER_AREA)


def _split(image: np.ndarray, held_out: int) -> tuple[np.ndarray, np.ndarray]:
    """(training part, held-out strip `held_out` pixels wide) along the long side."""
    if image.shape[1] >= image.shape[0]:
        return image[:, :-held_out], image[:, -held_out:]
    return image[:-held_out], image[-held_out:]


def build_demo(root: str | os.PathLike, *, size: int = 72, train_per_photo: int = 40, test_per_photo: int = 3) -> Path:
    """Write the demo data set under `root` unless a complete one is there; returns `root`.

    Built in a temporary folder and renamed into place under a lock, so concurrent builders (DDP
    ranks, two first runs sharing a cache) build it once and interrupted builds never leave a
    half-written data set.
    """
    root = Path(root).expanduser()
    marker, stamp = root / ".complete", f"{VERSION} size={size}"
    if marker.exists() and marker.read_text().strip() == stamp:
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    # One builder at a time per cache folder (DDP ranks, two first runs at once): the others wait, then
    # find it complete. Without the lock a later builder replaced the set a first one was training on.
    with FileLock(root.parent / f".{root.name}.lock"):
        if marker.exists() and marker.read_text().strip() == stamp:
            return root
        tmp = _write_demo(root.parent, size, train_per_photo, test_per_photo)
        (tmp / ".complete").write_text(stamp)
        if root.exists():  # an older or incomplete set: nobody is building or using it now
            shutil.rmtree(root, ignore_errors=True)
        tmp.rename(root)
    return root


def _write_demo(parent: Path, size: int, train_per_photo: int, test_per_photo: int) -> Path:
    """The demo data set written into a new temporary folder under `parent` (returned)."""
    rng = np.random.default_rng(0)
    tmp = Path(tempfile.mkdtemp(prefix=".demo-", dir=parent))
    splits = {name: tmp / name for name in ("trainA", "trainB", "testA", "testA_stylized", "testB")}
    for folder in splits.values():
        folder.mkdir()
    held_out = round(size * HELD_OUT_PER_PX)
    for p, photo in enumerate(sample_photos(short_side=round(size * SHORT_SIDE_PER_PX))):
        styled = stylize(photo)
        (photo_train, photo_test), (styled_train, styled_test) = _split(photo, held_out), _split(styled, held_out)
        crops = {
            "trainA": [_cut(photo_train, box, size) for box in _random_boxes(photo_train.shape, train_per_photo, size, rng)],
            "trainB": [_cut(styled_train, box, size) for box in _random_boxes(styled_train.shape, train_per_photo, size, rng)],
            "testB": [_cut(styled_test, box, size) for box in _random_boxes(styled_test.shape, test_per_photo, size, rng)],
        }
        # testA and its ground truth share positions.
        boxes = _random_boxes(photo_test.shape, test_per_photo, size, rng)
        crops["testA"] = [_cut(photo_test, box, size) for box in boxes]
        crops["testA_stylized"] = [_cut(styled_test, box, size) for box in boxes]
        for split, images in crops.items():
            for i, image in enumerate(images):
                Image.fromarray(np.ascontiguousarray(image)).save(splits[split] / f"{p:02d}_{i:03d}.png")
    return tmp


class DemoDataModule(UnpairedDataModule):
    """`UnpairedDataModule` over the demo data set, which it builds on first use."""

    def __init__(self, *, root: str, load_size: int = 72, **kwargs) -> None:
        self.root = Path(root).expanduser()
        self.image_size = load_size  # the data set is built at the load size
        folders = {key: str(self.root / sub) for key, sub in
                   (("a", "trainA"), ("b", "trainB"), ("val_a", "testA"), ("val_b", "testB"))}
        super().__init__(**folders, load_size=load_size, **kwargs)

    def prepare_data(self) -> None:
        build_demo(self.root, size=self.image_size)
