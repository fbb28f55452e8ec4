"""Reading an offline wandb run's `.wandb` file back (tests only): the file is a LevelDB-style
log of protobuf `Record`s (7-byte ":W&B" header, 32 KiB blocks, records split into
FULL/FIRST/MIDDLE/LAST pieces with a 7-byte header each)."""
from __future__ import annotations

import struct
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list:
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", path
    out, pos, pending = [], HEADER, b""
    while pos + HEADER <= len(data):
        space = BLOCK - pos % BLOCK
        if space < HEADER:  # block trailer padding
            pos += space
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        if kind == 0 and length == 0:
            pos += space
            continue
        piece = data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind == FULL:
            pending = piece
        elif kind == FIRST:
            pending = piece
            continue
        elif kind == MIDDLE:
            pending += piece
            continue
        elif kind == LAST:
            pending += piece
        record = wandb_internal_pb2.Record()
        record.ParseFromString(pending)
        out.append(record)
    return out


def wait_until_complete(path: Path, timeout: float = 60.0) -> Path:
    """wandb's writer process may still be flushing after `wandb.finish()` returns (seen under
    load): wait until the run's exit record is in the file."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            if any(r.WhichOneof("record_type") == "exit" for r in records(path)):
                return path
        except Exception:  # noqa: BLE001 -- a half-written record: read again
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path}: no exit record after {timeout} s")
        time.sleep(0.2)


def history(path: Path) -> list[dict]:
    """Each logged row as {key: json value string}."""
    return [{item.key or "/".join(item.nested_key): item.value_json for item in r.history.item}
            for r in records(path) if r.WhichOneof("record_type") == "history"]


def run_info(path: Path):
    return next(r.run for r in records(path) if r.WhichOneof("record_type") == "run")
