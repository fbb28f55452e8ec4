"""CUT and FastCUT: PatchNCE against hand-computed values, heads built with the model, one backward
reaching every weight, patch locations and flips fixed by (seed, iteration), official file layouts,
one-way translation, and a short run lowering the NCE loss."""
from __future__ import annotations

import math
from unittest import mock

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY_RUN, compose_config, write_images
from cyclestyle.models import CUT, FastCUT
from cyclestyle.networks import ResnetGenerator, build_discriminator
from cyclestyle.networks.cut import (
    draw_patch_ids, encoder_features, feature_channels, gather_patches, infer_cut_discriminator,
    infer_cut_generator, infer_cut_heads, is_cut_generator,
)
from cyclestyle.patchnce import patch_nce

# The smallest CUT settings the tests train: 32 px crops, 8 channels (tests/conftest.py TINY_RUN).
CUT_TINY = ["model.generator.n_blocks=6", "model.generator.ngf=8", "model.discriminator.ndf=8"]
SMALL = {"generator": {"ngf": 8, "n_blocks": 6}, "discriminator": {"ndf": 8}}


def small(cls=CUT, **settings):
    return cls(**SMALL, **settings)


def batch(seed: int = 0, size: int = 32, images: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {d: torch.rand(images, 3, size, size, generator=g) * 2 - 1 for d in "AB"}


def at_step(model, step: int):
    """`model.global_step` reads `step` (as inside a fit at that iteration)."""
    return mock.patch.object(type(model), "global_step", new_callable=mock.PropertyMock, return_value=step)


# --- PatchNCE ---------------------------------------------------------------------------------
E = [[1.0, 0.0], [0.0, 1.0]]  # two unit features, orthogonal to each other


def test_patch_nce_of_identical_features_matches_the_hand_computed_value():
    # One image, 2 patches, q = k = E. Query 0: positive q0.k0 = 1; negatives: itself (masked to -10)
    # and q0.k1 = 0. Loss = -log(e^(1/T) / (e^(1/T) + e^(-10/T) + e^(0/T))), the same for query 1.
    q = k = torch.tensor(E)
    for t in (1.0, 0.5, 0.07):  # at the default 0.07 the loss is ~6e-7: below fp32's resolution near 1
        want = math.log(1 + math.exp(-11 / t) + math.exp(-1 / t))
        assert patch_nce(q, k, images=1, temperature=t).item() == pytest.approx(want, rel=1e-5, abs=1e-6)
    assert patch_nce(q, k, images=1, temperature=1.0).item() == pytest.approx(0.31327, abs=1e-5)  # log(1.367896)


def test_patch_nce_of_swapped_features_matches_the_hand_computed_value():
    # k swaps the patches: the positive q0.k0 = 0 and the negative q0.k1 = 1, so the loss is large:
    # -log(e^0 / (e^0 + e^(-10) + e^1)) = log(1 + e + e^-10) at T = 1.
    q, k = torch.tensor(E), torch.tensor(E).flip(0)
    want = math.log(1 + math.e + math.exp(-10))
    assert patch_nce(q, k, images=1, temperature=1.0).item() == pytest.approx(want, rel=1e-6)
    assert patch_nce(q, k, images=1, temperature=1.0).item() == pytest.approx(1.31327, abs=1e-5)


def test_negatives_come_from_the_patch_s_own_image_unless_asked_for_the_batch():
    # Two images of one patch each, q = k = E. Per image the only other "patch" is the masked self:
    # loss = log(1 + e^-11). With the batch's negatives, the other image's patch (q0.k1 = 0) joins:
    # log(1 + e^-11 + e^-1).
    q = k = torch.tensor(E)
    assert patch_nce(q, k, images=2, temperature=1.0).item() == pytest.approx(math.log(1 + math.exp(-11)), abs=1e-6)
    assert patch_nce(q, k, images=2, temperature=1.0, negatives_from_batch=True).item() == pytest.approx(
        math.log(1 + math.exp(-11) + math.exp(-1)), rel=1e-5)


def test_patch_nce_trains_the_queries_only():
    q = torch.tensor(E, requires_grad=True)
    k = torch.tensor(E).flip(0).requires_grad_(True)
    patch_nce(q, k, images=1).backward()
    assert q.grad is not None and q.grad.abs().sum() > 0 and k.grad is None  # the official detaches k


# --- networks ---------------------------------------------------------------------------------
def test_nce_layers_count_the_official_layer_list():
    # Official CUT generator (anti-aliased): 0 pad, 1 conv, 2 norm, 3 relu, 4 conv, 5 norm, 6 relu, 7 blur,
    # 8 conv, 9 norm, 10 relu, 11 blur, 12.. residual blocks.
    g = ResnetGenerator(ngf=8, n_blocks=9, antialias=True, antialias_up=True)
    assert feature_channels(g, [0, 4, 8, 12, 16]) == [3, 16, 32, 32, 32]
    feats = encoder_features(g, torch.randn(2, 3, 32, 32), [0, 4, 8, 12, 16])
    assert [tuple(f.shape) for f in feats] == [(2, 3, 38, 38), (2, 16, 32, 32), (2, 32, 16, 16), (2, 32, 8, 8),
                                               (2, 32, 8, 8)]
    with pytest.raises(ValueError, match="model.nce_layers"):
        small(nce_layers=[4, 0])


def test_patchnce_heads_exist_and_train_with_the_generator_before_any_forward():
    model = small()
    state = model.state_dict()  # no forward has run
    channels = [3, 16, 32, 32, 32]  # ngf 8: padded input, 2 ngf, 4 ngf x 3
    for i, c in enumerate(channels):
        assert tuple(state[f"f.mlp_{i}.0.weight"].shape) == (256, c)
        assert tuple(state[f"f.mlp_{i}.2.weight"].shape) == (256, 256)
    assert f"f.mlp_{len(channels)}.0.weight" not in state
    in_g = {id(p) for p in model.generator_parameters()}
    assert all(id(p) in in_g for p in model.f.parameters())
    assert not in_g & {id(p) for p in model.discriminator_parameters()}


@pytest.mark.parametrize("cls", [CUT, FastCUT])
def test_one_backward_reaches_every_parameter(cls):
    model = small(cls)
    flips = [bool(torch.rand((), generator=_flip_rng(model, s)) < 0.5) for s in range(20)]
    for step in (flips.index(True), flips.index(False)):  # FastCUT: a flipped and an unflipped iteration
        model.zero_grad(set_to_none=True)
        with at_step(model, step):
            terms, _ = model.losses(batch(step))
        assert {"G_GAN", "NCE", "D_GAN"} <= set(terms) and ("NCE_Y" in terms) == (cls is CUT)
        sum(terms.values()).backward()
        for name, p in model.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, (step, name)


def test_the_nce_term_is_the_official_recipe():
    """NCE = mean over layers of PatchNCE(heads(enc(G(A))), heads(enc(A))) at the same locations,
    drawn with the iteration's generator in order (per pair, per layer); the identity term likewise."""
    model = small()
    data = batch(3)
    with at_step(model, 7):
        terms, images = model.losses(data)
        rng = model.step_generator("patches")
    layers = model.nce_layers
    want = []
    for out, src in ((images["fake_B"], data["A"]), (images["idt_B"], data["B"])):
        q_feats, k_feats = encoder_features(model.g, out, layers), encoder_features(model.g, src, layers)
        ids = draw_patch_ids(k_feats, model.num_patches, rng)
        q = model.f([gather_patches(f, i) for f, i in zip(q_feats, ids)])
        k = model.f([gather_patches(f, i) for f, i in zip(k_feats, ids)])
        want.append(torch.stack([patch_nce(a, b, images=2) for a, b in zip(q, k)]).mean() / 2)  # (NCE + NCE_Y) / 2
    torch.testing.assert_close(terms["NCE"], want[0])
    torch.testing.assert_close(terms["NCE_Y"], want[1])


def test_patch_locations_and_flips_follow_seed_and_iteration_only():
    a, b = small(seed=5), small(seed=5)
    b.load_state_dict(a.state_dict())
    data = batch(1)
    before = torch.get_rng_state()
    with at_step(a, 11):
        first = a.losses(data)[0]["NCE"]
    with at_step(b, 11):
        again = b.losses(data)[0]["NCE"]
    with at_step(b, 12):
        later = b.losses(data)[0]["NCE"]
    assert torch.equal(first, again) and not torch.equal(first, later)
    assert torch.equal(torch.get_rng_state(), before)  # the global generator is untouched: resume stays exact

    def coins(model, steps=range(40)):
        flips = []
        for step in steps:
            with at_step(model, step):
                flips.append(bool(torch.rand((), generator=model.step_generator("flip")) < 0.5))
        return flips

    fast, same, other = small(FastCUT, seed=5), small(FastCUT, seed=5), small(FastCUT, seed=6)
    assert coins(fast) == coins(same) != coins(other)
    assert 10 < sum(coins(fast)) < 30
    ids = [draw_patch_ids([torch.zeros(1, 1, 16, 16)], 8, fast.step_generator("patches"))[0] for _ in range(2)]
    assert torch.equal(*ids) and len(set(ids[0].tolist())) == 8  # distinct locations, a function of the step


def test_flip_equivariance_compares_the_flipped_back_output_with_the_input():
    model = small(FastCUT)
    flipped_step = next(s for s in range(20) if torch.rand((), generator=_flip_rng(model, s)) < 0.5)
    data = batch(2)
    with at_step(model, flipped_step):
        terms, images = model.losses(data)
        rng = model.step_generator("patches")
    # fake_B = G(flip(A)); its features, flipped back, are compared with A's at the same locations.
    torch.testing.assert_close(images["fake_B"], model.g(data["A"].flip(3)))
    layers = model.nce_layers
    q_feats = [f.flip(3) for f in encoder_features(model.g, images["fake_B"], layers)]
    k_feats = encoder_features(model.g, data["A"], layers)
    ids = draw_patch_ids(k_feats, model.num_patches, rng)
    q = model.f([gather_patches(f, i) for f, i in zip(q_feats, ids)])
    k = model.f([gather_patches(f, i) for f, i in zip(k_feats, ids)])
    want = 10.0 * torch.stack([patch_nce(x, y, images=2) for x, y in zip(q, k)]).mean()
    torch.testing.assert_close(terms["NCE"], want)


def _flip_rng(model, step):
    with at_step(model, step):
        return model.step_generator("flip")


# --- official files ---------------------------------------------------------------------------
def official_generator_keys(ngf: int, n_blocks: int, antialias: bool = True, antialias_up: bool = True) -> dict:
    """Key -> shape of the official CUT `ResnetGenerator` (models/networks.py), written out from its
    layer list: antialiased downsampling is conv(stride 1), norm, ReLU, Downsample (buffer `filt`,
    (C, 1, 3, 3)); antialiased upsampling is Upsample (`filt`, (C, 1, 4, 4)), conv, norm, ReLU."""
    keys, i = {"model.1.weight": (ngf, 3, 7, 7), "model.1.bias": (ngf,)}, 4
    for c in (ngf, 2 * ngf):
        keys[f"model.{i}.weight"], keys[f"model.{i}.bias"] = (2 * c, c, 3, 3), (2 * c,)
        i += 3
        if antialias:
            keys[f"model.{i}.filt"] = (2 * c, 1, 3, 3)
            i += 1
    for _ in range(n_blocks):
        for conv in (1, 5):
            keys[f"model.{i}.conv_block.{conv}.weight"] = (4 * ngf, 4 * ngf, 3, 3)
            keys[f"model.{i}.conv_block.{conv}.bias"] = (4 * ngf,)
        i += 1
    for c in (4 * ngf, 2 * ngf):
        if antialias_up:
            keys[f"model.{i}.filt"] = (c, 1, 4, 4)
            keys[f"model.{i + 1}.weight"], keys[f"model.{i + 1}.bias"] = (c // 2, c, 3, 3), (c // 2,)
            i += 4
        else:  # ConvTranspose2d: (in, out, k, k)
            keys[f"model.{i}.weight"], keys[f"model.{i}.bias"] = (c, c // 2, 3, 3), (c // 2,)
            i += 3
    keys[f"model.{i + 1}.weight"], keys[f"model.{i + 1}.bias"] = (3, ngf, 7, 7), (3,)
    return keys


OFFICIAL_D_KEYS = {  # official NLayerDiscriminator(n_layers=3), anti-aliased: conv, LReLU, Downsample, ...
    "model.0.weight": (8, 3, 4, 4), "model.0.bias": (8,), "model.2.filt": (8, 1, 3, 3),
    "model.3.weight": (16, 8, 4, 4), "model.3.bias": (16,), "model.6.filt": (16, 1, 3, 3),
    "model.7.weight": (32, 16, 4, 4), "model.7.bias": (32,), "model.10.filt": (32, 1, 3, 3),
    "model.11.weight": (64, 32, 4, 4), "model.11.bias": (64,), "model.14.weight": (1, 64, 4, 4), "model.14.bias": (1,),
}


def shapes(state: dict) -> dict:
    return {k: tuple(v.shape) for k, v in state.items()}


@pytest.mark.parametrize("antialias,antialias_up", [(True, True), (False, True), (True, False), (False, False)])
def test_official_generator_layouts_load_strictly(antialias, antialias_up, tmp_path):
    ours = ResnetGenerator(ngf=8, n_blocks=9, antialias=antialias, antialias_up=antialias_up)
    assert shapes(ours.state_dict()) == official_generator_keys(8, 9, antialias, antialias_up)
    state = ours.state_dict()  # the fixed binomial filters: [1,2,1]^2 / 16 down, 4 [1,3,3,1]^2 / 64 up
    if antialias:
        assert torch.equal(state["model.7.filt"][0, 0], torch.tensor([[1., 2, 1], [2, 4, 2], [1, 2, 1]]) / 16)
    if antialias_up:
        up = (12 if antialias else 10) + 9
        assert torch.equal(state[f"model.{up}.filt"][0, 0] * 16, torch.outer(*[torch.tensor([1., 3, 3, 1])] * 2))
    path = tmp_path / "latest_net_G.pth"
    torch.save(ours.state_dict(), path)  # a bare state dict, as the official saves it
    state = torch.load(path, weights_only=True)
    assert is_cut_generator(state) == (antialias or antialias_up)
    settings = infer_cut_generator(state)
    assert settings == {"ngf": 8, "n_blocks": 9, "antialias": antialias, "antialias_up": antialias_up,
                        "norm": "instance", "dropout": False, "in_channels": 3, "out_channels": 3}
    rebuilt = ResnetGenerator(**settings)
    rebuilt.load_state_dict(state, strict=True)
    x = torch.rand(1, 3, 36, 44) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x), ours.eval()(x))
        assert ours(x).shape == x.shape


def test_official_discriminator_and_heads_load_strictly_into_the_model(tmp_path):
    d = build_discriminator("basic", ndf=8, antialias=True)
    assert shapes(d.state_dict()) == OFFICIAL_D_KEYS
    assert infer_cut_discriminator(d.state_dict()) == {"name": "basic", "ndf": 8, "n_layers": 3, "norm": "instance",
                                                       "in_channels": 3, "antialias": True}
    plain = build_discriminator("basic", ndf=8)  # without anti-aliasing: the reference CycleGAN's keys
    assert [k for k in plain.state_dict() if k.endswith("weight")] == [f"model.{i}.weight" for i in (0, 2, 5, 8, 11)]
    assert infer_cut_discriminator(plain.state_dict())["antialias"] is False

    model = small(nce_layers=[0, 4, 8, 12, 16])
    files = {}
    for name, module in (("G", model.g), ("D", model.d), ("F", model.f)):  # latest_net_{G,D,F}.pth
        fresh = type(module)(**_official_kwargs(name, module))
        for p in fresh.parameters():
            torch.nn.init.normal_(p)
        files[name] = tmp_path / f"latest_net_{name}.pth"
        torch.save(fresh.state_dict(), files[name])
    heads = torch.load(files["F"], weights_only=True)
    assert sorted(heads) == sorted(f"mlp_{i}.{j}.{w}" for i in range(5) for j in (0, 2) for w in ("weight", "bias"))
    assert infer_cut_heads(heads) == {"channels": [3, 16, 32, 32, 32], "units": 256}
    for name, attribute in (("G", "g"), ("D", "d"), ("F", "f")):
        state = torch.load(files[name], weights_only=True)
        getattr(model, attribute).load_state_dict(state, strict=True)
        assert torch.equal(next(iter(getattr(model, attribute).state_dict().values())), next(iter(state.values())))
    assert infer_cut_generator(torch.load(files["G"], weights_only=True)) == {**model.translators["a2b"].kwargs}


def _official_kwargs(name, module):
    if name == "G":
        return {"ngf": 8, "n_blocks": 6, "antialias": True, "antialias_up": True}
    if name == "D":
        return {"ndf": 8, "n_layers": 3, "antialias": True}
    return {"channels": module.channels, "units": module.units}


def test_an_official_generator_wrapped_in_a_record_translates_and_fine_tunes(tmp_path):
    """What `import-reference` and `translate` need for an official latest_net_G.pth: its settings
    (infer_cut_generator), the record's translator (translator_specs) and the weights under `g.`."""
    from cyclestyle.checkpoints import build_translator, load_weights
    from cyclestyle.record import new_checkpoint
    from cyclestyle.models.cut import OFFICIAL_NETWORKS, translator_specs

    official = ResnetGenerator(ngf=8, n_blocks=6, antialias=True, antialias_up=True)
    torch.save(official.state_dict(), tmp_path / "latest_net_G.pth")
    state = torch.load(tmp_path / "latest_net_G.pth", weights_only=True)
    settings = infer_cut_generator(state)
    prefix = OFFICIAL_NETWORKS["G"]
    checkpoint = new_checkpoint("cut", translator_specs(settings), {f"{prefix}.{k}": v for k, v in state.items()},
                                {"generator": settings})
    net, spec = build_translator(checkpoint, "a2b", source="imported")
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(net(x), official.eval()(x))
    with pytest.raises(ValueError, match="A→B only; --direction b2a is not available"):
        build_translator(checkpoint, "b2a", source="imported")
    model = small()
    assert load_weights(model, checkpoint, source="imported") == ["d", "f"]  # they start fresh
    assert torch.equal(model.g.state_dict()["model.1.weight"], state["model.1.weight"])


def test_inference_needs_only_the_plain_generator():
    model = small().eval()
    spec = model.translators["a2b"]
    assert set(model.translators) == {"a2b"} and spec.module == "g"
    assert spec.builder == "cyclestyle.networks:ResnetGenerator" and spec.size_multiple == 4
    exported = torch.export.export(model.g, (torch.rand(2, 3, 32, 32),))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), model(x))
    with pytest.raises(ValueError, match="A→B only"):
        model(x, "b2a")


