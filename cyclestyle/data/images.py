"""Finding image files and decoding any of them to 8-bit RGB.

Data folders come from users, so the scan survives hostile trees: each real folder is read once
(a symlink loop such as `self -> .` would otherwise repeat the tree until the kernel refuses the
path, or forever with two loops), only regular files count (opening a FIFO named `x.jpg` blocks
forever) and what is skipped is named in a warning rather than dropped silently.
"""
from __future__ import annotations

import contextlib
import os
import stat
import warnings
from collections import deque
from pathlib import Path
from typing import IO, Callable, Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
FILE_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
              stat.S_IFBLK: "a block device", stat.S_IFDIR: "a folder"}


def is_image_name(name: str) -> bool:
    """By extension; hidden names (such as the `._x.jpg` metadata files macOS leaves) are never images."""
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def walk_images(root: Path, *, max_depth: int | None = None,
                keep: Callable[[tuple[str, ...]], bool] | None = None,
                names: Callable[[str], bool] = is_image_name) -> Iterator[Path]:
    """Regular image files (or files whose name passes `names`) under `root` (symlinks followed),
    each real folder read once.

    Folders behind a symlink are read after all those reachable without one, so a folder that is
    also linked from elsewhere is found under its own path. `max_depth` limits how many
    folders deep it goes (0: `root` only); `keep` filters on the path relative to `root` (as parts)
    before the file is checked. Unreadable folders and non-regular files are skipped with a warning.
    """
    seen: set[tuple[int, int]] = set()
    direct: list[tuple[Path, int]] = [(root, 0)]  # a stack of folders reached without a symlink: read first
    linked: deque[tuple[Path, int]] = deque()  # then these, in the order found
    while direct or linked:
        folder, depth = direct.pop() if direct else linked.popleft()
        try:
            info = folder.stat()
            if (info.st_dev, info.st_ino) in seen:
                continue  # a loop back to a folder being read, or a second link to one already read
            seen.add((info.st_dev, info.st_ino))
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
        except OSError as error:
            warnings.warn(f"skipping unreadable folder {folder}: {error.strerror or error}")
            continue
        subfolders = []
        for entry in entries:
            path = folder / entry.name
            try:
                if entry.is_dir():
                    if max_depth is None or depth < max_depth:
                        (linked if entry.is_symlink() else subfolders).append((path, depth + 1))
                    continue
                if not names(entry.name) or (keep and not keep(path.relative_to(root).parts)):
                    continue
                if entry.is_file():
                    yield path
                else:
                    warnings.warn(f"skipping {path}: not a regular file ({file_kind(path)})")
            except OSError as error:
                warnings.warn(f"skipping {path}: {error.strerror or error}")
        direct.extend(reversed(subfolders))  # popped in name order


def find_images(folder: str | os.PathLike, *, setting: str = "folder") -> list[Path]:
    """All image files under `folder` (recursive, sorted); fails naming the folder and `setting`."""
    root = Path(folder).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"{setting}: folder not found: {root}")
    if not root.is_dir():
        raise NotADirectoryError(f"{setting}: not a folder: {root}")
    files = sorted(walk_images(root))
    if not files:
        raise ValueError(f"{setting}: no images ({', '.join(IMAGE_EXTENSIONS)}) found under {root}")
    return files


def file_kind(path: str | os.PathLike) -> str:
    """What a non-regular file is, for messages."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "a broken symbolic link"
    return FILE_KINDS.get(stat.S_IFMT(mode), "a special file")


def _open_nonblocking(path: str, flags: int) -> int:
    return os.open(path, flags | getattr(os, "O_NONBLOCK", 0))


def open_regular(path: str | os.PathLike) -> IO[bytes]:
    """`path` opened for reading, refused unless it is a regular file.

    Checked before opening (opening a FIFO blocks until a writer comes; a device never ends) and
    again on the open file, opened without blocking, in case the path was swapped in between."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise OSError(f"not a regular file ({file_kind(path)}): {path}")
    file = open(path, "rb", opener=_open_nonblocking)
    if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
        file.close()
        raise OSError(f"not a regular file (it changed after the check): {path}")
    if hasattr(os, "O_NONBLOCK"):
        os.set_blocking(file.fileno(), True)
    return file


@contextlib.contextmanager
def open_image(source: str | os.PathLike | IO[bytes]) -> Iterator[Image.Image]:
    """PIL image of a path (which must be a regular file: see `open_regular`) or of an open binary file."""
    if not isinstance(source, (str, os.PathLike)):
        with Image.open(source) as image:
            yield image
        return
    with open_regular(source) as file:
        try:
            image = Image.open(file)
        except UnidentifiedImageError:  # name the path, not the file object
            raise UnidentifiedImageError(f"cannot identify image file {os.fspath(source)!r}") from None
        with image:
            yield image


def to_rgb(image: Image.Image) -> np.ndarray:
    """PIL image of any mode -> (H, W, 3) uint8.

    EXIF orientation is applied; 16-bit and float images are scaled to 8 bits; transparent
    pixels are composited over white; grayscale, palette and CMYK become RGB.
    """
    image = ImageOps.exif_transpose(image)
    if image.mode.startswith("I") or image.mode == "F":  # 16/32-bit integer or float grayscale
        values = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16") or (image.mode == "I" and values.max() > 255):
            values = values / 257.0  # 0..65535 -> 0..255
        elif image.mode == "F" and values.max() <= 1.0:
            values = values * 255.0  # 0..1 -> 0..255
        gray = np.clip(values + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return np.asarray(image.convert("RGB"))


def load_rgb(source: str | os.PathLike | IO[bytes]) -> np.ndarray:
    """Decode a path or open binary file to (H, W, 3) uint8 RGB; raises OSError/ValueError for broken
    files and OSError for a path that is not a regular file (never blocks on a FIFO)."""
    with open_image(source) as image:
        image.load()  # decode now so truncated files fail here
        return to_rgb(image)
