"""Image folder -> litdata streaming data set (local folder or s3:// / gs:// URL).

Each item is {"image": encoded bytes, "name": the source path relative to the folder, as the file
system's bytes (`os.fsencode`: UTF-8 for valid names, any other name kept exactly; `os.fsdecode`
gives it back)}.
Images are decoded, turned upright (EXIF) and RGB, optionally scaled down so that their longer
side is at most `max_side`, and stored as JPEG/WebP/PNG bytes in litdata's chunk files; or, with
`image_format="original"`, as the source file's own bytes (decoded only to check them; an image
larger than `max_side` is scaled and stored as PNG).
Unreadable files are skipped and listed; nothing is written over an existing data set unless
`overwrite`; a set appears at its target whole or not at all (`pack`).
"""
from __future__ import annotations

import errno
import io
import json
import multiprocessing
import os
import re
import shutil
import sys
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image
from tqdm import tqdm

from .images import find_images, load_rgb, open_regular
from ..errors import first_line
from .object_store import StorageError, open_store, store_has

FORMATS = {"jpeg": "JPEG", "webp": "WEBP", "png": "PNG", "original": None}  # original: the file's own bytes
CHUNK_BYTES = "64MB"  # litdata's chunk files: large enough for fast object-store reads

# litdata's chunk files, under a pack's own prefix when uploaded (`_upload`); nothing else at a
# target is ever deleted.
CHUNK_NAME = re.compile(r"([0-9a-f]{12}-)?chunk-[\w.-]*\.bin(\.\w+)?")


@dataclass
class PackResult:
    images: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)


