"""The U-GAT-IT module: its losses against a plainly written iteration, rho clipping, gradients,
sample grids with attention heatmaps, and short fits through the real configs (`model=ugatit`)."""
import copy
import csv

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader

from cyclestyle.checkpoints import build_translator
from cyclestyle.models import UGATIT
from cyclestyle.networks.ugatit import AdaLIN, LayerInstanceNorm, UgatitTranslator, clip_rho
from cyclestyle.pixels import heatmap_image
from cyclestyle.train import train

from conftest import TINY, compose_config

# TINY sets CycleGAN's model.generator.name, a key U-GAT-IT does not have; the rest applies as is.
# 32 px crops: the official global (7 layers) and local (5) discriminators need 96 and 24 px.
UGATIT_TINY = [o for o in TINY if not o.startswith("model.generator.name=")] + [
    "model=ugatit", "model.generator.ngf=8", "model.generator.n_blocks=1", "model.discriminator.ndf=4",
    "model.discriminator.global_layers=5", "model.discriminator.local_layers=4"]


@pytest.fixture
def ugatit_cfg(folders, tmp_path):
    """Factory: a tiny CPU U-GAT-IT run on `folders` through the real configs."""
    a, b = folders
    return lambda *extra: compose_config(["data=folders", f"data.a={a}", f"data.b={b}", *UGATIT_TINY, *extra],
                                         tmp_path / "out")


def tiny_model(light: bool = False, **kwargs) -> UGATIT:
    torch.manual_seed(0)
    return UGATIT(generator=dict(ngf=8, n_blocks=1, img_size=32, light=light),
                  discriminator=dict(ndf=4, global_layers=5, local_layers=4), **kwargs)


def fixed_batches(n: int, size: int = 32) -> list[dict]:
    g = torch.Generator().manual_seed(1)
    image = lambda: torch.rand(1, 3, size, size, generator=g) * 2 - 1  # noqa: E731
    return [{"A": image(), "B": image()} for _ in range(n)]


def quiet_trainer(**kwargs) -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, **kwargs)


def sgd(params) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=1e-3)  # linear in the gradient: rounding stays within tolerance


mse = lambda x, t: F.mse_loss(x, torch.full_like(x, t))  # noqa: E731
bce = lambda x, t: F.binary_cross_entropy_with_logits(x, torch.full_like(x, t))  # noqa: E731
WEIGHTS = dict(lambda_adv=0.5, lambda_cycle=3.0, lambda_identity=7.0, lambda_cam=11.0)  # all different


def reference_iterations(model: UGATIT, batches: list[dict]) -> UGATIT:
    """The paper's losses written out (official UGATIT.py), in the update order the GAN base
    promises: G terms through the discriminators as they are, G step, rho clipped, then D terms
    on the same (detached) fakes, D step. Each discriminator is called once for G's terms and once
    on [real, fake] for its own, as the module does (spectral norm's power iteration runs per call)."""
    nets = {name: copy.deepcopy(getattr(model, name)) for name in ("g_a", "g_b", "d_ga", "d_la", "d_gb", "d_lb")}
    g_a, g_b = nets["g_a"], nets["g_b"]
    discriminators = [nets[n] for n in ("d_ga", "d_la", "d_gb", "d_lb")]
    opt_g = sgd([*g_a.parameters(), *g_b.parameters()])
    opt_d = sgd([p for d in discriminators for p in d.parameters()])
    w = WEIGHTS
    for batch in batches:
        a, b = batch["A"], batch["B"]
        fake_b, cam_ab, _ = g_a(a)
        fake_a, cam_ba, _ = g_b(b)
        idt_a, cam_bb, _ = g_a(b)  # g_a leaves B alone
        idt_b, cam_aa, _ = g_b(a)
        rec_a, rec_b = g_b(fake_b)[0], g_a(fake_a)[0]
        for d in discriminators:
            d.requires_grad_(False)
        adv = 0
        for d, fake in ((nets["d_gb"], fake_b), (nets["d_lb"], fake_b), (nets["d_ga"], fake_a), (nets["d_la"], fake_a)):
            logit, cam, _ = d(fake)
            adv = adv + mse(logit, 1) + mse(cam, 1)
        loss_g = (w["lambda_adv"] * adv
                  + w["lambda_cam"] * (bce(cam_ab, 1) + bce(cam_bb, 0) + bce(cam_ba, 1) + bce(cam_aa, 0))
                  + w["lambda_cycle"] * (F.l1_loss(rec_a, a) + F.l1_loss(rec_b, b))
                  + w["lambda_identity"] * (F.l1_loss(idt_a, b) + F.l1_loss(idt_b, a)))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        clip_rho(g_a), clip_rho(g_b)
        for d in discriminators:
            d.requires_grad_(True)
        loss_d = 0
        for d, real, fake in ((nets["d_ga"], a, fake_a), (nets["d_la"], a, fake_a),
                              (nets["d_gb"], b, fake_b), (nets["d_lb"], b, fake_b)):
            logit, cam, _ = d(torch.cat([real, fake.detach()]))
            loss_d = loss_d + mse(logit[:1], 1) + mse(logit[1:], 0) + mse(cam[:1], 1) + mse(cam[1:], 0)
        opt_d.zero_grad()
        (w["lambda_adv"] * loss_d).backward()
        opt_d.step()
    result = copy.deepcopy(model)
    for name, net in nets.items():
        setattr(result, name, net)
    return result


