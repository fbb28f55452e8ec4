"""What every translate job kind shares: skipping finished outputs, trying each job on its own (a
broken file is listed, never fatal), the progress bar, and one summary type for images, videos and
animations."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tqdm.auto import tqdm

from ..atomic import DiskFullError

from .files import Job


@dataclass
class Summary:
    """What one run over jobs of one kind did."""

    kind: str = "images"  # images | videos | animations
    translated: int = 0
    skipped: int = 0  # outputs that already existed
    frames: int = 0  # videos and animations: frames written
    failed: list[tuple[Path, str]] = field(default_factory=list)  # (input, one-line reason)
    notes: list[str] = field(default_factory=list)  # per clip: how its audio was carried, padding
    seconds: float = 0.0

    def line(self, output: Path) -> str:
        tail = f"-> {output}; {self.skipped} already there (skipped), {len(self.failed)} failed"
        if self.kind == "images":
            rate = self.translated / self.seconds if self.seconds > 0 else 0.0
            return f"Translated {self.translated} images in {self.seconds:.1f} s ({rate:.2f} images/s) {tail}"
        rate = self.frames / self.seconds if self.seconds > 0 else 0.0
        return (f"Translated {self.translated} {self.kind} ({self.frames} frames in {self.seconds:.1f} s, "
                f"{rate:.2f} frames/s) {tail}")


def stop_for_space(full: DiskFullError) -> DiskFullError:
    """The error that stops a translate run on a full disk, saying how to finish it."""
    return DiskFullError(full.errno, f"{full}; the outputs written so far are whole and kept: free space and run "
                                     f"the same command again to translate the rest")


def pending(jobs: list[Job], summary: Summary, *, overwrite: bool) -> list[Job]:
    """The jobs still to do (all with `overwrite`); the others count as skipped in `summary`."""
    todo = [job for job in jobs if overwrite or not job.target.exists()]
    summary.skipped += len(jobs) - len(todo)
    return todo


def run_each(jobs: list[Job], translate_one: Callable[[Job, tqdm], tuple[int, list[str]]], *, kind: str,
             overwrite: bool, progress: bool, total: Callable[[list[Job]], int | None] = lambda todo: None,
             reason: Callable[[Exception], str] = lambda error: f"{type(error).__name__}: {error}") -> Summary:
    """Run `translate_one(job, bar) -> (frames, notes)` on every job not done yet, one at a time.
    A job that raises is listed with `reason(error)` and the run goes on; Ctrl-C and SIGTERM
    (BaseExceptions) stop it. `total(todo)`: the frames to expect, for the bar (None: unknown)."""
    summary, start = Summary(kind), time.perf_counter()
    todo = pending(jobs, summary, overwrite=overwrite)
    if not todo:
        return summary
    with tqdm(total=total(todo), unit="frame", disable=not progress, dynamic_ncols=True) as bar:
        for job in todo:
            bar.set_description(job.source.name, refresh=False)
            try:
                frames, notes = translate_one(job, bar)
            except Exception as error:  # noqa: BLE001 -- any failure of one file means "list it, go on"
                if isinstance(error, DiskFullError):  # ... but a full disk fails every later one: stop
                    raise stop_for_space(error) from None
                summary.failed.append((job.source, reason(error)))
                continue
            summary.translated += 1
            summary.frames += frames
            summary.notes += [f"{job.source}: {'; '.join(notes)}"] if notes else []
    summary.seconds = time.perf_counter() - start
    return summary
