"""The built-in demo: `cyclestyle train` with no data arguments, offline, at a small size."""
import ast
import json
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from PIL import Image

from cyclestyle.data import build_demo, find_images
from cyclestyle.data.demo import stylize

from cli_runs import cyclestyle

pytestmark = pytest.mark.slow


def test_demo_data_is_built_once_and_held_out(tmp_path):
    root = build_demo(tmp_path / "demo", size=40, train_per_photo=4, test_per_photo=2)
    counts = {split: len(find_images(root / split)) for split in ("trainA", "trainB", "testA", "testA_stylized", "testB")}
    assert counts == {"trainA": 24, "trainB": 24, "testA": 12, "testA_stylized": 12, "testB": 12}
    photo = root / "testA" / "00_000.png"
    target = root / "testA_stylized" / "00_000.png"
    assert Image.open(photo).size == (40, 40) == Image.open(target).size
    stamp = (root / ".complete").stat().st_mtime
    build_demo(tmp_path / "demo", size=40, train_per_photo=4, test_per_photo=2)
    assert (root / ".complete").stat().st_mtime == stamp  # not rebuilt


def test_stylize_is_painterly_not_identity():
    image = torch.randint(0, 256, (48, 48, 3), dtype=torch.uint8).numpy()
    out = stylize(image)
    assert out.shape == image.shape and (out != image).mean() > 0.5
    assert out.std() < 0.7 * image.std()  # washed onto paper: lower contrast
    assert out.min() >= 0.4 * 200 - 1  # no darker than the paper's weakest channel lets through


def test_demo_default_runs_offline_and_reports(tmp_path):
    out = tmp_path / "run"
    result = cyclestyle("train", f"paths.cache_dir={tmp_path / 'cache'}", f"paths.output_dir={out}",
                        "data.load_size=40", "data.crop_size=32", "model.generator.ngf=8", "model.discriminator.ndf=8",
                        "trainer.max_steps=10", "trainer.val_check_interval=5", "model.metrics.download=false", "trainer.enable_progress_bar=false")
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert (tmp_path / "cache" / "demo" / ".complete").exists()
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 10
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["iter_0000005.png", "iter_0000010.png"]
    report = json.loads((out / "demo_psnr.json").read_text())
    assert report["images"] == 18 and 5 < report["psnr_untouched_db"] < 40 and 0 < report["psnr_translated_db"] < 60
    assert "Held-out demo photos (18)" in log and f"Checkpoint: {out}/checkpoints/last.ckpt" in log
    assert f"Sample images: {out}/samples" in log


def test_a_short_demo_run_visibly_learns(tmp_path):
    """The demo's promise on a shorter run (smaller crops and networks, 300 iterations): the
    held-out A->B translations end clearly closer to their true B rendering than the photos."""
    out = tmp_path / "run"
    result = cyclestyle("train", f"paths.cache_dir={tmp_path / 'cache'}", f"paths.output_dir={out}",
                        "data.load_size=40", "data.crop_size=32", "model.generator.ngf=16", "model.discriminator.ndf=16",
                        "trainer.max_steps=300", "model.metrics.download=false", "model.scheduler.constant=150", "model.scheduler.decay=150",
                        "trainer.val_check_interval=150", "trainer.enable_progress_bar=false")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    report = json.loads((out / "demo_psnr.json").read_text())
    assert report["psnr_translated_db"] > report["psnr_untouched_db"] + 2.0, report


def test_paired_psnr_reports_translation_next_to_untouched(tmp_path):
    from types import SimpleNamespace

    from cyclestyle.callbacks import PairedPSNR
    from cyclestyle.pixels import psnr

    root = build_demo(tmp_path / "demo", size=40, train_per_photo=1, test_per_photo=1)

    from cyclestyle.record import TranslatorSpec

    class Copy(torch.nn.Module):  # a "translation" that changes nothing
        device = torch.device("cpu")
        translators = {"a2b": TranslatorSpec(module="copy", builder="-", size_multiple=4)}

        def forward(self, x, direction):
            return x

    callback = PairedPSNR(root / "testA", root / "testA_stylized", tmp_path / "psnr.json")
    callback.on_train_end(SimpleNamespace(is_global_zero=True, callbacks=[callback]), Copy())
    result = json.loads((tmp_path / "psnr.json").read_text())
    assert result["images"] == 6
    assert result["psnr_translated_db"] == pytest.approx(result["psnr_untouched_db"], abs=0.05)
    import numpy as np
    a, b = np.zeros((2, 2, 3), np.uint8), np.full((2, 2, 3), 255, np.uint8)
    assert psnr(a, b) == pytest.approx(0.0) and psnr(a, a) == float("inf")


def test_read_only_arrays_convert_without_a_warning():
    """np.asarray of a PIL image is read-only; torch.from_numpy would warn (the demo's PSNR check did)."""
    import warnings

    import numpy as np

    from cyclestyle.pixels import from_rgb_array

    rgb = np.asarray(Image.new("RGB", (4, 3), (255, 0, 0)))
    assert not rgb.flags.writeable
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = from_rgb_array(rgb)
    assert x.shape == (1, 3, 3, 4) and torch.equal(x[0, :, 0, 0], torch.tensor([1.0, -1.0, -1.0]))


CONCURRENT_BUILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import cyclestyle.data.demo as demo

    stylize = demo.stylize
    def slow(rgb):  # both builders overlap for a while
        time.sleep(0.2)
        return stylize(rgb)
    demo.stylize = slow
    root = demo.build_demo(Path(sys.argv[1]), size=40, train_per_photo=4, test_per_photo=2)
    seen = set()
    for _ in range(30):  # as a run reads its data set, the other builder may finish meanwhile
        seen.add((root.stat().st_ino, len(list((root / "trainA").glob("*.png")))))  # the same folder, whole
        time.sleep(0.1)
    print(sorted(seen))
""")


@pytest.mark.slow
def test_two_first_runs_sharing_a_fresh_cache_build_the_demo_once(tmp_path):
    """The second builder waits for the first and uses its data set; it never replaces a set
    the first is already reading."""
    root = tmp_path / "cache" / "demo"
    runs = []
    for _ in range(2):  # the second starts a little later, so it would finish while the first reads
        runs.append(subprocess.Popen([sys.executable, "-c", CONCURRENT_BUILD, str(root)], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True))
        time.sleep(1.0)
    outputs = [run.communicate(timeout=300) for run in runs]
    for run, (stdout, stderr) in zip(runs, outputs):
        assert run.returncode == 0, stderr
        counts = ast.literal_eval(stdout.strip().splitlines()[-1])
        assert len(counts) == 1 and counts[0][1] > 0, counts  # never replaced or emptied under a reader
    assert sorted(p.name for p in root.parent.iterdir() if not p.name.endswith(".lock")) == ["demo"]  # no leftovers
    assert (root / ".complete").exists()
