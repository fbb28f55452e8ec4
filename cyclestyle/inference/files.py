"""Inputs and outputs of batch translation: which files, where their results go, decoding with
alpha kept aside, and atomic writes (a temporary file renamed into place: `cyclestyle.atomic`)."""
from __future__ import annotations

import fnmatch
import glob
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..atomic import atomic_target
from ..data.images import IMAGE_EXTENSIONS, file_kind, open_image, to_rgb, walk_images

FORMATS = {"png": ".png", "jpg": ".jpg", "webp": ".webp"}  # plus "same": keep the input's extension
PIL_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
               ".gif": "GIF"}
ALPHA_SUFFIXES = (".png", ".webp", ".tif", ".tiff")
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")  # stylised frame by frame: `inference.video`
INPUT_IMAGE_EXTENSIONS = (*IMAGE_EXTENSIONS, ".gif")  # translate and stylize read GIFs too; training does not


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def is_input_name(name: str) -> bool:
    """An image (GIFs too, which training does not read), or a video by extension; hidden names never are."""
    return not name.startswith(".") and name.lower().endswith((*INPUT_IMAGE_EXTENSIONS, *VIDEO_EXTENSIONS))


@dataclass(frozen=True)
class Job:
    source: Path  # input image
    target: Path  # where its translation goes


def _glob_root(pattern: str) -> Path:
    """The folder part of a glob pattern before its first wildcard."""
    parts = Path(pattern).expanduser().parts
    fixed = parts[: next(i for i, p in enumerate(parts) if glob.has_magic(p))]
    return Path(*fixed) if fixed else Path(".")


def _glob_matches(parts: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    """Whether a relative path matches pattern parts as `glob.glob(recursive=True)` would: `**`
    spans any number of folders; wildcards match no hidden names unless the part starts with a dot."""
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_glob_matches(parts[i:], pattern[1:]) for i in range(len(parts) + 1)
                   if not any(p.startswith(".") for p in parts[:i]))
    if not parts or not fnmatch.fnmatch(parts[0], pattern[0]):
        return False
    if parts[0].startswith(".") and not pattern[0].startswith("."):
        return False
    return _glob_matches(parts[1:], pattern[1:])


def collect(inputs: list[str]) -> list[tuple[Path, Path, Path | None]]:
    """(image or video, path relative to its input, folder whose subfolders the input searches, or
    None) for files, folders (recursive) and glob patterns, in a stable order.

    Folders and patterns are searched by `walk_images` (not `glob`, which follows symlink loops):
    each real folder once, non-regular files skipped with a warning."""
    found: list[tuple[Path, Path, Path | None]] = []
    for item in inputs:
        path = Path(item).expanduser()
        if glob.has_magic(item) and not path.exists():
            root = _glob_root(item)
            pattern = path.parts[len(root.parts):]
            depth = None if "**" in pattern else len(pattern) - 1
            files = sorted(walk_images(root, max_depth=depth, keep=lambda parts: _glob_matches(parts, pattern),
                                       names=is_input_name) if root.is_dir() else [])
            if not files:
                raise FileNotFoundError(f"no images or videos match {item!r}")
            searched = root if "**" in item else None  # a recursive pattern would find our outputs again
            found += [(p, p.relative_to(root), searched) for p in files]
        elif path.is_dir():
            files = sorted(walk_images(path, names=is_input_name))
            if not files:
                raise ValueError(f"input: no images ({', '.join(INPUT_IMAGE_EXTENSIONS)}) or videos "
                                 f"({', '.join(VIDEO_EXTENSIONS)}) found under {path}")
            found += [(p, p.relative_to(path), path) for p in files]
        elif path.is_file():
            found.append((path, Path(path.name), None))
        elif path.exists():  # a FIFO, socket or device: opening it could block forever
            warnings.warn(f"skipping {path}: not a regular file ({file_kind(path)})")
        else:
            raise FileNotFoundError(f"input not found: {path}")
    return found


