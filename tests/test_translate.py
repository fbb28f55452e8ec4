"""`cyclestyle translate`: model sources, inputs/outputs, never losing work, tiling, precision."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclestyle.pixels import psnr
from cyclestyle.commands.translate import build_parser
from cyclestyle.commands.translate import main as translate_main
from cyclestyle.inference import UnsafeCheckpointError, load_generator
from cyclestyle.inference.batch import size_batches
from cyclestyle.inference.files import plan
from cyclestyle.inference.tiling import run_tiled, run_whole
from cyclestyle.networks import build_generator

from conftest import write_images


def reference_translation(generator, path: Path) -> np.ndarray:
    """What translating one file must give: the network on the whole image, padded and cropped back."""
    rgb = np.asarray(Image.open(path).convert("RGB"))
    x = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
    y = run_whole(generator, x, generator.size_multiple)
    return ((y.clamp(-1, 1) + 1) * 127.5).round().byte()[0].permute(1, 2, 0).numpy()


def run(*args: str) -> int:
    return translate_main([*map(str, args), "--no-progress"])


@pytest.mark.parametrize("workers", ["0", "2"])
def test_folder_tree_sizes_modes_and_broken_files(checkpoint, tmp_path, capsys, workers):
    src, out = tmp_path / "photos", tmp_path / "out"
    (src / "trip" / "day1").mkdir(parents=True)
    rgba = np.zeros((29, 37, 4), np.uint8)
    rgba[..., :3] = np.random.default_rng(0).integers(0, 256, (29, 37, 3))
    rgba[..., 3] = np.linspace(0, 255, 37, dtype=np.uint8)[None, :]
    Image.fromarray(rgba, "RGBA").save(src / "logo.png")
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (30, 42), dtype=np.uint8), "L").save(src / "trip" / "gray.jpg")
    rotated = Image.fromarray(np.random.default_rng(2).integers(0, 256, (24, 40, 3), dtype=np.uint8))
    exif = rotated.getexif()
    exif[0x0112] = 6  # stored landscape, displayed portrait
    rotated.save(src / "trip" / "day1" / "rotated.jpg", exif=exif)
    Image.fromarray((np.arange(33 * 35).reshape(33, 35) * 50).astype(np.uint16)).save(src / "trip" / "deep16.png")
    jpeg = (src / "trip" / "gray.jpg").read_bytes()
    (src / "trip" / "day1" / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (src / "notes.png").write_text("not an image")

    assert run(checkpoint, src, "--output", out, "--precision", "32", "--workers", workers) == 1  # some inputs failed
    err = capsys.readouterr().err
    assert "truncated.jpg" in err and "notes.png" in err
    produced = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert produced == ["logo.png", "trip/day1/rotated.png", "trip/deep16.png", "trip/gray.png"]
    logo = Image.open(out / "logo.png")
    assert logo.mode == "RGBA" and logo.size == (37, 29)
    assert np.array_equal(np.asarray(logo)[..., 3], rgba[..., 3])  # alpha re-attached untouched
    gray = Image.open(out / "trip" / "gray.png")
    assert gray.mode == "RGB" and gray.size == (42, 30)
    assert Image.open(out / "trip" / "day1" / "rotated.png").size == (24, 40)  # EXIF orientation applied
    assert Image.open(out / "trip" / "deep16.png").size == (35, 33)


def test_output_is_the_generator_applied_to_the_whole_image(checkpoint, tmp_path):
    write_images(tmp_path / "in", 3, size=(45, 38))
    assert run(checkpoint, tmp_path / "in", "--output", tmp_path / "out", "--precision", "32", "--batch-size", "3") == 0
    generator = load_generator(checkpoint, precision="32")
    for path in sorted((tmp_path / "in").iterdir()):
        produced = np.asarray(Image.open(tmp_path / "out" / path.name))
        expected = reference_translation(generator, path)
        assert np.abs(produced.astype(int) - expected).max() <= 1, path


def test_directions_use_their_own_generators(checkpoint, tmp_path):
    write_images(tmp_path / "in", 1, size=(32, 32))
    run(checkpoint, tmp_path / "in", "--output", tmp_path / "a2b", "--precision", "32")
    run(checkpoint, tmp_path / "in", "--output", tmp_path / "b2a", "--precision", "32", "--direction", "b2a")
    a2b, b2a = (np.asarray(Image.open(tmp_path / d / "img_000.png")) for d in ("a2b", "b2a"))
    expected = reference_translation(load_generator(checkpoint, direction="b2a", precision="32"), tmp_path / "in" / "img_000.png")
    assert not np.array_equal(a2b, b2a)
    assert np.abs(b2a.astype(int) - expected).max() <= 1


def test_batches_hold_one_size_and_give_the_same_result_as_batch_1(checkpoint, tmp_path):
    assert size_batches([(4, 4), (8, 8), (4, 4), None, (4, 4)], 2) == [[0, 2], [4], [1], [3]]
    write_images(tmp_path / "in", 5, size=(32, 32))
    write_images(tmp_path / "in" / "wide", 2, size=(48, 20), seed=5)
    run(checkpoint, tmp_path / "in", "--output", tmp_path / "b1", "--precision", "32", "--batch-size", "1", "--workers", "0")
    run(checkpoint, tmp_path / "in", "--output", tmp_path / "b4", "--precision", "32", "--batch-size", "4", "--workers", "2")
    for path in (tmp_path / "b1").rglob("*.png"):
        other = tmp_path / "b4" / path.relative_to(tmp_path / "b1")
        assert np.abs(np.asarray(Image.open(path)).astype(int) - np.asarray(Image.open(other))).max() <= 1


def test_globs_single_files_and_formats(checkpoint, tmp_path):
    write_images(tmp_path / "in" / "sub", 3, size=(32, 24))
    assert run(checkpoint, str(tmp_path / "in" / "**" / "img_00[01].png"), "--output", tmp_path / "g", "--format", "jpg",
               "--quality", "80") == 0
    assert sorted(str(p.relative_to(tmp_path / "g")) for p in (tmp_path / "g").rglob("*")
                  if p.is_file()) == ["sub/img_000.jpg", "sub/img_001.jpg"]
    assert Image.open(tmp_path / "g" / "sub" / "img_000.jpg").format == "JPEG"
    assert run(checkpoint, tmp_path / "in" / "sub" / "img_002.png", "--output", tmp_path / "f", "--format", "webp") == 0
    assert Image.open(tmp_path / "f" / "img_002.webp").format == "WEBP"
    assert run(checkpoint, tmp_path / "in", "--output", tmp_path / "s", "--format", "same") == 0
    assert (tmp_path / "s" / "sub" / "img_002.png").exists()


def test_existing_outputs_are_skipped_unless_overwrite(checkpoint, tmp_path, capsys):
    write_images(tmp_path / "in", 2, size=(32, 32))
    run(checkpoint, tmp_path / "in", "--output", tmp_path / "out")
    stale = tmp_path / "out" / "img_000.png"
    Image.new("RGB", (5, 5)).save(stale)
    capsys.readouterr()
    run(checkpoint, tmp_path / "in", "--output", tmp_path / "out")
    assert "Translated 0 images" in capsys.readouterr().out and Image.open(stale).size == (5, 5)
    run(checkpoint, tmp_path / "in", "--output", tmp_path / "out", "--overwrite")
    assert Image.open(stale).size == (32, 32)


def test_an_interrupted_run_leaves_only_whole_images_and_resumes(checkpoint, tmp_path, monkeypatch, capsys):
    import cyclestyle.inference.batch as batch

    write_images(tmp_path / "in", 6, size=(32, 32))
    real_save, calls = batch.save_atomic, []

    def interrupted_save(rgb, alpha, target, **kwargs):
        calls.append(target)
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the third write
        real_save(rgb, alpha, target, **kwargs)

    monkeypatch.setattr(batch, "save_atomic", interrupted_save)
    assert run(checkpoint, tmp_path / "in", "--output", tmp_path / "out", "--batch-size", "1", "--workers", "0") == 130
    assert "interrupted; the outputs written so far are complete" in capsys.readouterr().err  # one line, no traceback
    monkeypatch.setattr(batch, "save_atomic", real_save)
    done = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert 0 < len(done) < 6 and all(not name.startswith(".") for name in done)  # no temporary files left
    for name in done:
        Image.open(tmp_path / "out" / name).load()  # every written image is complete
    capsys.readouterr()
    assert run(checkpoint, tmp_path / "in", "--output", tmp_path / "out") == 0
    assert f"Translated {6 - len(done)} images" in capsys.readouterr().out
    assert len(list((tmp_path / "out").iterdir())) == 6


def test_refuses_to_write_into_inputs_or_an_unwritable_folder(checkpoint, tmp_path, capsys):
    write_images(tmp_path / "in", 2, size=(32, 32))
    assert run(checkpoint, tmp_path / "in", "--output", tmp_path / "in" / "out") == 2
    assert "input folder" in capsys.readouterr().err
    with pytest.raises(ValueError, match="input folder"):
        plan([str(tmp_path / "in" / "img_000.png")], tmp_path / "in", "png")
    write_images(tmp_path / "o" / "sub", 1, size=(32, 32))  # o/sub/img_000.png: where src/sub/img_000.png goes
    write_images(tmp_path / "src" / "sub", 1, size=(32, 32))
    with pytest.raises(ValueError, match="overwrite the input file"):
        plan([str(tmp_path / "src"), str(tmp_path / "o" / "sub" / "img_000.png")], tmp_path / "o", "png")
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert run(checkpoint, tmp_path / "in", "--output", blocker / "out") == 2
    assert "cannot write to the output folder" in capsys.readouterr().err
    assert run(tmp_path / "missing.ckpt", tmp_path / "in", "--output", tmp_path / "o") == 2
    assert "missing.ckpt" in capsys.readouterr().err


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def test_a_checkpoint_that_would_run_code_is_refused(checkpoint, tmp_path, capsys):
    marker, evil = tmp_path / "pwned.txt", tmp_path / "evil.ckpt"
    state = torch.load(checkpoint, weights_only=True)
    state["hyper_parameters"]["payload"] = _Exploit(marker)
    torch.save(state, evil)
    with pytest.raises(UnsafeCheckpointError, match="refused to load"):
        load_generator(evil)
    write_images(tmp_path / "in", 1, size=(32, 32))
    assert run(evil, tmp_path / "in", "--output", tmp_path / "out") == 2
    assert "refused to load" in capsys.readouterr().err
    assert not marker.exists()
    pickle.loads(pickle.dumps(_Exploit(marker)))  # the payload is real: unpickling it does write the file
    assert marker.read_text() == "pwned"


@pytest.mark.parametrize("name,stale", [("resnet_6blocks", True), ("resnet_9blocks", False), ("unet_256", False)])
def test_reference_generators_are_recognised_and_loaded_strictly(name, stale, tmp_path):
    torch.manual_seed(0)
    net = build_generator(name, ngf=8).eval()
    state = net.state_dict()
    if stale:  # older reference files also saved InstanceNorm running statistics
        state.update({"model.2.running_mean": torch.zeros(8), "model.2.running_var": torch.ones(8),
                      "model.2.num_batches_tracked": torch.tensor(0)})
    torch.save(state, tmp_path / "latest_net_G.pth")
    generator = load_generator(tmp_path / "latest_net_G.pth", precision="32")
    assert generator.spec["name"] == name and generator.spec["ngf"] == 8
    x = torch.rand(1, 3, 40, 52) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(run_whole(generator, x, generator.size_multiple), run_whole(net, x, net.size_multiple))
    with pytest.raises(ValueError, match="do not fit"):
        load_generator(tmp_path / "latest_net_G.pth", overrides={"ngf": 16})


def test_tiles_blend_to_the_whole_image_result_away_from_borders():
    torch.manual_seed(0)
    net = build_generator("resnet_6blocks", ngf=8, norm="none").eval()
    coarse = torch.rand(1, 3, 6, 8) * 2 - 1
    x = torch.nn.functional.interpolate(coarse, size=(96, 128), mode="bicubic", align_corners=False).clamp(-1, 1)
    seen = []

    def recording(t):
        seen.append(tuple(t.shape[-2:]))
        return net(t)

    with torch.no_grad():
        whole = run_whole(net, x, 4)
        tiled = run_tiled(recording, x, 4, tile=48, overlap=16)
    assert max(max(s) for s in seen) == 48 and len(seen) > 4  # the network never saw more than a tile
    inner = (tiled - whole)[..., 8:-8, 8:-8].abs()
    assert inner.mean() < 0.01 and inner.max() < 0.1, (inner.mean(), inner.max())


PEAK_SCRIPT = textwrap.dedent("""
    import sys, torch
    from cyclestyle.networks import build_generator
    from cyclestyle.inference.tiling import run_tiled, run_whole

    def peak_mib():  # the process's peak resident memory since the last reset (Linux)
        status = open("/proc/self/status").read()
        return int(status.split("VmHWM:")[1].split()[0]) // 1024

    torch.set_num_threads(1)
    net = build_generator("resnet_6blocks", ngf=8).eval()
    x = torch.rand(1, 3, 1536, 1536) * 2 - 1
    with torch.inference_mode():
        run_tiled(net, x[..., :256, :256], 4, tile=128, overlap=16)  # warm up the allocator
    open("/proc/self/clear_refs", "w").write("5")  # reset the peak to the current use
    before = peak_mib()
    with torch.inference_mode():
        run_tiled(net, x, 4, tile=256, overlap=32) if sys.argv[1] == "tiled" else run_whole(net, x, 4)
    print(peak_mib() - before)
