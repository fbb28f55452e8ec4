"""Hostile inputs to `cyclestyle translate`, `export` and `import-reference` (issue 16: items 5, 7, 8
and 11): images of a few pixels, generators that fail on some inputs, the umask, broken model
files, and temporary files left by killed runs."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclestyle.commands.export import main as export_main
from cyclestyle.commands.import_reference import main as import_main
from cyclestyle.commands.translate import main as translate_main
from cyclestyle.networks import build_generator

from conftest import flip_middle, write_images

SPEC = {"name": "resnet_6blocks", "ngf": 8, "norm": "instance", "dropout": False}


def _tiny_checkpoint(path: Path, generator_hparams: dict) -> Path:
    """A weights-only cyclestyle checkpoint (what import-reference writes) of two tiny generators."""
    torch.manual_seed(0)
    state = {f"{prefix}.{k}": v for prefix in ("g_a", "g_b") for k, v in build_generator(**SPEC).state_dict().items()}
    torch.save({"state_dict": state, "hyper_parameters": {"generator": generator_hparams}, "epoch": 0,
                "global_step": 0}, path)
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return _tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.ckpt", SPEC)


@pytest.fixture(scope="module")
def onnx_file(ckpt) -> Path:
    out = ckpt.with_suffix(".onnx")
    assert export_main([str(ckpt), "--output", str(out)]) == 0
    return out


def translate(*args) -> int:
    return translate_main([*map(str, args), "--no-progress", "--precision", "32"])


def _random_image(path: Path, h: int, w: int, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)


# -- 5: images with a side of a few pixels ----------------------------------------------------------

SMALL = [(1, 1), (2, 3), (4, 4), (300, 4), (4, 300)]  # (H, W)


@pytest.mark.parametrize("model", ["ckpt", "onnx_file"])
def test_images_of_a_few_pixels_translate_to_their_own_size(model, request, tmp_path, capsys):
    model_file = request.getfixturevalue(model)
    for i, (h, w) in enumerate(SMALL):
        _random_image(tmp_path / "in" / f"s{h}x{w}.png", h, w, seed=i)
    assert translate(model_file, tmp_path / "in", "--output", tmp_path / "out", "--workers", "0") == 0
    assert "5 images in" in capsys.readouterr().out
    for h, w in SMALL:
        out = Image.open(tmp_path / "out" / f"s{h}x{w}.png")
        assert out.size == (w, h) and out.mode == "RGB"
        assert np.asarray(out).std() > 0 or h * w == 1  # a translation, not a blank
    assert translate(model_file, tmp_path / "in", "--output", tmp_path / "out") == 0  # the rerun: all there
    assert "5 already there" in capsys.readouterr().out


def test_a_generator_failure_lists_the_image_and_the_run_goes_on(tmp_path, capfd):
    """An ONNX file made elsewhere with a fixed input size fails (in onnxruntime, not with a
    RuntimeError) on other sizes: those images are listed as failed, the others translated."""

    class Negate(torch.nn.Module):
        def forward(self, x):
            return -x

    model = tmp_path / "fixed_32.onnx"
    torch.onnx.export(Negate(), (torch.zeros(1, 3, 32, 32),), str(model), dynamo=False, input_names=["image"])
    write_images(tmp_path / "in", 2, size=(32, 32))
    _random_image(tmp_path / "in" / "wide.png", 32, 40)
    capfd.readouterr()
    assert translate(model, tmp_path / "in", "--output", tmp_path / "out", "--batch-size", "2", "--workers", "0") == 1
    out, err = capfd.readouterr()
    assert "Translated 2 images" in out and "1 failed" in out  # the summary is printed
    assert "Traceback" not in err
    (failed,) = [line for line in err.splitlines() if line.startswith("failed:")]
    assert "wide.png" in failed and "generator failed" in failed
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["img_000.png", "img_001.png"]
    original = np.asarray(Image.open(tmp_path / "in" / "img_000.png")).astype(int)
    assert np.abs(np.asarray(Image.open(tmp_path / "out" / "img_000.png")) - (255 - original)).max() <= 1


# -- 7: output modes follow the umask ---------------------------------------------------------------

@pytest.fixture(params=[0o022, 0o002], ids=["umask022", "umask002"])
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_translate_outputs_honour_the_umask(ckpt, tmp_path, umask):
    write_images(tmp_path / "in" / "sub", 2, size=(16, 16))
    assert translate(ckpt, tmp_path / "in", "--output", tmp_path / "out") == 0
    outputs = list((tmp_path / "out").rglob("*.png"))
    assert len(outputs) == 2 and {_mode(p) for p in outputs} == {0o666 & ~umask}


@pytest.mark.parametrize("fmt,suffix", [("onnx", ".onnx"), ("torchscript", ".pt")])
def test_exported_files_honour_the_umask(ckpt, tmp_path, umask, fmt, suffix):
    out = tmp_path / f"g{suffix}"
    assert export_main([str(ckpt), "--format", fmt, "--output", str(out)]) == 0
    assert _mode(out) == 0o666 & ~umask


def test_imported_checkpoints_honour_the_umask(tmp_path, umask):
    torch.save(build_generator(**SPEC).state_dict(), tmp_path / "G.pth")
    out = tmp_path / "model.ckpt"
    assert import_main(["--g-a", str(tmp_path / "G.pth"), "--g-b", str(tmp_path / "G.pth"), "--output", str(out)]) == 0
    assert _mode(out) == 0o666 & ~umask


# -- 8: broken model files: one line naming the file, no traceback -----------------------------------

def _garbage(path: Path, seed: int = 0, size: int = 300) -> Path:
    path.write_bytes(np.random.default_rng(seed).bytes(size))
    return path


def _one_error_line(capfd, path: Path) -> str:
    err = capfd.readouterr().err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and ": error: " in lines[0], err
    return lines[0]


def test_garbage_onnx_is_one_clear_line_in_translate_and_export(tmp_path, capfd):
    model = _garbage(tmp_path / "model.onnx")
    write_images(tmp_path / "in", 1, size=(16, 16))
    capfd.readouterr()
    assert translate(model, tmp_path / "in", "--output", tmp_path / "out") == 2
    assert "not a readable ONNX model" in _one_error_line(capfd, model)
    assert export_main([str(model), "--output", str(tmp_path / "again.onnx")]) == 2
    assert "not a readable ONNX model" in _one_error_line(capfd, model)
    assert not (tmp_path / "again.onnx").exists()


# Seeds whose 64 random bytes made torch.load raise IndexError, UnicodeDecodeError and KeyError.
@pytest.mark.parametrize("seed", [17, 54, 62])
def test_random_bytes_are_one_clear_line_in_import_reference_and_translate(tmp_path, capfd, seed):
    garbage = _garbage(tmp_path / "latest_net_G_A.pth", seed, size=64)
    capfd.readouterr()
    assert import_main(["--g-a", str(garbage), "--g-b", str(garbage), "--output", str(tmp_path / "m.ckpt")]) == 2
    assert "not a readable PyTorch checkpoint" in _one_error_line(capfd, garbage)
    assert not (tmp_path / "m.ckpt").exists()
    write_images(tmp_path / "in", 1, size=(16, 16))
    assert translate(garbage, tmp_path / "in", "--output", tmp_path / "out") == 2
    assert "not a readable PyTorch checkpoint" in _one_error_line(capfd, garbage)


def test_a_checkpoint_with_flipped_bytes_is_one_clear_line_everywhere(ckpt, tmp_path, capfd):
    """torch.load reads such a file as garbage weights without a word; every command refuses it."""
    bad = flip_middle(ckpt, tmp_path / "bad.ckpt")
    write_images(tmp_path / "in", 1, size=(16, 16))
    capfd.readouterr()
    assert translate(bad, tmp_path / "in", "--output", tmp_path / "out") == 2
    assert "corrupt: the checksum" in _one_error_line(capfd, bad)
    assert not any((tmp_path / "out").glob("**/*.png"))
    assert export_main([str(bad), "--output", str(tmp_path / "bad.onnx")]) == 2
    assert "corrupt" in _one_error_line(capfd, bad)
    assert not (tmp_path / "bad.onnx").exists()
    torch.save(build_generator(**SPEC).state_dict(), tmp_path / "G.pth")
    bad_pth = flip_middle(tmp_path / "G.pth", tmp_path / "G_bad.pth")
    assert import_main(["--g-a", str(bad_pth), "--g-b", str(tmp_path / "G.pth"), "--output", str(tmp_path / "m.ckpt")]) == 2
    assert "corrupt" in _one_error_line(capfd, bad_pth)
    assert not (tmp_path / "m.ckpt").exists()


def test_a_checkpoint_with_an_unexpected_hyper_parameter_is_one_clear_line(tmp_path, capfd):
    odd = _tiny_checkpoint(tmp_path / "odd.ckpt", {**SPEC, "foo": 1})
    write_images(tmp_path / "in", 1, size=(16, 16))
    capfd.readouterr()
    assert translate(odd, tmp_path / "in", "--output", tmp_path / "out") == 2
    line = _one_error_line(capfd, odd)
    assert "hyper_parameters.generator" in line and "foo" in line
    assert export_main([str(odd), "--output", str(tmp_path / "odd.onnx")]) == 2
    assert "foo" in _one_error_line(capfd, odd)


# -- 11: temporary files of killed runs --------------------------------------------------------------

WRITER = textwrap.dedent("""
    import os, signal, sys, time
    from pathlib import Path
    from cyclestyle.atomic import atomic_target

    with atomic_target(Path(sys.argv[1])) as tmp:
        Path(tmp).write_bytes(b"half an image")
        print(tmp, flush=True)
        if sys.argv[2] == "die":
            os.kill(os.getpid(), signal.SIGKILL)  # killed mid-write: the temp file stays
        time.sleep(120)  # a run still writing