# --- runs -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data(module_folders):
    return module_folders


def cut_cfg(a, b, out, *extra):
    return compose_config(["data=folders", f"data.a={a}", f"data.b={b}", *TINY_RUN, "model=cut", *CUT_TINY, *extra],
                          out)


def test_translate_b2a_from_a_cut_checkpoint_says_it_translates_a_to_b_only(data, tmp_path, capsys):
    from cyclestyle.commands.translate import main as translate_main
    from cyclestyle.train import train

    train(cut_cfg(*data, tmp_path / "run", "trainer.max_steps=1"))
    write_images(tmp_path / "in", 1, size=(32, 32))
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    common = [str(ckpt), str(tmp_path / "in"), "--workers", "0", "--no-progress"]
    capsys.readouterr()
    assert translate_main([*common, "--output", str(tmp_path / "b2a"), "--direction", "b2a"]) != 0
    err = capsys.readouterr().err
    assert "A→B only" in err and "--direction b2a is not available" in err
    assert not (tmp_path / "b2a").exists() or not any((tmp_path / "b2a").iterdir())
    assert translate_main([*common, "--output", str(tmp_path / "a2b"), "--direction", "a2b"]) == 0


def _images(folder, size=32) -> torch.Tensor:
    crop = (4, 4, 4 + size, 4 + size)
    arrays = [np.asarray(Image.open(p).convert("RGB").crop(crop)) for p in sorted(folder.iterdir())]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 127.5 - 1  # (N, 3, size, size)


@pytest.mark.slow
def test_a_short_run_lowers_the_nce_loss(data, tmp_path):
    import hydra
    import pytorch_lightning as pl

    from cyclestyle.train import train

    cfg = cut_cfg(*data, tmp_path / "run", "trainer.max_steps=120", "trainer.val_check_interval=1000")
    pl.seed_everything(cfg.seed)
    fresh = hydra.utils.instantiate(cfg.model)
    _, trained = train(cfg)
    held = {"A": _images(data[0]), "B": _images(data[1])}

    def nce(model):
        with torch.no_grad(), at_step(model, 0):  # the same patch locations for both
            terms, _ = model.cpu().eval().losses(held, train=False)
        return float(terms["NCE"] + terms["NCE_Y"])

    before, after = nce(fresh), nce(trained)
    assert after < 0.8 * before, (before, after)