""")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc peak-memory reset")
def test_tiling_bounds_peak_memory_for_a_large_image():
    growth = {mode: int(subprocess.run([sys.executable, "-c", PEAK_SCRIPT, mode], capture_output=True, text=True,
                                       check=True).stdout.split()[-1]) for mode in ("tiled", "whole")}  # MiB
    assert growth["tiled"] < growth["whole"] / 4, growth


@pytest.mark.parametrize("precision", ["bf16", "16"])
def test_low_precision_output_is_close_to_fp32(checkpoint, tmp_path, precision):
    write_images(tmp_path / "in", 2, size=(48, 40))
    run(checkpoint, tmp_path / "in", "--output", tmp_path / "fp32", "--precision", "32")
    assert run(checkpoint, tmp_path / "in", "--output", tmp_path / "low", "--precision", precision, "--device", "cpu") == 0
    for path in (tmp_path / "fp32").iterdir():
        assert psnr(np.asarray(Image.open(path)), np.asarray(Image.open(tmp_path / "low" / path.name))) > 30


def test_device_and_precision_choice():
    from cyclestyle.devices import native_bf16, resolve_device, resolve_precision

    cpu = torch.device("cpu")
    assert resolve_device("cpu") == cpu
    assert resolve_device("auto") == (torch.device("cuda") if torch.cuda.is_available() else cpu)
    assert resolve_precision("auto", cpu) == ("bf16" if native_bf16(cpu) else "32")
    assert resolve_precision("16", cpu) == "16"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda:1")


def test_decode_workers_default_to_the_cores_torch_leaves_free(monkeypatch):
    """On the CPU a decode worker takes time from the generator's threads; a GPU is fed by 2."""
    from cyclestyle.inference.batch import default_workers

    for cores, threads, expected in ((2, 2, 0), (4, 2, 2), (3, 2, 1), (16, 8, 2), (1, 1, 0)):
        monkeypatch.setattr(os, "cpu_count", lambda cores=cores: cores)
        monkeypatch.setattr(torch, "get_num_threads", lambda threads=threads: threads)
        assert default_workers(torch.device("cpu")) == expected, (cores, threads)
        assert default_workers(torch.device("cuda")) == min(2, cores)


