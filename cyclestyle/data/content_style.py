"""Content photos and style images (`data=content_style data.content=DIR data.style=DIR`) for AdaIN:
the two-domain folders datamodule with A = content and B = style, under their own setting names."""
from __future__ import annotations

from .datamodule import UnpairedDataModule

SETTINGS = {"a": "data.content", "b": "data.style", "val_a": "data.val_content", "val_b": "data.val_style"}


class ContentStyleDataModule(UnpairedDataModule):
    """Batches {"A": content, "B": style}, unpaired, as `UnpairedDataModule` (scanning, augmentation,
    DDP shards, exact resume); errors name data.content / data.style."""

    def __init__(self, *, content: str, style: str, val_content: str | None = None, val_style: str | None = None,
                 **kwargs) -> None:
        super().__init__(a=content, b=style, val_a=val_content, val_b=val_style, **kwargs)

    def _setting(self, key: str) -> str:
        return SETTINGS[key]
