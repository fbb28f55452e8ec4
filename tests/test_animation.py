"""`cyclestyle translate` on animated GIFs, WebPs and PNGs: every frame translated, durations and loop
count kept, the format kept; still GIFs are images; broken files listed, nothing half-written."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence

from cyclestyle.commands.translate import main as translate_main
from cyclestyle.inference import load_generator
from cyclestyle.inference.tiling import translate_frames

DURATIONS = [40, 80, 120, 160]


@pytest.fixture(scope="module")
def ckpt(tiny_ckpt) -> Path:
    return tiny_ckpt


def frames(count: int, seed: int = 0) -> list[np.ndarray]:
    """Smooth colour fields (GIF's 256 colours hold them well) with a square moving across."""
    rng = np.random.default_rng(seed)
    base = np.asarray(Image.fromarray(rng.integers(0, 256, (3, 4, 3), dtype=np.uint8)).resize((44, 30), Image.BICUBIC))
    out = []
    for i in range(count):
        frame = base.copy()
        frame[8:16, 4 + 8 * i:12 + 8 * i] = 255
        out.append(frame)
    return out


def save_animation(path: Path, rgbs: list[np.ndarray], **options) -> None:
    images = [Image.fromarray(rgb) for rgb in rgbs]
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], **options)


def read(path: Path) -> tuple[list[np.ndarray], list[int], Image.Image]:
    image = Image.open(path)
    shown = [(np.asarray(frame.convert("RGB")), frame.info.get("duration")) for frame in ImageSequence.Iterator(image)]
    return [f for f, _ in shown], [d for _, d in shown], image


def run(ckpt: Path, inputs: Path, out: Path, *options: str) -> int:
    return translate_main([str(ckpt), str(inputs), "--output", str(out), "--precision", "32", "--no-progress", *options])


def test_animations_keep_their_frames_timing_loop_and_format(ckpt, tmp_path, capsys):
    inputs, out = tmp_path / "in", tmp_path / "out"
    save_animation(inputs / "walk.gif", frames(4), duration=DURATIONS, loop=0)
    save_animation(inputs / "clips" / "wave.webp", frames(3, seed=1), duration=50, loop=2, lossless=True)
    save_animation(inputs / "clips" / "blink.png", frames(2, seed=3), duration=[30, 90], loop=1)  # APNG
    Image.fromarray(frames(1, seed=2)[0]).save(inputs / "still.gif")  # one frame: an image
    assert run(ckpt, inputs, out) == 0
    assert "1 images, 3 animations" in capsys.readouterr().err
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "clips/blink.png", "clips/wave.webp", "still.png", "walk.gif"]

    got, durations, image = read(out / "walk.gif")
    assert len(got) == 4 and durations == DURATIONS and image.info["loop"] == 0 and image.size == (44, 30)
    shown = read(inputs / "walk.gif")[0]  # the input's frames as decoded (GIF quantised them when saved)
    want = translate_frames(load_generator(ckpt), shown, None, 32)  # (4, H, W, 3): the image path's result
    save_animation(tmp_path / "want.gif", list(want), duration=DURATIONS, loop=0)  # as GIF's 256 colours hold them
    for frame, expected, exact in zip(got, read(tmp_path / "want.gif")[0], want):
        assert np.array_equal(frame, expected)
        assert np.abs(frame.astype(int) - exact).mean() < 8  # the palette's rounding only
    got, durations, image = read(out / "clips" / "wave.webp")
    assert len(got) == 3 and durations == [50] * 3 and image.info["loop"] == 2
    got, durations, image = read(out / "clips" / "blink.png")
    assert len(got) == 2 and durations == [30, 90] and image.info["loop"] == 1

    before = (out / "walk.gif").stat().st_mtime_ns
    assert run(ckpt, inputs, out) == 0 and (out / "walk.gif").stat().st_mtime_ns == before  # reruns skip
    assert run(ckpt, inputs, out, "--overwrite") == 0 and (out / "walk.gif").stat().st_mtime_ns != before


def test_temporal_smoothing_applies_to_animations(ckpt, tmp_path):
    save_animation(tmp_path / "in" / "walk.gif", frames(4), duration=DURATIONS, loop=0)
    assert run(ckpt, tmp_path / "in", tmp_path / "plain") == 0
    assert run(ckpt, tmp_path / "in", tmp_path / "smooth", "--temporal-smoothing", "0.5") == 0
    plain, smooth = read(tmp_path / "plain" / "walk.gif")[0], read(tmp_path / "smooth" / "walk.gif")[0]
    assert np.array_equal(plain[0], smooth[0])  # nothing before the first frame to blend with
    assert any(not np.array_equal(a, b) for a, b in zip(plain[1:], smooth[1:]))


def test_a_broken_animation_is_listed_and_leaves_nothing(ckpt, tmp_path, capsys):
    inputs, out = tmp_path / "in", tmp_path / "out"
    save_animation(inputs / "good.gif", frames(3), duration=60, loop=0)
    whole = (inputs / "good.gif").read_bytes()
    (inputs / "torn.gif").write_bytes(whole[: int(len(whole) * 0.6)])  # frames 2.. cut off mid-download
    assert run(ckpt, inputs, out) == 1
    err = capsys.readouterr().err
    assert "torn.gif" in err and "good.gif" not in err
    assert sorted(p.name for p in out.iterdir()) == ["good.gif"]  # no partial file, no temporary left