def test_help_explains_every_option():
    text = build_parser().format_help()
    for option in ("--output", "--direction", "--batch-size", "--workers", "--device", "--precision", "--tile",
                   "--tile-overlap", "--format", "--quality", "--overwrite", "--generator", "--ngf", "--norm"):
        assert option in text, option
    result = subprocess.run([sys.executable, "-m", "cyclestyle", "translate", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--tile-overlap" in result.stdout


@pytest.mark.slow
def test_compiled_generator_gives_the_same_images(checkpoint, tmp_path):
    write_images(tmp_path / "in", 2, size=(32, 32))
    run(checkpoint, tmp_path / "in", "--output", tmp_path / "eager", "--precision", "32")
    run(checkpoint, tmp_path / "in", "--output", tmp_path / "compiled", "--precision", "32", "--compile")
    for path in (tmp_path / "eager").iterdir():
        a, b = (np.asarray(Image.open(tmp_path / d / path.name)).astype(int) for d in ("eager", "compiled"))
        assert np.abs(a - b).max() <= 1


@pytest.mark.parametrize("size", [(20, 20), (32, 32), (50, 70), (1, 90)])
def test_a_fixed_size_network_only_ever_sees_its_size_and_images_keep_theirs(size):
    from cyclestyle.inference.tiling import translate_any_size

    seen = set()

    def fixed(x):  # like full-mode U-GAT-IT: its MLP takes 32 x 32 inputs only
        seen.add(tuple(x.shape[-2:]))
        assert x.shape[-2:] == (32, 32)
        return -x

    x = torch.rand(2, 3, *size) * 2 - 1
    y = translate_any_size(fixed, x, multiple=4, fixed_size=32, overlap=8)
    assert y.shape == x.shape and seen == {(32, 32)}
    torch.testing.assert_close(y, -x)  # blended tiles of a pixel-wise network give it back exactly


@pytest.mark.parametrize("native", [True, False])
def test_translate_with_bf16_where_it_is_emulated_warns(checkpoint, tmp_path, capfd, monkeypatch, native):
    from cyclestyle import devices

    monkeypatch.setattr(devices, "native_bf16", lambda device: native)
    monkeypatch.setattr(devices, "bf16_slowdown", lambda device: 97.0)
    write_images(tmp_path / "in", 1, size=(16, 16))
    assert translate_main([str(checkpoint), str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--precision",
                           "bf16", "--device", "cpu", "--workers", "0", "--no-progress"]) == 0
    warned = "--precision=bf16 on this CPU (no AVX512-BF16 or AMX): bf16 convolutions are emulated, measured 97x"
    assert (warned in capfd.readouterr().err) == (not native)


@pytest.mark.slow
def test_two_runs_into_one_folder_never_corrupt_an_output(checkpoint, tmp_path):
    """Held before issue 16 and kept: outputs are renamed into place whole, whoever writes them."""
    write_images(tmp_path / "in", 12, size=(48, 40))
    args = [sys.executable, "-m", "cyclestyle", "translate", str(checkpoint), str(tmp_path / "in"), "--output",
            str(tmp_path / "out"), "--overwrite", "--workers", "0", "--no-progress", "--precision", "32"]
    runs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    assert [run.wait(timeout=300) for run in runs] == [0, 0]
    generator = load_generator(checkpoint, precision="32")
    for source in sorted((tmp_path / "in").iterdir()):
        x = torch.from_numpy(np.asarray(Image.open(source).convert("RGB")).copy()).permute(2, 0, 1)[None]
        want = ((run_whole(generator, x.float() / 127.5 - 1, 4).clamp(-1, 1) + 1) * 127.5).round()[0]
        got = torch.from_numpy(np.asarray(Image.open(tmp_path / "out" / source.with_suffix(".png").name)).copy())
        assert (got.permute(2, 0, 1).float() - want).abs().max() <= 1, source.name
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temporary files left
