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
from ..data.images import file_kind, find_images, open_image, to_rgb, walk_images

FORMATS = {"png": ".png", "jpg": ".jpg", "webp": ".webp"}  # plus "same": keep the input's extension
PIL_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}
ALPHA_SUFFIXES = (".png", ".webp", ".tif", ".tiff")


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
    """(image, path relative to its input, folder whose subfolders the input searches, or None)
    for files, folders (recursive) and glob patterns, in a stable order.

    Folders and patterns are searched by `walk_images` (not `glob`, which follows symlink loops):
    each real folder once, non-regular files skipped with a warning."""
    found: list[tuple[Path, Path, Path | None]] = []
    for item in inputs:
        path = Path(item).expanduser()
        if glob.has_magic(item) and not path.exists():
            root = _glob_root(item)
            pattern = path.parts[len(root.parts):]
            depth = None if "**" in pattern else len(pattern) - 1
            files = sorted(walk_images(root, max_depth=depth, keep=lambda parts: _glob_matches(parts, pattern))
                           if root.is_dir() else [])
            if not files:
                raise FileNotFoundError(f"no images match {item!r}")
            searched = root if "**" in item else None  # a recursive pattern would find our outputs again
            found += [(p, p.relative_to(root), searched) for p in files]
        elif path.is_dir():
            found += [(p, p.relative_to(path), path) for p in find_images(path, setting="input")]
        elif path.is_file():
            found.append((path, Path(path.name), None))
        elif path.exists():  # a FIFO, socket or device: opening it could block forever
            warnings.warn(f"skipping {path}: not a regular file ({file_kind(path)})")
        else:
            raise FileNotFoundError(f"input not found: {path}")
    return found


def plan(inputs: list[str], output: str | os.PathLike, fmt: str = "png") -> list[Job]:
    """One job per input image; the output tree mirrors the inputs' relative paths.

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
        target = out / (relative if fmt == "same" else relative.with_suffix(FORMATS[fmt]))
        if target in sources:
            raise ValueError(f"refusing to overwrite the input file {source}: choose another --output or --format")
        if target in seen:
            raise ValueError(f"{source} and {seen[target]} would both be written to {target}")
        seen[target] = source
        jobs.append(Job(source, target))
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
    """((H, W, 3) uint8 RGB, (H, W) uint8 alpha or None), EXIF orientation applied.

    Transparent pixels are composited over white for the network; the alpha is re-attached later.
    Raises OSError for a path that is not a regular file (a FIFO would block forever)."""
    with open_image(path) as image:
        image.load()
        image = ImageOps.exif_transpose(image)
        alpha = None
        if image.mode == "P" and "transparency" in image.info:
            image = image.convert("RGBA")
        if image.mode in ("RGBA", "LA", "PA"):
            alpha = np.asarray(image.getchannel("A"))
        return to_rgb(image), alpha


def save_atomic(rgb: np.ndarray, alpha: np.ndarray | None, target: Path, *, quality: int = 95) -> None:
    """Write (H, W, 3) uint8 (+ alpha where the format keeps it) to `target` via a temporary
    file in the same folder, so an interrupted write never leaves a partial image."""
    suffix = target.suffix.lower()
    image = Image.fromarray(rgb)
    if alpha is not None and suffix in ALPHA_SUFFIXES:
        image.putalpha(Image.fromarray(alpha))
    options = {"quality": quality} if suffix in (".jpg", ".jpeg", ".webp") else {}
    with atomic_target(target) as tmp:
        image.save(tmp, format=PIL_FORMATS[suffix], **options)
