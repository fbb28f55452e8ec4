"""Map-style datasets over two image folders; broken files are skipped, never fatal (a list where
none decodes is refused before training by `first_readable`)."""
from __future__ import annotations

import warnings
from pathlib import Path

import albumentations as A
import torch
from torch.utils.data import Dataset

from .images import load_rgb
from .sampling import Item
from .transforms import seed_augmentation


def first_readable(files: list[Path], *, what: str, max_errors: int = 3) -> int:
    """Index of the first of `files` that decodes, trying them in order; a ValueError starting with
    `what` (e.g. "data.a: no image in FOLDER") and listing the first `max_errors` errors if none does."""
    errors = []
    for i, path in enumerate(files):
        try:
            load_rgb(path)
            return i
        except Exception as error:  # PIL raises many types for broken files
            errors.append(f"{path}: {error}")
    listed = "; ".join(errors[:max_errors]) + (f"; and {len(errors) - max_errors} more" if len(errors) > max_errors else "")
    raise ValueError(f"{what} could be decoded (tried all {len(files)}): {listed}")


class ImageFolderReader:
    """Reads image i of a list, substituting the next readable file for a broken one."""

    def __init__(self, files: list[Path]) -> None:
        self.files = files
        self.broken: set[int] = set()  # per process (each DataLoader worker keeps its own)

    def __len__(self) -> int:
        return len(self.files)

    def read(self, index: int):
        for offset in range(len(self.files)):
            i = (index + offset) % len(self.files)
            if i in self.broken:
                continue
            try:
                return load_rgb(self.files[i])  # (H, W, 3) uint8
            except Exception as error:  # PIL raises many types for broken files
                self.broken.add(i)
                warnings.warn(f"skipping unreadable image {self.files[i]}: {error}", stacklevel=2)
        raise RuntimeError(f"none of the {len(self.files)} images under {self.files[0].parent} could be read")


class _TwoDomains(Dataset):
    def __init__(self, files_a: list[Path], files_b: list[Path], transform: A.Compose) -> None:
        self.a, self.b = ImageFolderReader(files_a), ImageFolderReader(files_b)
        self.transform = transform

    def __len__(self) -> int:
        return max(len(self.a), len(self.b))


class UnpairedImages(_TwoDomains):
    """Item (i_a, i_b, seed) -> {"A": (3, H, W), "B": (3, H, W)} in [-1, 1], augmented with `seed`."""

    def _augment(self, image, seed: int) -> torch.Tensor:
        return seed_augmentation(self.transform, seed)(image=image)["image"]

    def __getitem__(self, item: Item) -> dict[str, torch.Tensor]:
        i_a, i_b, seed = item
        return {"A": self._augment(self.a.read(i_a), seed), "B": self._augment(self.b.read(i_b), seed + 1)}


class PairedByIndex(_TwoDomains):
    """Validation: item i is (A[i % n_a], B[i % n_b]), deterministic (no random augmentation)."""

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        a = self.transform(image=self.a.read(i % len(self.a)))["image"]
        b = self.transform(image=self.b.read(i % len(self.b)))["image"]
        return {"A": a, "B": b}


class OneDomain(Dataset):
    """Domain A alone (the style families' content photos): a sampler item (i, _, seed) -> {"A": image i
    augmented with `seed`}; an index i (validation, `transform` without randomness) -> {"A": image i}."""

    def __init__(self, files, transform: A.Compose) -> None:
        self.images, self.transform = ImageFolderReader(files), transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, item: Item | int) -> dict[str, torch.Tensor]:
        if isinstance(item, int):
            return {"A": self.transform(image=self.images.read(item))["image"]}
        index, _, seed = item
        return {"A": seed_augmentation(self.transform, seed)(image=self.images.read(index))["image"]}