def encode(image: np.ndarray, *, max_side: int | None, image_format: str = "jpeg", quality: int = 95) -> bytes:
    """(H, W, 3) uint8 RGB -> compressed bytes, scaled down to `max_side` (longer side) if larger."""
    picture = Image.fromarray(image)
    if max_side is not None and max(picture.size) > max_side:
        scale = max_side / max(picture.size)
        size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        picture = picture.resize(size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    options = {"quality": quality} if image_format in ("jpeg", "webp") else {}
    picture.save(buffer, FORMATS[image_format], **options)
    return buffer.getvalue()


def _pack_one(path: str, *, root: str, max_side: int | None, image_format: str, quality: int,
              skipped, done) -> Iterator[dict]:
    """litdata worker: yields the item for `path`, or nothing (and notes why) for a broken file."""
    try:
        image = load_rgb(path)  # decodes every file: broken ones are caught here, not in training
        if image_format == "original" and (max_side is None or max(image.shape[:2]) <= max_side):
            with open_regular(path) as file:  # never blocks, should the file have become a FIFO
                data = file.read()
        else:
            data = encode(image, max_side=max_side, image_format="png" if image_format == "original" else image_format,
                          quality=quality)
    except Exception as error:  # PIL raises many types for broken files
        skipped.append((path, f"{type(error).__name__}: {error}"))
    else:
        yield {"image": data, "name": os.fsencode(os.path.relpath(path, root))}
    finally:
        done.put(1)


def pack(folder: str | os.PathLike, output: str, *, max_side: int | None = 512, image_format: str = "jpeg",
         quality: int = 95, workers: int | None = None, overwrite: bool = False, progress: bool = True) -> PackResult:
    """Pack every image under `folder` (recursive) into a streaming data set at `output`.

    The set is built in a staging folder and published whole: a local one is renamed into place, a
    remote one uploaded with its index.json last (readers see a data set only once that exists). So a
    pack that dies (killed, full disk, the store going away) leaves no half data set at `output`, two
    packs into one target leave one whole set (the other is refused), and a rerun starts clean."""
    if image_format not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {image_format!r}")
    if max_side is not None and max_side < 1:
        raise ValueError(f"--max-side must be >= 1, got {max_side}")
    files = find_images(folder, setting="FOLDER")
    remote = "://" in output
    if not remote:
        output = str(Path(output).expanduser().resolve())
        Path(output).parent.mkdir(parents=True, exist_ok=True)
    if not overwrite and (store_has(open_store(output), "index.json", url=output) if remote
                          else (Path(output) / "index.json").exists()):
        raise _already_packed(output)
    # Local: stage beside the output (same file system, so publishing is one rename); remote: in TMPDIR.
    with tempfile.TemporaryDirectory(prefix=".cyclestyle-pack-", dir=None if remote else Path(output).parent,
                                     ignore_cleanup_errors=True) as staging:
        result = _build(folder, files, staging, max_side=max_side, image_format=image_format, quality=quality,
                        workers=workers or os.cpu_count() or 1, progress=progress)
        if result.images == 0:
            raise ValueError(f"FOLDER: none of the {len(files)} images under {folder} could be read")
        (_upload if remote else _rename_into_place)(Path(staging), output, overwrite=overwrite)
    return result


def _build(folder, files: list[Path], staging: str, *, max_side: int | None, image_format: str, quality: int,
           workers: int, progress: bool) -> PackResult:
    """litdata.optimize of `files` into the empty local folder `staging`."""
    import litdata

    with multiprocessing.Manager() as manager:
        skipped, done = manager.list(), manager.Queue()
        bar = tqdm(total=len(files), unit="img", disable=not progress, desc=f"packing {folder}")
        counter = threading.Thread(target=_count, args=(done, bar), daemon=True)
        counter.start()
        work = partial(_pack_one, root=str(Path(folder).expanduser()), max_side=max_side,
                       image_format=image_format, quality=quality, skipped=skipped, done=done)
        try:
            litdata.optimize(
                fn=work, inputs=[str(f) for f in files], output_dir=staging, chunk_bytes=CHUNK_BYTES,
                num_workers=workers,
                # fork keeps the caller's start method (litdata would switch the whole process to spawn)
                start_method="fork" if sys.platform == "linux" else None, verbose=False,
            )
        finally:
            done.put(None)
            counter.join()
            bar.close()
        return PackResult(images=len(files) - len(skipped), skipped=sorted(skipped))


def _rename_into_place(staging: Path, output: str, *, overwrite: bool) -> None:
    """Publish a local set: one rename (it fails if another pack got there first)."""
    target = Path(output)
    try:
        os.rename(staging, target)  # atomic; replaces an empty folder, never a full one
        return
    except OSError as error:
        if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    if not (target / "index.json").is_file():
        raise FileExistsError(f"{output} exists and holds other files (not a packed data set): choose another output")
    if not overwrite:  # another pack published while this one ran
        raise _already_packed(output)
    aside = target.with_name(f".{target.name}.replaced-{uuid.uuid4().hex[:8]}")
    os.rename(target, aside)
    os.rename(staging, target)
    shutil.rmtree(aside, ignore_errors=True)


def _upload(staging: Path, url: str, *, overwrite: bool) -> None:
    """Publish a remote set: chunks under names unique to this pack, then index.json, created only if
    absent (unless `overwrite`). A failure removes what this pack uploaded, as far as the store lets."""
    import obstore
    from obstore.exceptions import AlreadyExistsError

    store, pack_id = open_store(url), uuid.uuid4().hex[:12]
    index = json.loads((staging / "index.json").read_text())
    uploaded: list[str] = []
    try:
        for chunk in index["chunks"]:
            name = f"{pack_id}-{chunk['filename']}"  # two packs never write the same object
            obstore.put(store, name, staging / chunk["filename"])
            uploaded.append(name)
            chunk["filename"] = name
        obstore.put(store, "index.json", json.dumps(index).encode(), mode="overwrite" if overwrite else "create")
    except AlreadyExistsError:
        _discard(store, uploaded)
        raise _already_packed(url) from None
    except Exception as error:  # noqa: BLE001 -- obstore's network errors have their own types
        _discard(store, uploaded)
        raise StorageError(f"{url}: uploading the packed data set failed ({first_line(error)}); nothing was "
                           "published (index.json is written last): run the same command again once the store "
                           "answers") from error
    # Chunks nothing refers to any more: a replaced set's, or those of a pack that died mid-upload.
    kept = {chunk["filename"] for chunk in index["chunks"]} | {"index.json"}
    stale = [o["path"] for batch in obstore.list(store) for o in batch
             if o["path"] not in kept and CHUNK_NAME.fullmatch(o["path"])]
    _discard(store, stale)


def _discard(store, names: list[str]) -> None:
    import obstore

    try:
        if names:
            obstore.delete(store, names)
    except Exception:  # noqa: BLE001 -- best effort: the store may be the reason we are here
        pass


def _already_packed(output: str) -> FileExistsError:
    return FileExistsError(f"{output} already holds a packed data set; pass --overwrite to replace it")


def _count(done, bar: tqdm) -> None:
    """Moves the progress bar as the workers finish files (they put 1 per file; None ends)."""
    while done.get() is not None:
        bar.update(1)
