"""Writing files so that they are whole or absent: write a temporary file beside the target, then
rename it into place. Used by translate, export and import-reference; imports nothing of
cyclestyle's training or inference code, so both can use it.

Temporary files are named `.NAME.cyclestyle-PID-HOST-TOKEN.tmp` (HOST: 6 hex digits of the
machine's name): a later run can tell its own leftovers apart from other files, and from the live
temporary files of a run still writing into the same folder, with `remove_stale_temps`.

    with atomic_target(Path("out/model.onnx")) as tmp:
        write_the_file(tmp)  # out/model.onnx appears only when this succeeds
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import shutil
import socket
import stat
import time
from pathlib import Path
from typing import Iterable, Iterator

STALE_AFTER = 60.0  # s untouched before a temp file of a process that has gone is removed
ABANDONED_AFTER = 24 * 3600.0  # s untouched before any temp file of ours is removed (other machines' too)
LEGACY_STALE_AFTER = 3600.0  # s for the `.NAME.XXXXXXXX.tmp` files of earlier versions (no pid in the name)

_HOST = hashlib.sha1(socket.gethostname().encode(errors="surrogateescape")).hexdigest()[:6]
_TEMP = re.compile(r"^\.(?P<name>.+)\.cyclestyle-(?P<pid>\d{1,10})-(?P<host>[0-9a-f]{6})-[0-9a-f]{8}\.tmp$", re.DOTALL)
_LEGACY = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$", re.DOTALL)  # tempfile.mkstemp(prefix=".NAME.", suffix=".tmp")
_NAME_BYTES = 160  # of the target's name kept in the temp name (file names are limited to 255 bytes)


def _temp_name(target_name: str) -> str:
    stem = os.fsdecode(os.fsencode(target_name)[:_NAME_BYTES])
    return f".{stem}.cyclestyle-{os.getpid()}-{_HOST}-{secrets.token_hex(4)}.tmp"


@contextlib.contextmanager
def atomic_target(target: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary path beside `target`; renamed onto `target` if the block succeeds,
    removed if it fails, so `target` is never half-written. A write that fails for want of space
    raises DiskFullError (one line naming the folder), whatever the writer said.

    The temporary file is created with mode 0o666 minus the umask (and the folder's default
    ACL), like any file `open(..., "w")` creates; writers must write into it, not replace it."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = target.parent / _temp_name(target.name)
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666))
            break
        except FileExistsError:  # the same 32 random bits twice: draw again
            continue
    try:
        yield str(tmp)
        os.replace(tmp, target)
    except Exception as error:
        full = disk_full(error, target)  # measured while the partial file still fills the disk
        if full is None:
            raise
        raise full from None
    finally:
        tmp.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there; rely on the age alone
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    except OverflowError:
        return False
    return True


def _is_stale(name: str, info: os.stat_result, now: float, *, target: str | None,
              legacy_suffixes: tuple[str, ...]) -> bool:
    age = now - info.st_mtime
    if (match := _TEMP.match(name)) is not None:
        if target is not None and match["name"] != target:
            return False
        if age < STALE_AFTER:
            return False  # may be a run that just started writing, or one on a machine with a skewed clock
        if age >= ABANDONED_AFTER:
            return True
        # A pid only means something on the machine that wrote the file (a shared network folder
        # may hold temp files of live runs elsewhere): those wait for ABANDONED_AFTER.
        return match["host"] == _HOST and not _pid_alive(int(match["pid"]))
    if (match := _LEGACY.match(name)) is not None:
        if (target is not None and match["name"] != target) or not match["name"].lower().endswith(legacy_suffixes):
            return False
        foreign = hasattr(os, "getuid") and info.st_uid != os.getuid()
        return age >= LEGACY_STALE_AFTER and stat.S_IMODE(info.st_mode) == 0o600 and not foreign
    return False


def remove_stale_temps(folder: str | os.PathLike, *, recursive: bool = True, target: str | None = None,
                       legacy_suffixes: Iterable[str] = ()) -> list[Path]:
    """Remove the temporary files `atomic_target` left in `folder` (and its subfolders if
    `recursive`; symlinked folders are not entered) when a run was killed; returns them.

    Only files named like ours are touched, and only stale ones: untouched for STALE_AFTER and
    written by a process of this machine that has gone, or untouched for ABANDONED_AFTER. Live
    temp files of another run writing into the same folder are left alone, so concurrent runs
    never lose an output. `target` limits the search to the temp files of that one file name.
    `legacy_suffixes` (e.g. (".png", ".jpg")) also removes the pid-less temp files of earlier
    versions (`.NAME.XXXXXXXX.tmp`, mode 0600, ours) for targets ending so, after an hour."""
    suffixes = tuple(s.lower() for s in legacy_suffixes)
    wanted = None if target is None else os.fsdecode(os.fsencode(target)[:_NAME_BYTES])
    now, removed = time.time(), []
    walk = os.walk(folder, onerror=lambda error: None) if recursive else [(os.fspath(folder), [], _listdir(folder))]
    for root, _, names in walk:
        for name in names:
            if not (name.startswith(".") and name.endswith(".tmp")):
                continue
            path = Path(root, name)
            try:
                info = path.lstat()
                if stat.S_ISREG(info.st_mode) and _is_stale(name, info, now, target=wanted, legacy_suffixes=suffixes):
                    path.unlink()
                    removed.append(path)
            except OSError:  # gone meanwhile (another run cleaned it), or not ours to remove
                continue
    return removed


def _listdir(folder: str | os.PathLike) -> list[str]:
    try:
        return os.listdir(folder)
    except OSError:
        return []


LOW_SPACE = 2**20  # bytes: a write that failed with less free than this (partial file still there) ran out of space


class DiskFullError(OSError):
    """A write failed because the disk holding it is full; nothing partial was left."""

    def __str__(self) -> str:
        return str(self.strerror)  # one line, without "[Errno 28]"


def disk_full(error: BaseException, target: str | os.PathLike) -> DiskFullError | None:
    """A one-line DiskFullError for `error` if writing `target` failed for want of space (ENOSPC,
    EDQUOT, or a writer such as torch.save that reports it in its own words: "unexpected pos"),
    else None. Call it before removing the partial file."""
    if isinstance(error, DiskFullError):
        return error
    code = getattr(error, "errno", None)
    folder = Path(target).parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    if code not in (errno.ENOSPC, errno.EDQUOT) and (free is None or free >= LOW_SPACE):
        return None
    shown = "unknown" if free is None else f"{free / 2**20:.1f} MB"
    return DiskFullError(errno.ENOSPC, f"the disk holding {folder} is full (No space left on device; {shown} free) "
                                       f"while writing {Path(target).name}")
