"""Where data lives: local folders, packed streams, object-store URLs, and litdata's settings for them."""
from __future__ import annotations

import os
from pathlib import Path

REMOTE_SCHEMES = ("s3://", "gs://", "azure://", "hf://")


def is_remote(uri: str) -> bool:
    return str(uri).startswith(REMOTE_SCHEMES)


def is_stream(uri: str) -> bool:
    """A packed data set: an object-store URL, or a local folder holding litdata's index.json."""
    return is_remote(uri) or (Path(uri).expanduser() / "index.json").is_file()


def allow_plain_http_endpoint() -> None:
    """Let litdata reach an S3-compatible server over plain http (AWS_ENDPOINT_URL=http://...,
    e.g. MinIO on a private network or a local test server).

    litdata moves chunk files with obstore, whose HTTP client refuses http:// endpoints unless
    told otherwise, and litdata offers no setting for it (litdata 0.2.76); this adds obstore's
    `allow_http` to the client options litdata passes. https endpoints are left alone.
    """
    if not os.environ.get("AWS_ENDPOINT_URL", "").startswith("http://"):
        return
    from litdata.streaming import downloader

    options = getattr(downloader, "_OBSTORE_CLIENT_OPTIONS", None)
    if isinstance(options, dict) and "allow_http" not in options:
        downloader._OBSTORE_CLIENT_OPTIONS = {**options, "allow_http": "true"}
