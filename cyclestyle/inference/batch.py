"""Translating many files fast: DataLoader workers decode, same-size images share a batch, the
generator runs under `torch.inference_mode` (and autocast), a thread pool encodes and writes
atomically while the next batch runs. Broken inputs, and inputs the generator fails on, are listed
and skipped, never fatal."""
from __future__ import annotations

import os
import time
from collections import defaultdict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..atomic import DiskFullError
from ..pixels import from_uint8, to_uint8
from .files import Job, decode, save_atomic
from .jobs import Summary, pending, stop_for_space
from .tiling import translate_any_size

_SWAPS_SIDES = (5, 6, 7, 8)  # EXIF orientations that rotate by 90 degrees


class _Images(Dataset):
    """Decodes job i to {"index", "image": (3, H, W) uint8, "alpha": (H, W) uint8 | None}, or
    {"index", "error"} for a file that cannot be read."""

    def __init__(self, jobs: list[Job]) -> None:
        self.jobs = jobs

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, index: int) -> dict:
        try:
            rgb, alpha = decode(self.jobs[index].source)
        except Exception as error:  # noqa: BLE001 -- any decoder failure means "skip this file"
            return {"index": index, "error": f"{type(error).__name__}: {error}"}
        return {"index": index, "image": torch.from_numpy(rgb.copy()).permute(2, 0, 1), "alpha": alpha}


def image_size(path: Path) -> tuple[int, int] | None:
    """(H, W) after EXIF orientation, from the header only; None if the header is unreadable."""
    try:
        with Image.open(path) as image:
            w, h = image.size
            orientation = image.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 -- decided (and reported) when the file is decoded
        return None
    return (w, h) if orientation in _SWAPS_SIDES else (h, w)


def size_batches(sizes: list[tuple[int, int] | None], batch_size: int) -> list[list[int]]:
    """Indices grouped so that a batch only holds images of one size, at most `batch_size` each.
    Unknown sizes go alone."""
    groups: dict[object, list[int]] = defaultdict(list)
    for index, size in enumerate(sizes):
        groups[size if size is not None else ("unknown", index)].append(index)
    return [members[i : i + batch_size] for members in groups.values() for i in range(0, len(members), batch_size)]


def _as_list(items: list[dict]) -> list[dict]:
    return items


def default_workers(device: torch.device) -> int:
    """Decode processes for `translate`: 2 feeding a GPU; on the CPU only cores the generator
    leaves free (torch uses one thread per core), as a worker there takes time from its
    convolutions (2 cores, 256 px: 2.10 images/s with 0 workers, 1.96-2.03 with 2)."""
    cores = os.cpu_count() or 1
    return min(2, cores) if device.type == "cuda" else min(2, max(0, cores - torch.get_num_threads()))


def translate_files(
    jobs: list[Job],
    generator,
    *,
    batch_size: int = 4,
    workers: int = 2,
    tile: int | None = None,
    tile_overlap: int = 32,
    overwrite: bool = False,
    quality: int = 95,
    progress: bool = True,
) -> Summary:
    """Translate every job's source into its target; returns what happened."""
    summary, start = Summary("images"), time.perf_counter()
    todo = pending(jobs, summary, overwrite=overwrite)
    if not todo:
        return summary
    batches = size_batches([image_size(job.source) for job in todo], batch_size)
    loader = DataLoader(_Images(todo), batch_sampler=batches, num_workers=workers, collate_fn=_as_list,
                        pin_memory=generator.device.type == "cuda", prefetch_factor=4 if workers else None)
    writing: deque[tuple[Job, Future]] = deque()
    bar = tqdm(total=len(todo), unit="img", disable=not progress, dynamic_ncols=True)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as writers:
        try:
            for items in loader:
                good = [item for item in items if "error" not in item]
                summary.failed += [(todo[item["index"]].source, item["error"]) for item in items if "error" in item]
                for item, rgb in _translate_batch(generator, good, tile, tile_overlap, summary, todo):
                    job = todo[item["index"]]
                    writing.append((job, writers.submit(save_atomic, rgb, item["alpha"], job.target, quality=quality)))
                while writing and (writing[0][1].done() or len(writing) > 4 * batch_size):
                    _finish(writing.popleft(), summary)
                bar.update(len(items))
                bar.set_postfix(failed=len(summary.failed), refresh=False)
        finally:
            while writing:
                _finish(writing.popleft(), summary)
            bar.close()
    summary.seconds = time.perf_counter() - start
    return summary


def _run(generator, items: list[dict], tile: int | None, overlap: int) -> np.ndarray:
    """(B, H, W, 3) uint8 translations of same-size decoded items."""
    x = from_uint8(torch.stack([item["image"] for item in items]))  # (B, 3, H, W)
    y = translate_any_size(generator, x, multiple=generator.size_multiple, fixed_size=generator.fixed_size,
                           tile=tile, overlap=overlap)
    return to_uint8(y).permute(0, 2, 3, 1).cpu().numpy()  # (B, H, W, 3)


def _translate_batch(generator, items: list[dict], tile: int | None, overlap: int, summary: Summary,
                     jobs: list[Job]) -> list[tuple[dict, np.ndarray]]:
    """(item, (H, W, 3) uint8) for each item the generator translates. A failing batch is retried
    image by image (it may be too large together); images that still fail are listed in `summary`."""
    if not items:
        return []
    try:
        return list(zip(items, _run(generator, items, tile, overlap)))
    except Exception as error:  # noqa: BLE001 -- a model file can fail in any way (onnxruntime's errors are not RuntimeErrors)
        if len(items) > 1:
            return [done for item in items for done in _translate_batch(generator, [item], tile, overlap, summary, jobs)]
        text = " ".join(str(error).split())  # one line: onnxruntime puts the detail on later lines
        reason = text if len(text) <= 300 else text[:297] + "..."
        h, w = items[0]["image"].shape[1:]
        summary.failed.append((jobs[items[0]["index"]].source,
                               f"the generator failed on this {w}x{h} image: {type(error).__name__}: {reason}"))
        return []


def _finish(entry: tuple[Job, Future], summary: Summary) -> None:
    job, future = entry
    try:
        future.result()
        summary.translated += 1
    except OSError as error:
        if isinstance(error, DiskFullError):  # every later output would fail too: stop, keeping what is whole
            raise stop_for_space(error) from None
        summary.failed.append((job.source, f"cannot write {job.target}: {error}"))
