"""Albumentations pipelines for the reference preprocess modes.

resize_and_crop       resize to load_size x load_size, random crop crop_size (default: 286 -> 256)
crop                  random crop crop_size
scale_width           resize width to load_size (height keeps the aspect ratio, at least crop_size)
scale_width_and_crop  scale_width, then random crop crop_size
none                  keep the size, rounded to multiples of 4

Images whose shorter side is below crop_size are first resized up. Validation uses the
same pipeline with centre crops and no flip. Output: (3, H, W) float in [-1, 1].
"""
from __future__ import annotations

import functools
import random

import albumentations as A
import cv2
import numpy as np
from albumentations.pytorch import ToTensorV2

PREPROCESS_MODES = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if (image.shape[1], image.shape[0]) == (width, height):
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC)


def at_least(image: np.ndarray, *, min_side: int, **_) -> np.ndarray:
    """Resize up (keeping the aspect ratio) so the shorter side is >= min_side."""
    h, w = image.shape[:2]
    if min(h, w) >= min_side:
        return image
    scale = min_side / min(h, w)
    return _resize(image, max(min_side, round(w * scale)), max(min_side, round(h * scale)))


def scale_width(image: np.ndarray, *, width: int, min_height: int, **_) -> np.ndarray:
    h, w = image.shape[:2]
    return _resize(image, width, max(min_height, round(width * h / w)))


def round_to_multiple(image: np.ndarray, *, base: int = 4, **_) -> np.ndarray:
    h, w = image.shape[:2]
    return _resize(image, max(base, round(w / base) * base), max(base, round(h / base) * base))


def _step(fn, **kwargs) -> A.Lambda:
    return A.Lambda(image=functools.partial(fn, **kwargs), p=1.0)


def build_transform(
    *, preprocess: str, load_size: int, crop_size: int, flip: bool, train: bool
) -> A.Compose:
    if preprocess not in PREPROCESS_MODES:
        raise ValueError(f"data.preprocess={preprocess!r} is not known; choose one of {', '.join(PREPROCESS_MODES)}")
    if crop_size <= 0 or load_size <= 0:
        raise ValueError(f"data.load_size and data.crop_size must be positive, got {load_size} and {crop_size}")
    if "crop" in preprocess and preprocess != "crop" and crop_size > load_size:
        raise ValueError(f"data.crop_size={crop_size} must not exceed data.load_size={load_size} for preprocess={preprocess}")
    crop = A.RandomCrop if train else A.CenterCrop
    steps: list = []
    if preprocess == "resize_and_crop":
        steps = [A.Resize(load_size, load_size, interpolation=cv2.INTER_CUBIC), crop(crop_size, crop_size)]
    elif preprocess == "crop":
        steps = [_step(at_least, min_side=crop_size), crop(crop_size, crop_size)]
    elif preprocess == "scale_width":
        steps = [_step(scale_width, width=load_size, min_height=crop_size), _step(round_to_multiple)]
    elif preprocess == "scale_width_and_crop":
        steps = [_step(scale_width, width=load_size, min_height=crop_size), crop(crop_size, crop_size)]
    else:
        steps = [_step(round_to_multiple)]
    if flip and train:
        steps.append(A.HorizontalFlip(p=0.5))
    steps += [A.Normalize(mean=0.5, std=0.5, max_pixel_value=255.0), ToTensorV2()]
    return A.Compose(steps)


def seed_augmentation(transform: A.Compose, seed: int) -> A.Compose:
    """Seeds `transform` for one item: one pair of generators shared by all its steps, which draw
    in turn, as in an unseeded Compose. Not `Compose.set_random_seed(seed)`: that gives each step
    generators of its own from the same seed, so RandomCrop's first draw (its vertical offset) would
    also be HorizontalFlip's coin: crops from the upper half always flipped, the lower half never."""
    transform.set_random_state(np.random.default_rng(seed), random.Random(seed))
    return transform
