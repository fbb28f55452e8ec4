"""Animated GIFs, WebPs and PNGs (APNG): every frame goes through the generator as a video frame does
(`tiling.translate_frames`, `batch_size` frames per call, `--temporal-smoothing` if asked), and
the result is written back in the input's format with its frame durations and loop count, so a
translated animation plays like the original. Pillow decodes (frames composed over the previous
ones, as a viewer shows them) and encodes (GIF: an adaptive 256-colour palette per frame); the
output is written to a temporary file and renamed, so an interrupted run never leaves a partial
file. A still GIF, WebP or PNG is an image (translated to `--format`); transparency is not kept. An
animation is held in memory whole (its frames and their translations: ~10 bytes per pixel per
frame; Pillow's writers need every frame), which suits GIF-sized clips; long ones are videos.

    summary = translate_animations(jobs, generator, batch_size=4, smoothing=0.5)
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence
from tqdm.auto import tqdm

from ..atomic import atomic_target
from ..data.images import open_image, to_rgb
from .files import PIL_FORMATS, Job
from .jobs import Summary, run_each
from .smoothing import TemporalSmoother
from .tiling import translate_frames

ANIMATED_SUFFIXES = (".gif", ".webp", ".png")  # .png: APNG


def is_animation(path: Path) -> bool:
    """A GIF, WebP or PNG with more than one frame (unreadable files are left to the image path, which lists them)."""
    if path.suffix.lower() not in ANIMATED_SUFFIXES:
        return False
    try:
        with open_image(path) as image:
            return bool(getattr(image, "is_animated", False))
    except (OSError, ValueError):
        return False


def as_animation(job: Job) -> Job:
    """The job with its target in the source's format: animations keep theirs, as videos keep their container."""
    return dataclasses.replace(job, target=job.target.with_suffix(job.source.suffix.lower()))


def read_animation(path: Path) -> tuple[list[np.ndarray], list[int], dict]:
    """((H, W, 3) uint8 frames as shown, their durations in ms, save options: loop count)."""
    with open_image(path) as image:
        frames, durations = [], []
        for frame in ImageSequence.Iterator(image):
            frames.append(to_rgb(frame.convert("RGBA") if frame.mode in ("P", "PA", "LA") else frame))
            durations.append(int(frame.info.get("duration", image.info.get("duration", 100)) or 100))
        options = {"loop": image.info["loop"]} if "loop" in image.info else {}
    if len({frame.shape for frame in frames}) > 1:
        raise ValueError("frames of different sizes")
    return frames, durations, options


def translate_animation(job: Job, generator, *, batch_size: int, tile: int | None, tile_overlap: int,
                        smoothing: float, quality: int, bar: tqdm) -> int:
    """Translate `job.source` into `job.target` (atomically); returns its frame count."""
    frames, durations, options = read_animation(job.source)
    smoother = TemporalSmoother(smoothing)
    styled = []
    for start in range(0, len(frames), batch_size):
        batch = frames[start:start + batch_size]
        outputs = translate_frames(generator, batch, tile, tile_overlap)  # (B, H, W, 3)
        styled += [smoother(frame, out) if smoother.strength else out for frame, out in zip(batch, outputs)]
        bar.update(len(batch))
    images = [Image.fromarray(out) for out in styled]
    fmt = PIL_FORMATS[job.target.suffix.lower()]
    if fmt == "WEBP":
        options["quality"] = quality
    with atomic_target(job.target) as tmp:
        images[0].save(tmp, format=fmt, save_all=True, append_images=images[1:], duration=durations, **options)
    return len(frames)


def translate_animations(jobs: list[Job], generator, *, batch_size: int = 1, tile: int | None = None,
                         tile_overlap: int = 32, overwrite: bool = False, smoothing: float = 0.0, quality: int = 95,
                         progress: bool = True) -> Summary:
    """Translate every job's animation into its target; broken files are listed in the summary, not fatal."""
    def one(job: Job, bar: tqdm) -> tuple[int, list[str]]:
        return translate_animation(job, generator, batch_size=batch_size, tile=tile, tile_overlap=tile_overlap,
                                   smoothing=smoothing, quality=quality, bar=bar), []

    return run_each(jobs, one, kind="animations", overwrite=overwrite, progress=progress)
