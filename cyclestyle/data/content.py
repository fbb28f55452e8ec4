"""One folder of content photos (`data=content data.content=DIR`) for the feed-forward style families.

The two-domain datamodule with domain A only: the same scanning, decoding (broken files skipped),
augmentation, DDP sharding and exact mid-epoch resume (`UnpairedDataModule` and its sampler), with
batches {"A": (B, 3, H, W) in [-1, 1]}. The style images are the model's (`model.styles`), not data.
"""
from __future__ import annotations

from pathlib import Path

import albumentations as A
import torch
from torch.utils.data import DataLoader, Dataset

from .datamodule import PositionedLoader, UnpairedDataModule
from .datasets import ImageFolderReader
from .sampling import Item
from .transforms import seed_augmentation

SETTINGS = {"a": "data.content", "val_a": "data.val_content"}


class ContentImages(Dataset):
    """Training: item (i, _, seed) -> {"A": image i augmented with `seed`}; validation (`transform`
    without randomness): item i -> {"A": image i}."""

    def __init__(self, files: list[Path], transform: A.Compose) -> None:
        self.images, self.transform = ImageFolderReader(files), transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, item: Item | int) -> dict[str, torch.Tensor]:
        if isinstance(item, int):
            return {"A": self.transform(image=self.images.read(item))["image"]}
        index, _, seed = item
        return {"A": seed_augmentation(self.transform, seed)(image=self.images.read(index))["image"]}


class ContentDataModule(UnpairedDataModule):
    """Content photos for fast_style / multi_style. `val_content` names a validation folder; without it
    `num_val` photos are held out of `content` (at most a quarter of them)."""

    domains = ("a",)

    def __init__(self, *, content: str, val_content: str | None = None, **kwargs) -> None:
        super().__init__(a=content, b=None, val_a=val_content, val_b=None, **kwargs)

    def _setting(self, key: str) -> str:
        return SETTINGS[key]

    def train_dataloader(self) -> DataLoader:
        return self._loader(ContentImages(self.files["a"], self.train_transform), sampler=self.sampler,
                            loader=PositionedLoader)

    def val_dataloader(self) -> DataLoader:
        return self._loader(ContentImages(self.files["val_a"], self.val_transform), shuffle=False)