@pytest.mark.parametrize("light", [False, True])
def test_iterations_equal_the_papers_losses_written_out(light):
    batches = fixed_batches(3)
    model = tiny_model(light, scheduler=dict(name="constant"), optimizer=sgd, **WEIGHTS)
    expected = reference_iterations(model, batches)
    trainer = quiet_trainer(max_steps=3)
    trainer.fit(model, DataLoader(batches, batch_size=None))
    assert trainer.global_step == 3
    for (name, got), (_, want) in zip(model.named_parameters(), expected.named_parameters()):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5, msg=name)
    for (name, got), (_, want) in zip(model.named_buffers(), expected.named_buffers()):  # spectral norm's u, v
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5, msg=name)


def test_loss_terms_by_name_and_one_recomputed_with_its_weight():
    model = tiny_model(**WEIGHTS).eval()  # eval: spectral norm's u, v stay put, so calls repeat exactly
    batch = fixed_batches(1)[0]
    terms, _ = model.losses(batch)
    assert sorted(terms) == sorted(
        [f"G_{x}_{t}" for x in "AB" for t in ("adv", "adv_cam", "cam")] + ["cycle_A", "cycle_B", "idt_A", "idt_B"]
        + ["D_GA", "D_LA", "D_GB", "D_LB"])
    with torch.no_grad():
        a, b = batch["A"], batch["B"]
        fake_a = model.g_b(b)[0]
        _, cam_ab, _ = model.g_a(a)
        _, cam_bb, _ = model.g_a(b)
        logit, cam, _ = model.d_la(a)
        fake_logit, fake_cam, _ = model.d_la(fake_a)
    torch.testing.assert_close(terms["G_A_cam"], 11.0 * (bce(cam_ab, 1) + bce(cam_bb, 0)))
    torch.testing.assert_close(terms["D_LA"], 0.5 * (mse(logit, 1) + mse(fake_logit, 0) + mse(cam, 1) + mse(fake_cam, 0)))
    assert model.losses(batch, train=False)[0].keys() == {k for k in terms if not k.startswith("D_")}


def test_rho_stays_in_0_1_after_steps_with_a_large_lr(monkeypatch):
    def rhos(model):
        return torch.cat([m.rho.flatten() for g in (model.g_a, model.g_b) for m in g.modules()
                          if isinstance(m, (AdaLIN, LayerInstanceNorm))])

    big_steps = lambda params: torch.optim.Adam(params, lr=0.4)  # noqa: E731  (~0.4 per step, whatever the gradient)
    model = tiny_model(scheduler=dict(name="constant"), optimizer=big_steps)
    quiet_trainer(max_steps=3).fit(model, DataLoader(fixed_batches(3), batch_size=None))
    values = rhos(model)
    assert values.min() >= 0 and values.max() <= 1
    assert (values == 0).any() and (values == 1).any()  # pushed to both bounds: the clip did work
    monkeypatch.setattr(UGATIT, "after_generator_step", lambda self: None)  # the same without clipping
    unclipped = tiny_model(scheduler=dict(name="constant"), optimizer=big_steps)
    quiet_trainer(max_steps=3).fit(unclipped, DataLoader(fixed_batches(3), batch_size=None))
    assert rhos(unclipped).min() < 0 and rhos(unclipped).max() > 1


