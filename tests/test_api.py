"""The library under the front ends: `cyclestyle.translate`, `Translator`, the adapters and the record layer."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cyclestyle
from cyclestyle.commands.translate import main as translate_main
from cyclestyle.inference import Summary, TranslateOptions, Translator, load_generator

from conftest import write_images


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _inputs(tmp_path: Path) -> Path:
    photos = tmp_path / "photos"
    write_images(photos, 3, size=(36, 44))
    write_images(photos / "sub", 2, size=(24, 20), seed=3)
    rgba = Image.fromarray(np.random.default_rng(1).integers(0, 255, (20, 28, 4), dtype=np.uint8), "RGBA")
    rgba.save(photos / "alpha.png")
    frames = [Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)) for i in range(3)]
    frames[0].save(photos / "anim.gif", save_all=True, append_images=frames[1:], duration=[50, 60, 70], loop=0)
    (photos / "broken.png").write_bytes(b"not a png")
    return photos


@pytest.mark.parametrize("options", [[], ["--direction", "b2a", "--tile", "16", "--tile-overlap", "4", "--format", "jpg"]])
def test_the_api_and_the_cli_write_byte_identical_outputs(tiny_ckpt, tmp_path, options):
    photos = _inputs(tmp_path)
    assert translate_main([str(tiny_ckpt), str(photos), "--output", str(tmp_path / "cli"), "--no-progress",
                           *options]) == 1  # the broken file
    changes = {"direction": "b2a", "tile": 16, "tile_overlap": 4, "format": "jpg"} if options else {}
    result = cyclestyle.translate(tiny_ckpt, photos, tmp_path / "api", progress=False, **changes)
    cli, api = _tree(tmp_path / "cli"), _tree(tmp_path / "api")
    assert len(cli) == 7 and cli == api  # 6 images (alpha.png kept RGBA or flattened alike) + the GIF
    assert [s.kind for s in result.summaries] == ["images", "animations"]
    assert [(s.translated, s.skipped) for s in result.summaries] == [(6, 0), (1, 0)]
    assert [source.name for source, _ in result.failed] == ["broken.png"]
    again = cyclestyle.translate(tiny_ckpt, [photos], tmp_path / "api", progress=False, **changes)
    assert [(s.translated, s.skipped) for s in again.summaries] == [(0, 6), (0, 1)]  # reruns skip
    assert _tree(tmp_path / "api") == cli


def test_in_memory_translation_equals_the_file_path(tiny_ckpt, tmp_path):
    photos = tmp_path / "p"
    (path,) = write_images(photos, 1, size=(30, 42))
    cyclestyle.translate(tiny_ckpt, [path], tmp_path / "out", progress=False)
    on_disk = np.asarray(Image.open(tmp_path / "out" / path.name))
    translator = Translator(tiny_ckpt)
    array = np.asarray(Image.open(path).convert("RGB"))
    assert np.array_equal(translator.image(array), on_disk)  # numpy in -> (H, W, 3) uint8 out
    pil = translator.image(Image.open(path))
    assert isinstance(pil, Image.Image) and np.array_equal(np.asarray(pil), on_disk)
    rgba = Image.open(path).convert("RGBA")
    rgba.putalpha(77)
    out = translator.image(rgba)
    assert out.mode == "RGBA" and np.asarray(out)[..., 3].max() == 77  # alpha kept
    with pytest.raises(ValueError, match="uint8 array"):
        translator.image(array.astype(np.float32))


def test_options_are_checked_by_name_before_any_work(tiny_ckpt, tmp_path):
    with pytest.raises(TypeError, match="unknown translate option.*tiles"):
        cyclestyle.translate(tiny_ckpt, [tmp_path], tmp_path / "o", tiles=4)
    with pytest.raises(ValueError, match=r"--tile must be 0 \(whole images\) or >= 16"):
        cyclestyle.translate(tiny_ckpt, [tmp_path], tmp_path / "o", TranslateOptions(tile=8))
    assert not (tmp_path / "o").exists()


def test_generators_say_their_precision(tiny_ckpt):
    assert load_generator(tiny_ckpt, precision="bf16").precision == "bf16"
    translator = Translator(tiny_ckpt, precision="32")
    assert (translator.generator.precision, translator.generator.runtime, translator.precision) == ("32", "torch", "32")


def test_one_summary_type_for_every_kind():
    images, videos = Summary("images", translated=2, seconds=1.0), Summary("videos", translated=1, frames=10, seconds=2.0)
    assert images.line(Path("o")).startswith("Translated 2 images in 1.0 s (2.00 images/s) -> o")
    assert videos.line(Path("o")).startswith("Translated 1 videos (10 frames in 2.0 s, 5.00 frames/s) -> o")


def test_a_foreign_file_translates_as_its_import_does(tmp_path):
    """translate on a reference .pth = the adapter's in-memory import, rebuilt like any checkpoint:
    the same outputs as translating the checkpoint import-reference writes from it."""
    from cyclestyle.adapters import ADAPTERS, File, adapter_for
    from cyclestyle.commands.import_reference import main as import_main
    from cyclestyle.networks import build_generator

    torch.manual_seed(0)
    settings = dict(name="resnet_6blocks", ngf=8)
    for name in ("G_A", "G_B"):
        torch.save(build_generator(**settings).state_dict(), tmp_path / f"{name}.pth")
    assert adapter_for(torch.load(tmp_path / "G_A.pth"), source="G_A.pth") is ADAPTERS["cyclegan"]
    assert import_main(["--g-a", str(tmp_path / "G_A.pth"), "--g-b", str(tmp_path / "G_B.pth"),
                        "--output", str(tmp_path / "imported.ckpt")]) == 0
    in_memory = ADAPTERS["cyclegan"].convert({"g_a": File(tmp_path / "G_A.pth")})
    assert list(in_memory["cyclestyle"]["translators"]) == ["a2b"]  # one generator: one direction
    x = torch.rand(1, 3, 24, 24) * 2 - 1
    direct = load_generator(tmp_path / "G_A.pth")(x)
    assert torch.equal(direct, load_generator(tmp_path / "imported.ckpt")(x))
    assert torch.equal(direct, load_generator(tmp_path / "G_A.pth", direction="b2a")(x))  # one-way file


def test_the_record_layer_imports_nothing_above_it():
    code = ("import sys, cyclestyle.checkpoints, cyclestyle.record; "
            "print(sorted(m for m in sys.modules if m.startswith(('cyclestyle.models', 'cyclestyle.inference', "
            "'cyclestyle.adapters', 'cyclestyle.commands'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_inference_has_no_argparse():
    """argparse lives in the front ends only."""
    package = Path(cyclestyle.__file__).parent
    for folder in ("inference", "models", "networks", "adapters", "data"):
        for path in (package / folder).rglob("*.py"):
            assert "argparse" not in path.read_text(), path