""")


def _writer(target: Path, mode: str) -> tuple[subprocess.Popen, Path]:
    """A process inside `atomic_target(target)`; returns it and its temp file."""
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(target), mode], stdout=subprocess.PIPE, text=True)
    tmp = Path(process.stdout.readline().strip())
    assert tmp.parent == target.parent and tmp.name.startswith(f".{target.name}.") and tmp.exists()
    if mode == "die":
        assert process.wait(timeout=60) == -signal.SIGKILL
    return process, tmp


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_stale_temp_files_of_killed_runs_are_removed_and_nothing_else(ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    write_images(tmp_path / "in" / "sub", 3, size=(16, 16))
    _, stale = _writer(out / "sub" / "img_000.png", "die")
    _age(stale, 120)  # killed two minutes ago
    _, fresh_of_dead = _writer(out / "sub" / "img_001.png", "die")  # killed just now: left for a minute
    running, live = _writer(out / "sub" / "img_002.png", "wait")
    try:
        _age(live, 120)  # a concurrent run writing slowly: its pid is alive
        fd, legacy = tempfile.mkstemp(dir=out, prefix=".old.png.", suffix=".tmp")  # what earlier versions left
        os.close(fd)
        _age(Path(legacy), 2 * 3600)
        foreign = [out / ".notes.tmp", out / ".hidden", out / ".old.txt.abcd1234.tmp",
                   out / "sub" / f".img_000.png.cyclestyle-{running.pid}.tmp"]
        for path in foreign:
            path.write_text("not ours")
            _age(path, 2 * 3600)
        assert translate(ckpt, tmp_path / "in", "--output", out) == 0
        assert not stale.exists() and not Path(legacy).exists()
        assert fresh_of_dead.exists() and live.exists() and all(path.exists() for path in foreign)
        assert live.read_bytes() == b"half an image"
    finally:
        running.kill()
        running.wait()
    assert sorted(p.name for p in (out / "sub").glob("*.png")) == ["img_000.png", "img_001.png", "img_002.png"]
    assert "Translated 3 images" in capsys.readouterr().out


def test_huge_images_run_on_tiles_unless_told_otherwise(monkeypatch):
    """Without --tile an image above AUTO_TILE_PIXELS runs on AUTO_TILE tiles (memory bounded by the
    tile, not the photo); a given tile size is kept and --tile 0 runs it whole. Scaled down here:
    scripts/bench_translate.py --huge measures the real 12000 x 12000 case's peak memory."""
    from cyclestyle.inference import tiling

    seen = []

    def net(x):
        seen.append(tuple(x.shape[2:]))
        return x

    monkeypatch.setattr(tiling, "AUTO_TILE_PIXELS", 64 * 64)
    monkeypatch.setattr(tiling, "AUTO_TILE", 32)
    x = torch.rand(1, 3, 100, 90) * 2 - 1
    for tile, largest in ((None, 32), (48, 48), (0, 100)):
        seen.clear()
        y = tiling.translate_any_size(net, x, multiple=4, tile=tile, overlap=8)
        assert y.shape == x.shape and torch.allclose(y, x, atol=1e-5)  # blended back seamlessly
        assert max(max(shape) for shape in seen) == largest, (tile, seen)
    seen.clear()
    tiling.translate_any_size(net, x[:, :, :64, :64], multiple=4)  # at the limit: whole
    assert seen == [(64, 64)]


