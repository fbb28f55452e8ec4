"""Hostile data folders: symlink loops, FIFOs and devices named like images, unreadable
folders and file names that are not UTF-8 (issue 16, items 2, 3, 6).

Anything that could hang on the old code runs in a subprocess with a deadline."""
from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclestyle.data import UnpairedDataModule, find_images
from cyclestyle.data.packing import pack
from cyclestyle.data.streams import StreamingUnpairedDataModule, open_stream
from cyclestyle.inference.files import collect, plan
from cyclestyle.networks import build_generator

from conftest import write_images

DEADLINE = 60  # seconds; every case here finishes in a few on the fixed code
LATIN1 = b"latin1_\xe9\xff.jpg"  # not valid UTF-8


def run_python(code: str, *, timeout: float = DEADLINE) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh interpreter; a hang fails the test instead of stalling the suite."""
    try:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"})
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running after {timeout} s (hangs)")


def looped(folder: Path, *links: str) -> Path:
    """2 images in `folder`, plus each of `links` pointing back at `folder` itself."""
    write_images(folder, 2, size=(16, 16))
    for name in links:
        (folder / name).symlink_to(".", target_is_directory=True)
    return folder


def names(paths, root: Path) -> list[str]:
    return sorted(str(Path(p).relative_to(root)) for p in paths)


# --- item 2: symlink loops -------------------------------------------------------------------

def test_a_self_loop_counts_each_image_once_for_training_and_translate(tmp_path):
    photos = looped(tmp_path / "photos", "self")
    expected = ["img_000.png", "img_001.png"]
    assert names(find_images(photos), photos) == expected  # was 82: self/self/.../img_000.png
    dm = UnpairedDataModule(a=str(photos), b=str(photos), num_val=1, load_size=16, crop_size=16, num_workers=0)
    dm.setup("fit")
    assert names(dm.files["a"], photos) == expected  # train's epoch
    assert names((job.source for job in plan([str(photos)], tmp_path / "out")), photos) == expected
    assert names((p for p, _, _ in collect([f"{photos}/**/*.png"])), photos) == expected  # glob branch


def test_two_loops_terminate_in_every_scanner(tmp_path):
    photos = looped(tmp_path / "photos", "self", "again")
    result = run_python(f"""
        from cyclestyle.data import find_images
        from cyclestyle.inference.files import collect
        print(len(find_images({str(photos)!r})), len(collect([{str(photos)!r}])),
              len(collect([{str(photos / '**' / '*.png')!r}])))
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2", "2", "2"]


def test_links_to_other_folders_are_followed_once_and_linked_files_kept(tmp_path):
    root, elsewhere = tmp_path / "photos", tmp_path / "elsewhere"
    write_images(root / "z_real", 1, size=(16, 16))
    write_images(elsewhere, 1, size=(16, 16))
    (root / "a_link").symlink_to(root / "z_real", target_is_directory=True)  # inside: found under its real path
    (root / "outside").symlink_to(elsewhere, target_is_directory=True)
    (root / "outside_too").symlink_to(elsewhere, target_is_directory=True)  # the same folder again
    (root / "linked.png").symlink_to(elsewhere / "img_000.png")  # a linked file is an ordinary input
    assert names(find_images(root), root) == ["linked.png", "outside/img_000.png", "z_real/img_000.png"]


def test_pack_reads_each_folder_once_and_keeps_non_utf8_names(tmp_path):
    src = looped(tmp_path / "photos", "self")
    buffer = io.BytesIO()
    Image.new("RGB", (12, 10), (200, 30, 30)).save(buffer, "JPEG")
    with open(os.path.join(os.fsencode(src), LATIN1), "wb") as file:  # a bytes path: the name is no str
        file.write(buffer.getvalue())
    result = pack(src, str(tmp_path / "packed"), workers=1, progress=False)
    assert result.images == 3 and not result.skipped
    stream = open_stream(str(tmp_path / "packed"), setting="test")
    stored = sorted(bytes(stream[i]["name"]) for i in range(len(stream)))
    assert stored == sorted([b"img_000.png", b"img_001.png", LATIN1])  # the exact bytes, no self/self/...
    assert os.fsdecode(LATIN1) in {p.name for p in find_images(src)}  # os.fsdecode gives the file's name back
    # the streaming data module keys its cache by the file names: that must not crash either
    module = StreamingUnpairedDataModule(a=str(src), b=str(src), cache_dir=str(tmp_path / "cache"))
    assert module._packed_folder("a").parent == tmp_path / "cache" / "packed"


# --- item 3: FIFOs, devices and broken links named like images --------------------------------

