import pytest
import torch

from cyclestyle.networks import (
    NLayerDiscriminator,
    PixelDiscriminator,
    ResnetGenerator,
    build_discriminator,
    build_generator,
)


def n_params(net):
    return sum(p.numel() for p in net.parameters())


def reference_resnet_keys(n_blocks: int, ngf: int = 64, dropout: bool = False) -> dict[str, tuple]:
    """Key -> shape of a reference CycleGAN resnet generator (GUIDE.md section 3)."""
    shapes = {"model.1": (ngf, 3, 7, 7), "model.4": (2 * ngf, ngf, 3, 3), "model.7": (4 * ngf, 2 * ngf, 3, 3)}
    second = 6 if dropout else 5
    for block in range(10, 10 + n_blocks):
        for conv in (1, second):
            shapes[f"model.{block}.conv_block.{conv}"] = (4 * ngf, 4 * ngf, 3, 3)
    up = 10 + n_blocks
    shapes[f"model.{up}"] = (4 * ngf, 2 * ngf, 3, 3)  # ConvTranspose2d: (in, out, k, k)
    shapes[f"model.{up + 3}"] = (2 * ngf, ngf, 3, 3)
    shapes[f"model.{up + 7}"] = (3, ngf, 7, 7)
    keys = {}
    for name, shape in shapes.items():
        keys[f"{name}.weight"] = shape
        keys[f"{name}.bias"] = (shape[1] if name in (f"model.{up}", f"model.{up + 3}") else shape[0],)
    return keys


def test_parameter_counts_match_the_reference():
    assert n_params(build_generator("resnet_9blocks", ngf=64)) == 11_378_179
    assert n_params(build_discriminator("basic", ndf=64)) == 2_764_737


@pytest.mark.parametrize("name,blocks", [("resnet_9blocks", 9), ("resnet_6blocks", 6)])
def test_reference_state_dict_loads_strictly(name, blocks):
    expected = reference_resnet_keys(blocks)
    assert len(expected) == (48 if blocks == 9 else 36)
    net = build_generator(name)
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == expected
    # A reference file: random tensors of the listed shapes plus stale InstanceNorm stats.
    reference = {k: torch.randn(shape) for k, shape in expected.items()}
    reference["model.2.running_mean"] = torch.zeros(64)
    reference["model.2.num_batches_tracked"] = torch.tensor(0)
    cleaned = {k: v for k, v in reference.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))}
    net.load_state_dict(cleaned, strict=True)
    assert torch.equal(net.state_dict()["model.13.conv_block.5.weight"], reference["model.13.conv_block.5.weight"])


def test_dropout_moves_the_second_conv_of_each_block():
    keys = set(build_generator("resnet_9blocks", dropout=True).state_dict())
    assert {k: tuple(v) for k, v in reference_resnet_keys(9, dropout=True).items()}.keys() == keys


@pytest.mark.parametrize("name,size", [("resnet_6blocks", 36), ("unet_64", 64), ("unet_128", 128), ("unet_256", 256)])
def test_generators_keep_the_image_shape(name, size):
    net = build_generator(name, ngf=8).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, size, size + (4 if name.startswith("resnet") else 0)))
    assert out.shape == (2, 3, size, size + (4 if name.startswith("resnet") else 0))
    assert out.abs().max() <= 1.0


def test_patchgan_basic_is_70x70_with_30x30_map():
    d = build_discriminator("basic", ndf=8)
    assert isinstance(d, NLayerDiscriminator)
    assert d(torch.randn(1, 3, 256, 256)).shape == (1, 1, 30, 30)
    assert [k for k in d.state_dict() if k.endswith("weight")] == [f"model.{i}.weight" for i in (0, 2, 5, 8, 11)]
    deeper = build_discriminator("n_layers", ndf=8, n_layers=4)
    assert deeper(torch.randn(1, 3, 256, 256)).shape == (1, 1, 14, 14)


def test_pixel_discriminator_scores_every_pixel():
    d = build_discriminator("pixel", ndf=8)
    assert isinstance(d, PixelDiscriminator)
    assert d(torch.randn(2, 3, 20, 24)).shape == (2, 1, 20, 24)


@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
def test_norms(norm):
    g = build_generator("resnet_6blocks", ngf=8, norm=norm)
    has_bn = any(isinstance(m, torch.nn.BatchNorm2d) for m in g.modules())
    has_in = any(isinstance(m, torch.nn.InstanceNorm2d) for m in g.modules())
    assert (has_bn, has_in) == (norm == "batch", norm == "instance")
    first_conv = g.model[1]
    assert (first_conv.bias is None) == (norm == "batch")


@pytest.mark.parametrize("init_type", ["normal", "xavier", "kaiming", "orthogonal"])
def test_init_types_give_their_own_weight_statistics(init_type):
    """Each init type leaves its signature on a conv: N(0, gain) std; xavier's std gain*sqrt(2/(fan_in+fan_out));
    kaiming's sqrt(2/fan_in) (gain ignored); orthogonal rows that are orthogonal with norm gain."""
    torch.manual_seed(0)
    g = build_generator("resnet_6blocks", ngf=8, init_type=init_type, init_gain=0.02)
    conv = g.model[10].conv_block[1]  # (32, 32, 3, 3): fan_in = fan_out = 288
    w = conv.weight.detach().flatten(1)  # (32, 288)
    assert torch.all(conv.bias == 0)
    expected_std = {"normal": 0.02, "xavier": 0.02 * (2 / 576) ** 0.5, "kaiming": (2 / 288) ** 0.5}
    if init_type == "orthogonal":
        torch.testing.assert_close(w @ w.T, 0.02**2 * torch.eye(32), atol=1e-6, rtol=0)
    else:
        assert w.std().item() == pytest.approx(expected_std[init_type], rel=0.1)
        assert not torch.allclose(w @ w.T, (w @ w.T).diagonal().mean() * torch.eye(32), atol=1e-6)


def test_resnet_is_plain_module():
    g = ResnetGenerator(ngf=8, n_blocks=2)
    assert type(g).__mro__[1] is torch.nn.Module


@pytest.mark.parametrize(
    "builder,kwargs,setting",
    [
        (build_generator, {"name": "resnet_99blocks"}, "model.generator.name"),
        (build_discriminator, {"name": "huge"}, "model.discriminator.name"),
        (build_generator, {"norm": "layer"}, "generator.norm"),
    ],
)
def test_unknown_names_fail_naming_the_setting(builder, kwargs, setting):
    with pytest.raises(ValueError, match=setting.replace(".", r"\.")):
        builder(**kwargs)


def test_reflection_padding_stays_in_bf16_under_autocast():
    from cyclestyle.networks.layers import ReflectionPad2d

    x = torch.randn(1, 4, 6, 6).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        padded = ReflectionPad2d(2)(x)
        assert torch.nn.ReflectionPad2d(2)(x).dtype == torch.float32  # what autocast does to torch's own
    assert padded.dtype == torch.bfloat16
    torch.testing.assert_close(padded, torch.nn.functional.pad(x.float(), (2, 2, 2, 2), mode="reflect").bfloat16())
