"""Image folder -> litdata streaming data set (local folder or s3:// / gs:// URL).

Each item is {"image": encoded bytes, "name": the source path relative to the folder, as the file
system's bytes (`os.fsencode`: UTF-8 for valid names, any other name kept exactly; `os.fsdecode`
gives it back)}.
Images are decoded, turned upright (EXIF) and RGB, optionally scaled down so that their longer
side is at most `max_side`, and stored as JPEG/WebP/PNG bytes in litdata's chunk files; or, with
`image_format="original"`, as the source file's own bytes (decoded only to check them; an image
larger than `max_side` is scaled and stored as PNG).
Unreadable files are skipped and listed; nothing is written over an existing data set unless
`overwrite`.
"""
from __future__ import annotations

import io
import multiprocessing
import os
import sys
import threading
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image
from tqdm import tqdm

from .images import find_images, load_rgb, open_regular
from .object_store import allow_plain_http_endpoint

FORMATS = {"jpeg": "JPEG", "webp": "WEBP", "png": "PNG", "original": None}  # original: the file's own bytes
CHUNK_BYTES = "64MB"  # litdata's chunk files: large enough for fast object-store reads
allow_plain_http_endpoint()  # at import too: spawned workers import this module


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
    """Pack every image under `folder` (recursive) into a streaming data set at `output`."""
    if image_format not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {image_format!r}")
    if max_side is not None and max_side < 1:
        raise ValueError(f"--max-side must be >= 1, got {max_side}")
    files = find_images(folder, setting="FOLDER")
    if "://" not in output:
        output = str(Path(output).expanduser().resolve())
        if not overwrite and (Path(output) / "index.json").exists():
            raise _already_packed(output)
    allow_plain_http_endpoint()
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
                fn=work, inputs=[str(f) for f in files], output_dir=output, chunk_bytes=CHUNK_BYTES,
                num_workers=workers or os.cpu_count() or 1, mode="overwrite" if overwrite else None,
                # fork keeps the caller's start method (litdata would switch the whole process to spawn)
                start_method="fork" if sys.platform == "linux" else None, verbose=False,
            )
        except RuntimeError as error:
            if "already contains" in str(error):  # litdata's check, for object-store outputs
                raise _already_packed(output) from None
            raise
        finally:
            done.put(None)
            counter.join()
            bar.close()
        result = PackResult(images=len(files) - len(skipped), skipped=sorted(skipped))
    if result.images == 0:
        raise ValueError(f"FOLDER: none of the {len(files)} images under {folder} could be read")
    return result


def _already_packed(output: str) -> FileExistsError:
    return FileExistsError(f"{output} already holds a packed data set; pass --overwrite to replace it")


def _count(done, bar: tqdm) -> None:
    """Moves the progress bar as the workers finish files (they put 1 per file; None ends)."""
    while done.get() is not None:
        bar.update(1)