def plan(inputs: list[str], output: str | os.PathLike, fmt: str = "png") -> list[Job]:
    """One job per input image or video; the output tree mirrors the inputs' relative paths.
    Videos keep their container (`fmt` is for images).

    Refuses an output folder inside an input folder and outputs that would replace an input."""
    if fmt != "same" and fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join([*FORMATS, 'same'])}, got {fmt!r}")
    out = Path(output).expanduser().resolve()
    found = collect(inputs)
    for folder, searched in {(root or source.parent, root is not None) for source, _, root in found}:
        if out == folder.resolve() or (searched and out.is_relative_to(folder.resolve())):
            raise ValueError(f"refusing to write into the input folder {folder}: choose an --output outside it")
    jobs, seen = [], {}
    sources = {p.resolve() for p, _, _ in found}
    for source, relative, _ in found:
        target = out / (relative if fmt == "same" or is_video(source) else relative.with_suffix(FORMATS[fmt]))
        if target in sources:
            raise ValueError(f"refusing to overwrite the input file {source}: choose another --output or --format")
        if target in seen:
            raise ValueError(f"{source} and {seen[target]} would both be written to {target}")
        seen[target] = source
        jobs.append(Job(source, target))
    return jobs


@dataclass(frozen=True)
class StyledJob(Job):
    styles: tuple[int, ...]  # indices of the style images it uses (several: their blend)


def plan_styled(inputs: list[str], output: str | os.PathLike, styles: list[str], *, blend: bool = False,
                fmt: str = "png") -> list[StyledJob]:
    """`plan`'s jobs for every content x style combination, or one per content with the blend of all
    `styles` (their names, e.g. file stems): `<content>__<style>.<ext>`, `<content>__<s1>+<s2>.<ext>`
    (the names `cyclestyle stylize` writes). Refuses what `plan` refuses, and two jobs with one target
    (e.g. styles of the same name)."""
    if not styles:
        raise ValueError("give at least one style image")
    groups = [tuple(range(len(styles)))] if blend else [(i,) for i in range(len(styles))]
    base = plan(inputs, output, fmt)
    sources = {job.source.resolve() for job in base}
    jobs, seen = [], {}
    for job in base:
        for group in groups:
            name = "+".join(styles[i] for i in group)
            target = job.target.with_name(f"{job.target.stem}__{name}{job.target.suffix}")
            if target in sources:
                raise ValueError(f"refusing to overwrite the input file {target}: choose another --output")
            if target in seen:
                raise ValueError(f"{job.source} and {seen[target]} would both be written to {target} "
                                 f"(styles or contents of the same name)")
            seen[target] = job.source
            jobs.append(StyledJob(job.source, target, group))
    return jobs


def check_writable(folder: Path) -> None:
    """Fail before any work if `folder` cannot be created or written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".cyclestyle-probe-"):
            pass
    except OSError as error:
        raise PermissionError(f"cannot write to the output folder {folder}: {error.strerror or error}") from None


def decode(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """`decode_image` of the file at `path`. Raises OSError for a path that is not a regular file
    (a FIFO would block forever)."""
    with open_image(path) as image:
        image.load()
        return decode_image(image)


def decode_image(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """((H, W, 3) uint8 RGB, (H, W) uint8 alpha or None), EXIF orientation applied.

    Transparent pixels are composited over white for the network; the alpha is re-attached later."""
    image = ImageOps.exif_transpose(image)
    alpha = None
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        alpha = np.asarray(image.getchannel("A"))
    return to_rgb(image), alpha


def encode_image(rgb: np.ndarray, alpha: np.ndarray | None) -> Image.Image:
    """(H, W, 3) uint8 (+ (H, W) alpha) -> an RGB or RGBA image."""
    image = Image.fromarray(rgb)
    if alpha is not None:
        image.putalpha(Image.fromarray(alpha))
    return image


def save_atomic(rgb: np.ndarray, alpha: np.ndarray | None, target: Path, *, quality: int = 95) -> None:
    """Write (H, W, 3) uint8 (+ alpha where the format keeps it) to `target` via a temporary
    file in the same folder, so an interrupted write never leaves a partial image."""
    suffix = target.suffix.lower()
    image = encode_image(rgb, alpha if suffix in ALPHA_SUFFIXES else None)
    options = {"quality": quality} if suffix in (".jpg", ".jpeg", ".webp") else {}
    with atomic_target(target) as tmp:
        image.save(tmp, format=PIL_FORMATS[suffix], **options)
