"""Where data lives: local folders, packed streams, object-store URLs, and litdata's settings for them."""
from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from ..errors import first_line

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


# Bounded patience with an object store: a dead endpoint fails within seconds, a hung one after
# RETRY_TIMEOUT; never an endless wait (obstore's defaults are 10 retries over 3 minutes).
STORE_RETRIES = 5
RETRY_TIMEOUT = timedelta(seconds=60)
REQUEST_TIMEOUT = "60s"


class StorageError(OSError):
    """An object store did not answer after bounded retries, or refused a request."""


def open_store(url: str):
    """An obstore store rooted at `url` (s3://bucket/prefix, gs://..., az://...): credentials and
    endpoint from the usual environment variables (AWS_ENDPOINT_URL etc.), bounded retries."""
    from obstore.store import from_url

    options = {"timeout": REQUEST_TIMEOUT, "connect_timeout": "10s"}
    if os.environ.get("AWS_ENDPOINT_URL", "").startswith("http://"):
        options["allow_http"] = True
    return from_url(url.replace("azure://", "az://", 1), client_options=options,
                    retry_config={"max_retries": STORE_RETRIES, "retry_timeout": RETRY_TIMEOUT})


def store_has(store, key: str, *, url: str) -> bool:
    import obstore

    try:
        obstore.head(store, key)
        return True
    except FileNotFoundError:
        return False
    except Exception as error:  # noqa: BLE001 -- obstore raises its own types for network failures
        raise StorageError(f"{url}: the object store did not answer ({first_line(error)})") from error