@pytest.mark.parametrize("light", [False, True])
def test_the_one_backward_reaches_every_parameter_and_each_side_only_its_own(light):
    """Every weight gets a gradient (DDP needs no find_unused_parameters); G's terms never reach a
    discriminator and D's terms never a generator."""
    model = tiny_model(light)
    terms, _ = model.losses(fixed_batches(1)[0])
    generators = {id(p) for p in model.generator_parameters()}
    assert len(generators) + len(model.discriminator_parameters()) == len(list(model.parameters()))
    sum(v for k, v in terms.items() if not k.startswith("D_")).backward(retain_graph=True)
    assert all((p.grad is None) == (id(p) not in generators) for p in model.parameters())
    model.zero_grad(set_to_none=True)
    sum(v for k, v in terms.items() if k.startswith("D_")).backward(retain_graph=True)
    assert all((p.grad is None) == (id(p) in generators) for p in model.parameters())
    model.zero_grad(set_to_none=True)
    sum(terms.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


@pytest.mark.filterwarnings("ignore:You are trying to")  # validation_step outside a Trainer
def test_sample_grids_have_heatmap_columns_of_image_shape():
    model = tiny_model().eval()
    batch = {k: torch.cat([v, v.flip(-1)]) for k, v in fixed_batches(1)[0].items()}  # (2, 3, 32, 32)
    with torch.no_grad():
        images = model.validation_step(batch, 0)
        fake_b = model.g_a(batch["A"])[0]
        expected = {"heat_G_fake_B": model.g_a(batch["A"])[2], "heat_DG_fake_B": model.d_gb(fake_b)[2],
                    "heat_DL_fake_B": model.d_lb(fake_b)[2], "heat_DL_fake_A": model.d_la(model.g_b(batch["B"])[0])[2]}
    grids = model.sample_grids()
    assert [g.name for g in grids] == ["A2B", "B2A"]
    for grid in grids:
        heatmaps = [c for c in grid.columns if c.startswith("heat_")]
        assert len(heatmaps) == 3 and len(grid.columns) == 7  # generator, global and local discriminator
        for column in grid.columns:
            assert images[column].shape == (2, 3, 32, 32), column
            assert images[column].min() >= -1 and images[column].max() <= 1
    for column, heatmap in expected.items():  # each map in its column, gray, scaled per image
        torch.testing.assert_close(images[column], heatmap_image(heatmap, (32, 32)))
        assert torch.equal(images[column][:, 0], images[column][:, 2])
    assert {key for pair in model.metric_pairs().values() for key in pair} <= set(images)


def test_translates_by_direction_image_only_and_refuses_unknown_ones():
    model = tiny_model().eval()
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model(x, "a2b"), model.g_a(x)[0]) and torch.equal(model(x, "b2a"), model.g_b(x)[0])
    with pytest.raises(ValueError, match="U-GAT-IT model translates A→B and B→A only"):
        model(x, "a2a")


def test_settings_errors_name_the_setting():
    with pytest.raises(ValueError, match=r"model\.generator: unknown setting\(s\) name"):
        UGATIT(generator=dict(name="resnet_6blocks", ngf=8, img_size=32))
    with pytest.raises(ValueError, match=r"global_layers=7 needs crops of at least 96 px.*is 64"):
        UGATIT(generator=dict(ngf=8, n_blocks=1, img_size=64), discriminator=dict(ndf=4))
    with pytest.raises(ValueError, match=r"model\.lambda_cam must be >= 0"):
        tiny_model(lambda_cam=-1.0)


def test_image_pool_only_when_asked():
    assert tiny_model().pools["A"].size == 0  # the official keeps none
    model = tiny_model(pool_size=3)
    assert model.pools["A"].size == model.pools["B"].size == 3
    model.losses(fixed_batches(1)[0])
    assert len(model.pools["A"].images) == len(model.pools["B"].images) == 1


@pytest.mark.parametrize("light", [False, True])
def test_fit_through_the_config_then_the_record_alone_rebuilds_both_translators(ugatit_cfg, tmp_path, light):
    cfg = ugatit_cfg("trainer.max_steps=2", "trainer.val_check_interval=2", f"model.generator.light={light}")
    trainer, model = train(cfg)
    assert trainer.global_step == 2
    out = tmp_path / "out"
    width, _ = Image.open(out / "samples" / "iter_0000002.png").size
    assert width == 7 * (32 + 2) + 2  # seven columns: images and attention heatmaps
    card = (out / "model_card.md").read_text()
    assert "# cyclestyle model: U-GAT-IT" in card
    assert ("U-GAT-IT light (any input size)" if light else "U-GAT-IT full (32 px inputs only)") in card
    checkpoint = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["cyclestyle"]["family"] == "ugatit"
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    model = model.cpu().eval()
    for direction in ("a2b", "b2a"):
        net, spec = build_translator(checkpoint, direction, source="last.ckpt")
        assert isinstance(net, UgatitTranslator) and spec.size_multiple == 4
        assert spec.fixed_size == (None if light else 32) == net.fixed_size  # full mode: tied to data.crop_size
        assert ("img_size" in spec.kwargs) != light  # light networks of any crop size are the same network
        with torch.no_grad():
            torch.testing.assert_close(net(x), model(x, direction))


@pytest.mark.slow
def test_cycle_loss_falls_when_overfitting_a_tiny_set(ugatit_cfg):
    # 400 iterations, not CycleGAN's 200: here cycle loss ends at 0.63x its start after 200, 0.53x after 400.
    cfg = ugatit_cfg("logger=csv", "trainer.max_steps=400", "trainer.log_every_n_steps=1", "data.flip=false",
                     "model.optimizer.lr=0.001", "model.scheduler.name=constant", "model.generator.light=true")
    train(cfg)
    with open(f"{cfg.paths.output_dir}/csv/metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("loss/cycle_A")]
    cycle = [float(r["loss/cycle_A"]) + float(r["loss/cycle_B"]) for r in rows]
    first, last = sum(cycle[:10]) / 10, sum(cycle[-10:]) / 10
    assert last < 0.6 * first, (first, last)