@pytest.mark.parametrize("make,kind", [
    (lambda path: os.mkfifo(path), "a FIFO"),
    (lambda path: path.symlink_to("/dev/null"), "a character device"),
    (lambda path: path.symlink_to(path.parent / "gone.png"), "a broken symbolic link"),
])
def test_non_regular_files_are_skipped_with_a_warning(tmp_path, make, kind):
    photos = tmp_path / "photos"
    write_images(photos, 2, size=(16, 16))
    make(photos / "x.jpg")
    for scan in (lambda: find_images(photos), lambda: [p for p, _, _ in collect([str(photos)])],
                 lambda: [p for p, _, _ in collect([f"{photos}/*"])]):
        with pytest.warns(UserWarning, match=rf"skipping {photos / 'x.jpg'}: not a regular file \({kind}\)"):
            assert names(scan(), photos) == ["img_000.png", "img_001.png"]


def test_a_fifo_named_as_input_is_skipped_with_a_warning(tmp_path):
    os.mkfifo(tmp_path / "x.jpg")
    with pytest.warns(UserWarning, match=r"not a regular file \(a FIFO\)"):
        assert collect([str(tmp_path / "x.jpg")]) == []


def test_decoders_refuse_a_fifo_instead_of_blocking(tmp_path):
    fifo = tmp_path / "x.jpg"
    os.mkfifo(fifo)
    result = run_python(f"""
        from cyclestyle.data.images import load_rgb
        from cyclestyle.inference.files import decode
        for read in (load_rgb, decode):
            try:
                read({str(fifo)!r})
            except OSError as error:
                print(error)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"not a regular file (a FIFO): {fifo}"] * 2


def test_a_file_swapped_for_a_fifo_after_the_check_is_still_refused(tmp_path):
    """The path passes the stat check, then is a FIFO when opened: the open must not block."""
    fifo, regular = tmp_path / "x.jpg", tmp_path / "real.png"
    os.mkfifo(fifo)
    write_images(tmp_path, 1, size=(8, 8))[0].rename(regular)
    result = run_python(f"""
        import os
        from cyclestyle.data import images
        real_stat = os.stat
        os.stat = lambda path, *args, **kwargs: real_stat({str(regular)!r})  # the check sees a regular file
        try:
            images.load_rgb({str(fifo)!r})
        except OSError as error:
            print(error)
    """)
    assert result.returncode == 0, result.stderr
    assert "it changed after the check" in result.stdout


# --- unreadable sub-folders ------------------------------------------------------------------

def test_an_unreadable_subfolder_is_named_in_a_warning(tmp_path, monkeypatch):
    photos = tmp_path / "photos"
    write_images(photos, 2, size=(16, 16))
    write_images(photos / "locked", 1, size=(16, 16))
    (photos / "locked").chmod(0)
    if os.geteuid() == 0:  # root reads anything: make listing a folder without permissions fail as it would
        real_scandir = os.scandir

        def scandir(path="."):
            if stat.S_IMODE(os.stat(path).st_mode) & 0o444 == 0:
                raise PermissionError(13, "Permission denied", os.fspath(path))
            return real_scandir(path)

        monkeypatch.setattr(os, "scandir", scandir)  # os.walk looks it up here too
    try:
        with pytest.warns(UserWarning, match=rf"skipping unreadable folder {photos / 'locked'}: Permission denied"):
            assert names(find_images(photos), photos) == ["img_000.png", "img_001.png"]
        with pytest.warns(UserWarning, match="skipping unreadable folder"):
            assert len(collect([str(photos)])) == 2
    finally:
        (photos / "locked").chmod(0o755)


# --- end to end: translate on a hostile folder -----------------------------------------------

def test_translate_on_a_looped_folder_with_a_fifo_writes_exactly_the_real_images(tmp_path):
    torch.manual_seed(0)
    torch.save(build_generator("resnet_6blocks", ngf=8).state_dict(), tmp_path / "latest_net_G.pth")
    photos = looped(tmp_path / "photos", "self", "again")
    os.mkfifo(photos / "pipe.jpg")
    out = tmp_path / "out"
    try:
        result = subprocess.run(
            [sys.executable, "-m", "cyclestyle", "translate", str(tmp_path / "latest_net_G.pth"), str(photos),
             "--output", str(out), "--device", "cpu", "--precision", "32", "--workers", "0", "--no-progress"],
            capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    except subprocess.TimeoutExpired:
        pytest.fail("translate hangs on a folder with symlink loops and a FIFO")
    assert result.returncode == 0, result.stderr
    assert f"skipping {photos / 'pipe.jpg'}: not a regular file (a FIFO)" in result.stderr
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["img_000.png", "img_001.png"]
    assert all(np.asarray(Image.open(p)).shape == (16, 16, 3) for p in out.iterdir())
