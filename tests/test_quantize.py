"""`translate --precision int8`: quality against fp32, the refusal path, the CLI."""
from __future__ import annotations

import builtins
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclestyle.commands.translate import main as translate_main
from cyclestyle.inference import quantize
from cyclestyle.inference.quantize import QualityError, int8_generator, trunk_convolutions
from cyclestyle.inference.sources import load_generator
from cyclestyle.networks import build_generator
from cyclestyle.pixels import from_rgb_array, psnr

pytest.importorskip("torchao")
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")  # scikit-image's bundled photographs


def photos(size: int) -> list[np.ndarray]:
    """Real photographs, centre-cropped square and resized to `size`: (H, W, 3) uint8."""
    import skimage.data

    out = []
    for name in PHOTOS:
        image = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        side = min(image.size)
        out.append(np.asarray(image.crop((0, 0, side, side)).resize((size, size), Image.BICUBIC)))
    return out


def write_photos(folder: Path, size: int) -> list[Path]:
    folder.mkdir(parents=True)
    paths = [folder / f"{i}_{name}.png" for i, name in enumerate(PHOTOS)]
    for path, rgb in zip(paths, photos(size)):
        Image.fromarray(rgb).save(path)
    return paths


@pytest.fixture(scope="module")
def reference_pth(tmp_path_factory) -> Path:
    """The reference ResNet-9 generator (zoo layout), initialised as the reference initialises it."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "latest_net_G.pth"
    torch.save(build_generator("resnet_9blocks").state_dict(), path)
    return path


def test_only_the_residual_trunk_is_quantised():
    names = trunk_convolutions(build_generator("resnet_9blocks"))
    assert names == [f"model.{i}.conv_block.{j}" for i in range(10, 19) for j in (1, 5)]  # not stem, sampling, output


@pytest.mark.slow
def test_int8_stays_within_35_db_of_fp32_on_photos(reference_pth, tmp_path):
    fp32 = load_generator(reference_pth)
    sources = write_photos(tmp_path / "photos", 128)
    int8, calibration = int8_generator(fp32, sources, count=3)
    assert calibration.images == 3 and calibration.psnr >= 35.0
    x = from_rgb_array(photos(128)[3])  # not calibrated on
    exact, quantised = (((g(x).clamp(-1, 1) + 1) * 127.5).round().byte()[0].permute(1, 2, 0).numpy() for g in (fp32, int8))
    assert psnr(exact, quantised) >= 35.0
    assert not np.array_equal(exact, quantised)  # really another computation
    wide = from_rgb_array(np.ascontiguousarray(np.concatenate(photos(64)[:2], axis=1)))  # another size: recompiled
    assert int8(wide).shape == (1, 3, 64, 128)


def test_too_low_quality_is_refused_naming_the_measured_db(tmp_path):
    torch.manual_seed(0)
    net = build_generator("resnet_6blocks", ngf=8)
    images = [from_rgb_array(rgb) for rgb in photos(32)[:2]]
    with pytest.raises(QualityError, match=r"int8 outputs are \d+\.\d dB PSNR from fp32 .*need >= 99 dB") as error:
        quantize.quantize(net, images, size_multiple=4, min_psnr=99.0)
    assert 10 < error.value.measured < 99


def test_int8_refuses_gpus_onnx_and_no_images(reference_pth):
    fp32 = load_generator(reference_pth)
    with pytest.raises(ValueError, match="x86 CPUs only"):
        quantize.check_supported(torch.device("cuda"))
    with pytest.raises(ValueError, match="at least one readable input image"):
        int8_generator(fp32, [])

    class Onnx:
        device, size_multiple, fixed_size, spec = torch.device("cpu"), 4, None, {}

    with pytest.raises(ValueError, match="needs a PyTorch model file"):
        int8_generator(Onnx(), [])


def test_missing_torchao_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def no_torchao(name, *args, **kwargs):
        if name.startswith("torchao"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torchao)
    with pytest.raises(ImportError, match=r"pip install 'cyclestyle\[int8\]'"):
        quantize._pt2e()


def translate(model: Path, folder: Path, out: Path, *extra: str) -> int:
    return translate_main([str(model), str(folder), "--output", str(out), "--workers", "0", "--no-progress", *extra])


@pytest.mark.slow
def test_translate_cli_int8(reference_pth, tmp_path, capsys):
    write_photos(tmp_path / "in", 64)
    assert translate(reference_pth, tmp_path / "in", tmp_path / "exact", "--precision", "32") == 0
    assert translate(reference_pth, tmp_path / "in", tmp_path / "int8", "--precision", "int8", "--calibration", "2") == 0
    err = capsys.readouterr().err
    assert "int8: calibrated on 2 images" in err and "precision int8" in err
    for i, path in enumerate(sorted((tmp_path / "exact").iterdir())):  # the first two calibrated, checked >= 35 dB
        quality = psnr(np.asarray(Image.open(path)), np.asarray(Image.open(tmp_path / "int8" / path.name)))
        assert quality >= (35.0 if i < 2 else 30.0), (path.name, quality)


@pytest.mark.slow
def test_translate_cli_falls_back_to_the_exact_path_when_quality_is_too_low(reference_pth, tmp_path, capsys,
                                                                            monkeypatch):
    monkeypatch.setattr(quantize, "MIN_PSNR", 99.0)
    write_photos(tmp_path / "in", 32)
    assert translate(reference_pth, tmp_path / "in", tmp_path / "out", "--precision", "int8", "--calibration", "1") == 0
    err = capsys.readouterr().err
    assert "dB PSNR from fp32 on the calibration images (need >= 99 dB): translating in precision " in err
    fallback = err.split("translating in precision ")[1].split()[0]  # what `auto` picks on this machine
    assert translate(reference_pth, tmp_path / "in", tmp_path / "exact", "--precision", fallback) == 0
    for path in sorted((tmp_path / "exact").iterdir()):
        assert np.array_equal(np.asarray(Image.open(path)), np.asarray(Image.open(tmp_path / "out" / path.name)))


def test_calibration_needs_int8(reference_pth, tmp_path, capsys):
    write_photos(tmp_path / "in", 32)
    assert translate(reference_pth, tmp_path / "in", tmp_path / "out", "--calibration", "4") == 2
    assert "--calibration is for --precision int8" in capsys.readouterr().err
