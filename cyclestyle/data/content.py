"""One collection of content photos for the feed-forward style families: a folder
(`data=content data.content=DIR`) or a stream (`data=content_stream data.content=URI`).

The two-domain datamodule with domain A only: the same scanning, decoding (broken files skipped),
augmentation, DDP sharding and exact mid-epoch resume (`UnpairedDataModule` and its sampler), with
batches {"A": (B, 3, H, W) in [-1, 1]}. The style images are the model's (`model.styles`), not data.
"""
from __future__ import annotations

from torch.utils.data import DataLoader

from .datamodule import PositionedLoader, UnpairedDataModule
from .datasets import OneDomain

SETTINGS = {"a": "data.content", "val_a": "data.val_content"}


class ContentDataModule(UnpairedDataModule):
    """Content photos for fast_style / multi_style. `val_content` names a validation folder; without it
    `num_val` photos are held out of `content` (at most a quarter of them)."""

    domains = ("a",)

    def __init__(self, *, content: str, val_content: str | None = None, **kwargs) -> None:
        super().__init__(a=content, b=None, val_a=val_content, val_b=None, **kwargs)

    def _setting(self, key: str) -> str:
        return SETTINGS[key]

    def train_dataloader(self) -> DataLoader:
        return self._loader(OneDomain(self.files["a"], self.train_transform), sampler=self.sampler,
                            loader=PositionedLoader)

    def val_dataloader(self) -> DataLoader:
        return self._loader(OneDomain(self.files["val_a"], self.val_transform), shuffle=False)

