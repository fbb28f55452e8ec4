"""U-GAT-IT networks: official parameter names and shapes, CAM/heatmap, AdaLIN/ILN numerics, rho clipping."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from cyclestyle.networks import UgatitDiscriminator, UgatitGenerator, UgatitTranslator, clip_rho, infer_ugatit_generator
from cyclestyle.networks.ugatit import GLOBAL_LAYERS, LOCAL_LAYERS, OFFICIAL_NETS, AdaLIN, LayerInstanceNorm


def official_generator_keys(ngf: int, n_blocks: int, img_size: int, light: bool) -> dict[str, tuple]:
    """Key -> shape of znxlwm/UGATIT-pytorch `networks.ResnetGenerator`, in its state_dict order."""
    c = 4 * ngf
    keys = {"gap_fc.weight": (1, c), "gmp_fc.weight": (1, c), "conv1x1.weight": (c, 2 * c, 1, 1), "conv1x1.bias": (c,),
            "gamma.weight": (c, c), "beta.weight": (c, c)}
    for i in range(1, n_blocks + 1):  # pad1, conv1, norm1 (adaILN: rho only), relu1, pad2, conv2, norm2
        for j in (1, 2):
            keys[f"UpBlock1_{i}.conv{j}.weight"] = (c, c, 3, 3)
            keys[f"UpBlock1_{i}.norm{j}.rho"] = (1, c, 1, 1)
    keys.update({"DownBlock.1.weight": (ngf, 3, 7, 7), "DownBlock.5.weight": (2 * ngf, ngf, 3, 3),
                 "DownBlock.9.weight": (c, 2 * ngf, 3, 3)})
    for block in range(12, 12 + n_blocks):
        keys[f"DownBlock.{block}.conv_block.1.weight"] = (c, c, 3, 3)
        keys[f"DownBlock.{block}.conv_block.5.weight"] = (c, c, 3, 3)
    keys["FC.0.weight"] = (c, c if light else img_size // 4 * img_size // 4 * c)
    keys["FC.2.weight"] = (c, c)
    keys["UpBlock2.2.weight"] = (2 * ngf, c, 3, 3)
    keys.update({f"UpBlock2.3.{p}": (1, 2 * ngf, 1, 1) for p in ("rho", "gamma", "beta")})
    keys["UpBlock2.7.weight"] = (ngf, 2 * ngf, 3, 3)
    keys.update({f"UpBlock2.8.{p}": (1, ngf, 1, 1) for p in ("rho", "gamma", "beta")})
    keys["UpBlock2.11.weight"] = (3, ngf, 7, 7)
    return keys


def _sn(prefix: str, shape: tuple, bias: bool) -> dict[str, tuple]:
    """Keys of `torch.nn.utils.spectral_norm(module)`: bias, weight_orig, weight_u (out,), weight_v (rest,)."""
    keys = {f"{prefix}.bias": (shape[0],)} if bias else {}
    keys.update({f"{prefix}.weight_orig": shape, f"{prefix}.weight_u": (shape[0],),
                 f"{prefix}.weight_v": (math.prod(shape[1:]),)})
    return keys


def official_discriminator_keys(ndf: int, n_layers: int) -> dict[str, tuple]:
    """Key -> shape of znxlwm/UGATIT-pytorch `networks.Discriminator`, in its state_dict order."""
    c = ndf * 2 ** (n_layers - 2)
    keys = {**_sn("gap_fc", (1, c), False), **_sn("gmp_fc", (1, c), False),
            "conv1x1.weight": (c, 2 * c, 1, 1), "conv1x1.bias": (c,), **_sn("conv", (1, c, 4, 4), False)}
    keys.update(_sn("model.1", (ndf, 3, 4, 4), True))
    for i in range(1, n_layers - 1):  # n_layers - 3 stride-2 convs, then the stride-1 one
        mult = 2 ** (i - 1)
        keys.update(_sn(f"model.{3 * i + 1}", (ndf * mult * 2, ndf * mult, 4, 4), True))
    return keys


def shapes(net: nn.Module) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


@pytest.mark.parametrize("light", [False, True])
def test_generator_keys_and_shapes_are_the_official_ones(light):
    net = UgatitGenerator(ngf=8, n_blocks=3, img_size=32, light=light)
    expected = official_generator_keys(8, 3, 32, light)
    assert list(shapes(net).items()) == list(expected.items())  # same keys, shapes and order


@pytest.mark.parametrize("n_layers", [LOCAL_LAYERS, GLOBAL_LAYERS])
def test_discriminator_keys_are_the_official_spectral_norm_ones(n_layers):
    net = UgatitDiscriminator(ndf=4, n_layers=n_layers)
    assert list(shapes(net).items()) == list(official_discriminator_keys(4, n_layers).items())
    keys = net.state_dict().keys()
    assert not any(k.endswith(".weight") and k != "conv1x1.weight" for k in keys)  # normed weight is not stored
    assert sum(k.endswith("weight_orig") for k in keys) == n_layers - 1 + 3  # trunk convs + gap_fc, gmp_fc, conv


def test_anchor_shapes_at_the_official_default_sizes():
    with torch.device("meta"):  # the full generator's first Linear alone has 268M weights
        full = shapes(UgatitGenerator())
        light = shapes(UgatitGenerator(light=True))
        d_global, d_local = shapes(UgatitDiscriminator(n_layers=7)), shapes(UgatitDiscriminator(n_layers=5))
    assert full["DownBlock.1.weight"] == (64, 3, 7, 7)
    assert full["FC.0.weight"] == (256, 64 * 64 * 256) and light["FC.0.weight"] == (256, 256)
    assert full["gamma.weight"] == full["beta.weight"] == (256, 256) and full["conv1x1.weight"] == (256, 512, 1, 1)
    assert "UpBlock1_4.norm2.rho" in full and not any(k.startswith("UpBlock1_5") for k in full)
    assert "DownBlock.15.conv_block.5.weight" in full and "DownBlock.16.conv_block.1.weight" not in full
    assert full["UpBlock1_1.norm1.rho"] == (1, 256, 1, 1) and full["UpBlock2.3.rho"] == (1, 128, 1, 1)
    assert full["UpBlock2.11.weight"] == (3, 64, 7, 7)
    assert d_global["model.16.weight_orig"] == (2048, 1024, 4, 4) and d_global["gap_fc.weight_orig"] == (1, 2048)
    assert d_local["model.10.weight_orig"] == (512, 256, 4, 4) and d_local["conv.weight_orig"] == (1, 512, 4, 4)


def test_norm_parameters_start_where_the_official_ones_do_and_weights_keep_pytorch_defaults():
    torch.manual_seed(0)
    net = UgatitGenerator(ngf=8, n_blocks=2, img_size=32)
    state = net.state_dict()
    for i in (1, 2):
        for j in (1, 2):
            assert torch.all(state[f"UpBlock1_{i}.norm{j}.rho"] == 0.9)  # AdaLIN leans to instance norm
    for idx in (3, 8):  # ILN starts as layer norm with an identity affine
        assert torch.all(state[f"UpBlock2.{idx}.rho"] == 0) and torch.all(state[f"UpBlock2.{idx}.gamma"] == 1)
        assert torch.all(state[f"UpBlock2.{idx}.beta"] == 0)
    # PyTorch's default conv/linear init: uniform(+-1/sqrt(fan_in)), std = bound/sqrt(3) (not N(0, 0.02)).
    for name in ("DownBlock.1.weight", "DownBlock.12.conv_block.1.weight", "FC.0.weight", "UpBlock2.2.weight"):
        w = state[name]
        bound = 1 / math.sqrt(w[0].numel())
        assert w.abs().max() <= bound and abs(w.std().item() / (bound / math.sqrt(3)) - 1) < 0.1, name


def test_output_shapes_and_ranges():
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    for light in (False, True):
        image, cam_logit, heatmap = UgatitGenerator(ngf=8, n_blocks=2, img_size=32, light=light)(x)
        assert image.shape == (2, 3, 32, 32) and cam_logit.shape == (2, 2) and heatmap.shape == (2, 1, 8, 8)
        assert image.abs().max() <= 1
    logits, cam_logit, heatmap = UgatitDiscriminator(ndf=4, n_layers=5)(x)  # 32 -> 16 -> 8 -> 4 -> 3 -> 2
    assert logits.shape == (2, 1, 2, 2) and cam_logit.shape == (2, 2) and heatmap.shape == (2, 1, 3, 3)
    big = torch.rand(2, 3, 128, 128) * 2 - 1
    logits, cam_logit, heatmap = UgatitDiscriminator(ndf=2, n_layers=7)(big)  # 128 -> ... -> 4 -> 3 -> 2
    assert logits.shape == (2, 1, 2, 2) and cam_logit.shape == (2, 2) and heatmap.shape == (2, 1, 3, 3)


def test_light_mode_takes_any_multiple_of_4_and_full_mode_only_its_img_size():
    light = UgatitGenerator(ngf=8, n_blocks=1, img_size=32, light=True)
    image, _, heatmap = light(torch.rand(2, 3, 36, 44))
    assert image.shape == (2, 3, 36, 44) and heatmap.shape == (2, 1, 9, 11)
    assert light.fixed_size is None and light.size_multiple == 4
    with pytest.raises(ValueError, match="multiples of 4.*34x44"):
        light(torch.rand(1, 3, 34, 44))
    full = UgatitGenerator(ngf=8, n_blocks=1, img_size=32)
    assert full.fixed_size == 32
    with pytest.raises(ValueError, match=r"img_size=32\) takes only 32x32 inputs, got 36x44"):
        full(torch.rand(1, 3, 36, 44))
    with pytest.raises(ValueError, match="multiple of 4"):
        UgatitGenerator(img_size=30)


def _official_mix(x, rho, gamma, beta, eps=1e-5):
    """The official (fixed) ILN/adaILN formula, written out: unbiased torch.var over (H, W) and (C, H, W)."""
    out_in = (x - x.mean(dim=[2, 3], keepdim=True)) / torch.sqrt(torch.var(x, dim=[2, 3], keepdim=True) + eps)
    out_ln = (x - x.mean(dim=[1, 2, 3], keepdim=True)) / torch.sqrt(torch.var(x, dim=[1, 2, 3], keepdim=True) + eps)
    return (rho * out_in + (1 - rho) * out_ln) * gamma + beta


def test_adalin_and_iln_match_the_official_formula_per_image():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 4, 6) * 3 + 1
    gamma, beta = torch.randn(3, 5), torch.randn(3, 5)
    ada = AdaLIN(5)
    with torch.no_grad():
        ada.rho.uniform_(0, 1)
    expected = _official_mix(x, ada.rho, gamma[:, :, None, None], beta[:, :, None, None])
    assert torch.allclose(ada(x, gamma, beta), expected, atol=1e-5)
    # no statistics across the batch: an image alone gives what it gives inside the batch
    assert torch.allclose(ada(x[1:2], gamma[1:2], beta[1:2]), expected[1:2], atol=1e-5)
    iln = LayerInstanceNorm(5)
    with torch.no_grad():
        iln.rho.uniform_(0, 1), iln.gamma.normal_(), iln.beta.normal_()
    assert torch.allclose(iln(x), _official_mix(x, iln.rho, iln.gamma, iln.beta), atol=1e-5)


def _capture(module: nn.Module, store: dict, key: str):
    return module.register_forward_hook(lambda m, args, out: store.__setitem__(key, out.detach().clone()))


@pytest.mark.parametrize("light", [False, True])
def test_generator_cam_logits_heatmap_and_mlp_input_recomputed_from_its_bottleneck(light):
    torch.manual_seed(0)
    net = UgatitGenerator(ngf=8, n_blocks=1, img_size=32, light=light).eval()
    seen: dict = {}
    _capture(net.DownBlock, seen, "bottleneck"), _capture(net.relu, seen, "fused")
    net.FC.register_forward_hook(lambda m, args, out: seen.__setitem__("mlp_in", args[0].detach().clone()))
    with torch.no_grad():
        _, cam_logit, heatmap = net(torch.rand(2, 3, 32, 32) * 2 - 1)
        x = seen["bottleneck"]  # (2, 32, 8, 8)
        w_avg, w_max = net.gap_fc.weight, net.gmp_fc.weight  # (1, 32)
        expected_logit = torch.cat([x.mean((2, 3)) @ w_avg.T, x.amax((2, 3)) @ w_max.T], 1)
        fused = torch.relu(net.conv1x1(torch.cat([x * w_avg[..., None, None], x * w_max[..., None, None]], 1)))
    assert torch.allclose(cam_logit, expected_logit, atol=1e-5)
    assert torch.allclose(seen["fused"], fused, atol=1e-5)
    assert torch.allclose(heatmap, fused.sum(1, keepdim=True), atol=1e-4)
    # light: the MLP sees the average-pooled features; full: the whole flattened map (channel-major)
    assert torch.allclose(seen["mlp_in"], fused.mean((2, 3)) if light else fused.flatten(1), atol=1e-5)


def test_discriminator_cam_reweights_with_weight_orig_as_the_official_does():
    torch.manual_seed(0)
    net = UgatitDiscriminator(ndf=4, n_layers=5)
    net(torch.rand(2, 3, 32, 32))  # one power iteration in training mode, then freeze u, v
    net.eval()
    seen: dict = {}
    _capture(net.model, seen, "trunk")
    with torch.no_grad():
        _, cam_logit, heatmap = net(torch.rand(2, 3, 32, 32) * 2 - 1)
        x = seen["trunk"]  # (2, 32, 3, 3)
        normed, raw = net.gap_fc.weight, net.gap_fc.weight_orig  # logits use the normed one, re-weighting the raw one
        assert not torch.allclose(normed, raw, atol=1e-3)  # so the check below can tell them apart
        expected_logit = torch.cat([x.mean((2, 3)) @ normed.T, x.amax((2, 3)) @ net.gmp_fc.weight.T], 1)
        w_max = net.gmp_fc.weight_orig
        weighted = torch.cat([x * raw[..., None, None], x * w_max[..., None, None]], 1)
        fused = nn.functional.leaky_relu(net.conv1x1(weighted), 0.2)
    assert torch.allclose(cam_logit, expected_logit, atol=1e-5)
    assert torch.allclose(heatmap, fused.sum(1, keepdim=True), atol=1e-4)


def test_spectral_norm_power_iteration_runs_in_training_only():
    net = UgatitDiscriminator(ndf=4, n_layers=5)
    x = torch.rand(1, 3, 32, 32)
    before = net.model[1].weight_u.clone()
    net(x)
    after_train = net.model[1].weight_u.clone()
    assert not torch.equal(before, after_train)
    net.eval()(x)
    assert torch.equal(after_train, net.model[1].weight_u)


def _tiny_nets() -> dict[str, nn.Module]:
    g = lambda: UgatitGenerator(ngf=8, n_blocks=2, img_size=32)  # noqa: E731
    return {"genA2B": g(), "genB2A": g(), "disGA": UgatitDiscriminator(ndf=2, n_layers=7),
            "disGB": UgatitDiscriminator(ndf=2, n_layers=7), "disLA": UgatitDiscriminator(ndf=4, n_layers=5),
            "disLB": UgatitDiscriminator(ndf=4, n_layers=5)}


def test_official_checkpoint_file_round_trip_strict(tmp_path):
    torch.manual_seed(0)
    nets = _tiny_nets()
    for net in nets.values():
        if isinstance(net, UgatitDiscriminator):
            net(torch.rand(1, 3, 128, 128))  # move u, v away from their initial values
    path = tmp_path / "selfie2anime_params_0001000.pt"
    torch.save({name: net.state_dict() for name, net in nets.items()}, path)  # the official save()
    params = torch.load(path, map_location="cpu", weights_only=True)
    assert tuple(params) == OFFICIAL_NETS
    torch.manual_seed(1)
    fresh = _tiny_nets()
    for name in OFFICIAL_NETS:
        fresh[name].load_state_dict(params[name], strict=True)
    x, big = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 128, 128) * 2 - 1
    with torch.no_grad():
        for name in OFFICIAL_NETS:
            inp = big if name.startswith("disG") else x
            for a, b in zip(nets[name].eval()(inp), fresh[name].eval()(inp)):
                assert torch.equal(a, b), name
    # A state dict rebuilt as a plain dict (no spectral-norm version metadata) still loads strictly.
    UgatitDiscriminator(ndf=4, n_layers=5).load_state_dict(dict(params["disLA"]), strict=True)


def test_every_parameter_gets_a_gradient():
    for net, size in ((UgatitGenerator(ngf=8, n_blocks=2, img_size=32), 32),
                      (UgatitGenerator(ngf=8, n_blocks=2, light=True), 32),
                      (UgatitDiscriminator(ndf=4, n_layers=5), 32)):
        outputs = net(torch.rand(2, 3, size, size))
        sum(o.square().mean() for o in outputs).backward()
        missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
        assert not missing, missing


def test_clip_rho_clamps_every_rho_in_place_inside_containers():
    g = UgatitGenerator(ngf=8, n_blocks=2, light=True)
    rhos = {n: p for n, p in g.named_parameters() if n.endswith("rho")}
    assert len(rhos) == 2 * 2 + 2
    with torch.no_grad():
        for p in rhos.values():
            p.copy_(torch.linspace(-0.5, 1.5, p.shape[1]).view_as(p))
    ptrs = {n: p.data_ptr() for n, p in rhos.items()}
    clip_rho(nn.ModuleDict({"g_a": g}))  # e.g. the LightningModule holding it
    for n, p in rhos.items():
        expected = torch.linspace(-0.5, 1.5, p.shape[1]).clamp(0, 1).view_as(p)
        assert torch.equal(p.detach(), expected) and p.data_ptr() == ptrs[n], n
    assert torch.equal(g.UpBlock2[3].gamma, torch.ones_like(g.UpBlock2[3].gamma))  # only rho is touched


def test_bf16_autocast_runs_and_stays_close_to_fp32():
    torch.manual_seed(0)
    g, d = UgatitGenerator(ngf=8, n_blocks=2, light=True).eval(), UgatitDiscriminator(ndf=4, n_layers=5).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        ref_g, ref_d = g(x), d(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low_g, low_d = g(x), d(x)
    for ref, low in zip((*ref_g, *ref_d), (*low_g, *low_d)):
        assert ref.shape == low.shape and torch.isfinite(low).all()
        assert (ref - low.float()).abs().max() <= 0.05 * ref.abs().max() + 0.02


def test_translator_has_the_generator_keys_and_returns_its_image():
    torch.manual_seed(0)
    g = UgatitGenerator(ngf=8, n_blocks=1, light=True).eval()
    translator = UgatitTranslator(ngf=8, n_blocks=1, light=True).eval()
    assert shapes(translator) == shapes(g)  # the official keys: no wrapper prefix
    translator.load_state_dict(g.state_dict(), strict=True)
    assert translator.size_multiple == 4 and translator.fixed_size is None
    x = torch.rand(2, 3, 32, 40) * 2 - 1
    with torch.no_grad():
        out = translator(x)
        assert isinstance(out, torch.Tensor) and torch.equal(out, g(x)[0])
    full = UgatitTranslator(ngf=8, n_blocks=1, img_size=32)
    assert full.fixed_size == 32
    with pytest.raises(ValueError, match="takes only 32x32 inputs"):
        full(torch.rand(1, 3, 36, 44))


@pytest.mark.parametrize("kwargs", [
    dict(ngf=8, n_blocks=2, img_size=32, light=False),
    dict(ngf=8, n_blocks=3, light=True),
    dict(ngf=4, n_blocks=0, img_size=44, light=False, in_channels=1, out_channels=3),
    dict(ngf=6, n_blocks=1, light=True, in_channels=3, out_channels=1),
])
def test_infer_reads_the_architecture_off_a_state_dict_that_then_loads_strictly(kwargs):
    state = UgatitGenerator(**kwargs).state_dict()
    inferred = infer_ugatit_generator(state)
    expected = {"in_channels": 3, "out_channels": 3, **kwargs}
    if kwargs["light"]:
        expected.pop("img_size", None)  # light: any size; nothing in the weights says which crop trained it
    assert inferred == expected
    UgatitTranslator(**inferred).load_state_dict(state, strict=True)


def test_infer_at_the_official_default_sizes():
    with torch.device("meta"):  # shapes only: full mode's 268M-weight MLP is never allocated
        full, light = UgatitGenerator().state_dict(), UgatitGenerator(light=True, n_blocks=6).state_dict()
    assert infer_ugatit_generator(full) == dict(in_channels=3, out_channels=3, ngf=64, n_blocks=4, light=False,
                                                img_size=256)
    assert infer_ugatit_generator(light) == dict(in_channels=3, out_channels=3, ngf=64, n_blocks=6, light=True)


def test_infer_refuses_what_is_not_a_generator_state_dict():
    from cyclestyle.networks import build_generator

    state = UgatitGenerator(ngf=8, n_blocks=1, img_size=32).state_dict()
    with pytest.raises(ValueError, match=r"whole official checkpoint.*params\['genA2B'\]"):
        infer_ugatit_generator({name: state for name in OFFICIAL_NETS})
    with pytest.raises(ValueError, match="not a U-GAT-IT generator state dict.*DownBlock.1.weight"):
        infer_ugatit_generator(build_generator("resnet_6blocks", ngf=8).state_dict())  # a CycleGAN generator
    with pytest.raises(ValueError, match="not a U-GAT-IT generator"):
        infer_ugatit_generator(UgatitDiscriminator(ndf=4).state_dict())
    with pytest.raises(ValueError, match="not a U-GAT-IT generator"):
        infer_ugatit_generator([state])
    odd = {**state, "FC.0.weight": torch.zeros(32, 3 * 32)}  # 3 x 4ngf inputs: no square bottleneck
    with pytest.raises(ValueError, match="FC.0.weight takes 96 inputs"):
        infer_ugatit_generator(odd)
    wrong = {**state, "FC.0.weight": torch.zeros(16, 16 * 32)}  # rows must be 4ngf
    with pytest.raises(ValueError, match="do not fit ngf=8"):
        infer_ugatit_generator(wrong)


@pytest.mark.filterwarnings("ignore")  # the TorchScript exporter's tracer and deprecation notes
def test_light_translator_exports_to_onnx_with_dynamic_sizes(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    torch.manual_seed(0)
    wrapped = UgatitTranslator(ngf=8, n_blocks=1, light=True).eval()
    path = tmp_path / "g.onnx"
    axes = {0: "batch", 2: "height", 3: "width"}
    torch.onnx.export(wrapped, (torch.rand(1, 3, 32, 32),), str(path), dynamo=False, opset_version=17,
                      input_names=["image"], output_names=["translated"],
                      dynamic_axes={"image": axes, "translated": axes})
    x = torch.rand(2, 3, 36, 44) * 2 - 1  # another batch size and shape than the export's example
    (out,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": x.numpy()})
    with torch.no_grad():
        assert (torch.from_numpy(out) - wrapped(x)).abs().max() < 1e-4
