"""Content photos streamed with litdata for the feed-forward style families
(`data=content_stream data.content=URI`); its own module so that `cyclestyle.data` does not import litdata."""
from __future__ import annotations

from .content import SETTINGS
from .streams import StreamingUnpairedDataModule


class ContentStreamDataModule(StreamingUnpairedDataModule):
    """Content photos streamed with litdata (`data=content_stream data.content=URI`): a packed set at a
    path or s3:// / gs:// URL, or a folder packed once into the cache; the stream option's sharding
    across ranks and workers, batches {"A": ...}. `val_content`: a folder or packed set; without it the
    first `num_val` photos of `content` (they stay in training)."""

    domains = ("a",)

    def __init__(self, *, content: str, val_content: str | None = None, **kwargs) -> None:
        super().__init__(a=content, b=None, val_a=val_content, val_b=None, **kwargs)

    def _setting(self, key: str) -> str:
        return SETTINGS[key]