SLOW_IMAGES = textwrap.dedent("""
    import sys, time
    import cyclestyle.inference.batch as batch
    from cyclestyle.commands.translate import main

    save = batch.save_atomic
    def slow(*args, **kwargs):
        save(*args, **kwargs)
        print("saved", flush=True)
        time.sleep(0.4)
    batch.save_atomic = slow
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_folder_finishes_on_a_rerun_with_every_output_whole_once(ckpt, tmp_path, signum):
    photos = tmp_path / "photos"
    write_images(photos, 10, size=(32, 32))
    out = tmp_path / "out"
    args = [str(ckpt), str(photos), "--output", str(out), "--no-progress", "--precision", "32", "--workers", "0"]
    process = subprocess.Popen([sys.executable, "-c", SLOW_IMAGES, *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    for _ in range(3):
        assert process.stdout.readline().strip() == "saved"
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == (130 if signum == signal.SIGINT else 128 + signum)
    assert "Traceback" not in stderr and "interrupted" in stderr and "same command again" in stderr
    first = sorted(p.name for p in out.iterdir())
    assert 3 <= len(first) < 10 and not [name for name in first if name.endswith(".tmp")]
    for path in out.iterdir():
        Image.open(path).verify()  # whole files only
    rerun = subprocess.run([sys.executable, "-m", "cyclestyle", "translate", *args], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert f"Translated {10 - len(first)} images" in rerun.stdout and f"{len(first)} already there" in rerun.stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in photos.iterdir())


def test_a_full_disk_stops_translate_with_one_line_and_a_rerun_finishes_the_rest(ckpt, tmp_path, small_disk, capfd):
    photos = tmp_path / "photos"
    for i in range(12):
        _random_image(photos / f"{i:02d}.png", 96, 96, seed=i)  # noise: ~28 KB per PNG output
    out = small_disk(160)
    capfd.readouterr()
    assert translate(ckpt, photos, "--output", out, "--workers", "0") == 2
    err = capfd.readouterr().err
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if ": error: " in line]
    assert str(out) in line and "is full (No space left on device" in line and "run the same command again" in line
    written = sorted(p.name for p in out.iterdir())
    assert 0 < len(written) < 12 and not [n for n in written if n.endswith(".tmp")]  # whole files, no temps
    for path in out.iterdir():
        Image.open(path).verify()
    small_disk.resize(out, 4096)
    assert translate(ckpt, photos, "--output", out, "--workers", "0") == 0
    summary = capfd.readouterr().out
    assert f"Translated {12 - len(written)} images" in summary and f"{len(written)} already there" in summary
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in photos.iterdir())
