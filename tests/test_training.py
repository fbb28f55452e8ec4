"""The CycleGAN module and short CPU fits through the real configs."""
import contextlib
import copy
import csv
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import open_dict
from torch.utils.data import DataLoader

from cyclestyle.image_pool import ImagePool
from cyclestyle.models import CycleGAN
from cyclestyle.train import train


def tiny_model(**kwargs) -> CycleGAN:
    torch.manual_seed(0)
    return CycleGAN(generator=dict(name="resnet_6blocks", ngf=8), discriminator=dict(ndf=8), **kwargs)


def fixed_batches(n: int, size: int = 32) -> list[dict]:
    g = torch.Generator().manual_seed(1)
    return [{"A": torch.rand(1, 3, size, size, generator=g) * 2 - 1, "B": torch.rand(1, 3, size, size, generator=g) * 2 - 1}
            for _ in range(n)]


def quiet_trainer(**kwargs) -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, **kwargs)


def sgd(params) -> torch.optim.Optimizer:
    """Plain SGD: its update is linear in the gradient, so kernels that round differently (batched
    calls, fused optimizers) stay within float tolerance; Adam's first steps move every weight by
    about +-lr whatever the gradient's size, which turns rounding noise into 1e-4 differences."""
    return torch.optim.SGD(params, lr=1e-3)


def reference_iterations(model: CycleGAN, batches: list[dict]) -> CycleGAN:
    """The reference implementation's update order, written plainly: G forward, G backward with
    D frozen, G step, then D backward on pooled detached fakes, D step."""
    g_a, g_b, d_a, d_b = (copy.deepcopy(m) for m in (model.g_a, model.g_b, model.d_a, model.d_b))
    opt_g, opt_d = sgd([*g_a.parameters(), *g_b.parameters()]), sgd([*d_a.parameters(), *d_b.parameters()])
    pool_a, pool_b = ImagePool(50, seed=0), ImagePool(50, seed=1)
    mse = lambda x, t: F.mse_loss(x, torch.full_like(x, t))  # noqa: E731
    for batch in batches:
        a, b = batch["A"], batch["B"]
        fake_b, fake_a = g_a(a), g_b(b)
        rec_a, rec_b = g_b(fake_b), g_a(fake_a)
        for p in [*d_a.parameters(), *d_b.parameters()]:
            p.requires_grad_(False)
        loss_g = (mse(d_a(fake_b), 1) + mse(d_b(fake_a), 1) + 10 * F.l1_loss(rec_a, a) + 10 * F.l1_loss(rec_b, b)
                  + 5 * F.l1_loss(g_a(b), b) + 5 * F.l1_loss(g_b(a), a))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        for p in [*d_a.parameters(), *d_b.parameters()]:
            p.requires_grad_(True)
        opt_d.zero_grad()
        pooled_b, pooled_a = pool_b.query(fake_b.detach()), pool_a.query(fake_a.detach())
        loss_d = 0.5 * (mse(d_a(b), 1) + mse(d_a(pooled_b), 0)) + 0.5 * (mse(d_b(a), 1) + mse(d_b(pooled_a), 0))
        loss_d.backward()
        opt_d.step()
    result = copy.deepcopy(model)
    result.g_a, result.g_b, result.d_a, result.d_b = g_a, g_b, d_a, d_b
    return result


def test_iterations_equal_the_reference_update_order():
    batches = fixed_batches(3)
    model = tiny_model(scheduler=dict(name="constant"), optimizer=sgd)
    expected = reference_iterations(model, batches)
    trainer = quiet_trainer(max_steps=3)
    trainer.fit(model, DataLoader(batches, batch_size=None))
    assert trainer.global_step == 3
    for (name, got), want in zip(model.named_parameters(), expected.parameters()):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_generators_and_discriminators_run_once_per_pair_unless_batch_norm_mixes_samples(norm):
    torch.manual_seed(0)
    model = CycleGAN(generator=dict(name="resnet_6blocks", ngf=8, norm=norm), discriminator=dict(ndf=8, norm=norm))
    model.train()
    calls = {name: 0 for name in ("g_a", "d_a")}
    for name in calls:
        getattr(model, name).register_forward_hook(lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
    a, b = fixed_batches(1)[0].values()
    terms, images = model.losses({"A": a, "B": b})
    # batched: G_A on [A, B] and on fake A; D_A on fake B (frozen) and on [real B, pooled]
    assert calls == ({"g_a": 2, "d_a": 2} if norm == "instance" else {"g_a": 3, "d_a": 3})
    if norm == "instance":  # the one batched call computes what two calls would
        torch.testing.assert_close(model.twice("g_a", a, b), (model.g_a(a), model.g_a(b)), rtol=1e-4, atol=1e-5)


def test_identity_weight_zero_skips_identity_forwards():
    calls = {"g_a": 0}  # images through G_A (the translation and identity calls are batched)
    for weight, per_iteration in ((0.5, 3), (0.0, 2)):
        model = tiny_model(lambda_identity=weight)
        calls["g_a"] = 0
        model.g_a.register_forward_hook(lambda _, args, out: calls.__setitem__("g_a", calls["g_a"] + len(out)))
        terms, _ = model.losses(fixed_batches(1)[0])
        assert calls["g_a"] == per_iteration
        assert ("idt_A" in terms) == (weight > 0)


def test_negative_lambda_names_the_setting():
    with pytest.raises(ValueError, match=r"model\.lambda_a"):
        tiny_model(lambda_a=-1.0)


def test_iteration_schedule_is_stepped_by_hand():
    model = tiny_model(scheduler=dict(name="linear", unit="iteration", constant=2, decay=4))
    trainer = quiet_trainer(max_steps=4)
    trainer.fit(model, DataLoader(fixed_batches(4), batch_size=None))
    opt_g, opt_d = model.optimizers()
    assert opt_g.param_groups[0]["lr"] == pytest.approx(2e-4 * 0.5)
    assert opt_d.param_groups[0]["lr"] == pytest.approx(2e-4 * 0.5)


def test_epoch_schedule_steps_at_epoch_ends():
    model = tiny_model(scheduler=dict(name="linear", unit="epoch", constant=1, decay=2))
    trainer = quiet_trainer(max_epochs=3)
    trainer.fit(model, DataLoader(fixed_batches(3), batch_size=None))
    assert trainer.global_step == 9
    assert model.optimizers()[0].param_groups[0]["lr"] == pytest.approx(2e-4 * 0.5)  # in epoch 2: 1 - 1/2


def read_metrics(path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_short_fit_counts_iterations_logs_and_checkpoints(tiny_cfg, tmp_path, monkeypatch):
    trained = []  # the batches the model trained on
    original = CycleGAN.training_step

    def training_step(self, batch, batch_idx):
        trained.append(batch_idx)
        return original(self, batch, batch_idx)

    monkeypatch.setattr(CycleGAN, "training_step", training_step)
    cfg = tiny_cfg("logger=csv", "trainer.max_steps=7", "trainer.val_check_interval=3",
                   "callbacks.last_checkpoint.every_n_iterations=3", "trainer.log_every_n_steps=1")
    trainer, model = train(cfg)
    out = tmp_path / "out"
    assert trainer.global_step == 7
    assert len(trained) == 7  # max_steps=7 trained 7 batches: a step is a batch, not one of its 2 optimizer steps
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 7
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["iter_0000003.png", "iter_0000006.png"]
    rows = read_metrics(out / "csv" / "metrics.csv")
    columns = set(rows[0])
    for name in ("loss/G_A_adv", "loss/G_B_adv", "loss/cycle_A", "loss/cycle_B", "loss/idt_A", "loss/idt_B",
                 "loss/D_A", "loss/D_B", "lr/G", "lr/D", "val/cycle_A"):
        assert name in columns, name
    train_steps = sorted({int(r["step"]) for r in rows if r.get("loss/G_A_adv")})
    assert train_steps == list(range(7))  # the x-axis is the iteration, once per batch


def test_checkpoint_alone_rebuilds_the_generators(tiny_cfg, tmp_path):
    trainer, model = train(tiny_cfg("trainer.max_steps=2"))
    path = tmp_path / "out" / "checkpoints" / "last.ckpt"
    restored = CycleGAN.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    assert restored.hparams.generator["ngf"] == 8
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(restored(x, "a2b"), model.cpu()(x, "a2b"))
        torch.testing.assert_close(restored(x, "b2a"), model(x, "b2a"))


def test_bf16_mixed_precision_trains_on_cpu(tiny_cfg):
    trainer, model = train(tiny_cfg("trainer.max_steps=3", "trainer.precision=bf16-mixed"))
    assert trainer.global_step == 3
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert trainer.callback_metrics["loss/G"].isfinite()


@pytest.mark.slow
def test_cycle_loss_falls_when_overfitting_a_tiny_set(tiny_cfg):
    cfg = tiny_cfg("logger=csv", "trainer.max_steps=200", "trainer.log_every_n_steps=1", "data.flip=false",
                   "model.optimizer.lr=0.001", "model.scheduler.name=constant")
    train(cfg)
    rows = [r for r in read_metrics(f"{cfg.paths.output_dir}/csv/metrics.csv") if r.get("loss/cycle_A")]
    cycle = [float(r["loss/cycle_A"]) + float(r["loss/cycle_B"]) for r in rows]
    first, last = sum(cycle[:10]) / 10, sum(cycle[-10:]) / 10
    assert last < 0.6 * first, (first, last)


def test_fp16_grad_scaler_updates_once_per_iteration_for_both_optimizers():
    """16-mixed (GPU in practice; fp16 autocast and GradScaler also run on CPU): both optimizers
    step through the one scaler and it updates once per iteration."""
    from pytorch_lightning.plugins.precision import MixedPrecision

    model = tiny_model()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=1)  # doubles at every update
    trainer = quiet_trainer(max_steps=3, plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)])
    trainer.fit(model, DataLoader(fixed_batches(3), batch_size=None))
    assert trainer.global_step == 3
    assert scaler.get_scale() == 2.0**13  # three updates, not six
    for prefix in ("g_a", "g_b", "d_a", "d_b"):
        changed = [not torch.equal(p, before[n]) for n, p in model.named_parameters() if n.startswith(prefix)]
        assert any(changed), prefix
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("native", [True, False])
def test_default_precision_is_bf16_where_native_else_32_and_says_so(tiny_cfg, caplog, monkeypatch, native):
    from cyclestyle import devices

    monkeypatch.setattr(devices, "native_bf16", lambda device: native)
    cfg = tiny_cfg("trainer.max_steps=1")
    assert cfg.trainer.precision == "auto"  # the shipped default
    with caplog.at_level("INFO"):
        trainer, _ = train(cfg)
    assert trainer.precision == ("bf16-mixed" if native else "32-true")
    assert f"Precision: {'bf16-mixed' if native else '32'} (trainer.precision=auto on cpu" in caplog.text
    assert "override with trainer.precision=32|bf16-mixed|16-mixed" in caplog.text


@pytest.mark.parametrize("native", [True, False])
def test_explicit_bf16_where_it_is_emulated_warns_with_the_measured_cost(tiny_cfg, monkeypatch, native):
    from cyclestyle import devices

    monkeypatch.setattr(devices, "native_bf16", lambda device: native)
    monkeypatch.setattr(devices, "bf16_slowdown", lambda device: 97.0)  # measured by the test below
    with pytest.warns(UserWarning, match=r"trainer.precision=bf16-mixed on this CPU .* 97x slower than fp32") \
            if not native else contextlib.nullcontext():
        with warnings.catch_warnings():
            if native:
                warnings.filterwarnings("error", message=".*slower than fp32")
            train(tiny_cfg("trainer.max_steps=1", "trainer.precision=bf16-mixed"))


def test_the_bf16_slowdown_is_measured_on_this_device():
    from cyclestyle.devices import bf16_slowdown

    assert bf16_slowdown(torch.device("cpu")) > 0


def test_native_bf16_needs_avx512_bf16_or_amx_on_cpu(monkeypatch):
    from cyclestyle.devices import native_bf16

    for bf16, amx in ((False, False), (True, False), (False, True)):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda bf16=bf16: bf16)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda amx=amx: amx)
        assert native_bf16(torch.device("cpu")) == (bf16 or amx)  # plain AVX-512 only emulates bf16


def test_native_bf16_respects_onednns_isa_cap(monkeypatch):
    """ONEDNN_MAX_CPU_ISA below AVX512_CORE_BF16 makes oneDNN emulate bf16 whatever the CPU has."""
    from cyclestyle.devices import native_bf16

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    for cap, native in (("AVX2", False), ("avx512_core", False), ("AVX512_CORE_BF16", True), ("ALL", True), ("", True)):
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
        assert native_bf16(torch.device("cpu")) == native, cap


@pytest.mark.slow
def test_an_avx2_only_cpu_reproduced_here_picks_fp32_and_measures_the_bf16_trap():
    """With oneDNN and ATen limited to AVX2 (an AVX2-only CPU, as the benchmarks reproduce it), auto
    picks fp32 and the warning's measured bf16 cost is real: emulated bf16 is many times slower."""
    script = ("import torch; from cyclestyle.devices import *; cpu = torch.device('cpu'); "
              "print(native_bf16(cpu), resolve_precision('auto', cpu), bf16_slowdown(cpu) > 3)")
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "32", "True"]




def test_losses_are_logged_as_tensors_and_numbers_only_every_log_interval(monkeypatch):
    """Reading a device tensor (.item()) or making one from a number waits for the device; the
    progress bar and learning rates therefore only change in iterations whose metrics are written."""
    logged: list[tuple[int, str, object]] = []
    original = pl.LightningModule.log

    def record(self, name, value, *args, **kwargs):
        logged.append((self.trainer.global_step, name, value))
        return original(self, name, value, *args, **kwargs)

    monkeypatch.setattr(pl.LightningModule, "log", record)
    model = tiny_model(scheduler=dict(name="constant"))
    trainer = quiet_trainer(log_every_n_steps=3, max_steps=6)
    trainer.fit(model, DataLoader(fixed_batches(6), batch_size=None))
    per_step = {step for step, name, _ in logged if name == "loss/G"}
    numbers = {step for step, name, _ in logged if name in ("G", "D", "lr/G", "lr/D")}
    assert per_step == {1, 2, 3, 4, 5, 6}  # global_step after the iteration's optimizer step
    assert numbers == {3, 6}
    assert all(isinstance(v, torch.Tensor) for _, name, v in logged if name.startswith("loss/"))
    assert all(v.device.type == "cpu" for _, name, v in logged if name in ("G", "D"))


@pytest.mark.slow
def test_compile_flag_compiles_the_networks_in_place_and_trains(tiny_cfg):
    trainer, model = train(tiny_cfg("trainer.max_steps=2", "model.compile=true"))
    assert trainer.global_step == 2
    for net in (model.g_a, model.g_b, model.d_a, model.d_b):
        assert net._compiled_call_impl is not None
    assert not any("_orig_mod" in key for key in model.state_dict())  # checkpoints keep their keys


def test_gpu_settings_tf32_on_ampere_and_cudnn_benchmark(tiny_cfg, monkeypatch):
    from cyclestyle.train import _enable_tf32

    assert tiny_cfg().trainer.benchmark is True  # cuDNN autotuning for the fixed crop size
    previous = torch.get_float32_matmul_precision()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    try:
        for capability, expected in (((7, 5), "highest"), ((8, 0), "high")):
            torch.set_float32_matmul_precision("highest")
            monkeypatch.setattr(torch.cuda, "get_device_capability", lambda capability=capability: capability)
            _enable_tf32()
            assert torch.get_float32_matmul_precision() == expected
    finally:
        torch.set_float32_matmul_precision(previous)


@pytest.mark.slow
def test_bf16_mixed_learns_like_fp32(tiny_cfg):
    """Same seed, data and iterations: bf16-mixed ends with cycle and identity losses close to fp32's
    (scripts/compare_precision.py makes the full comparison on the demo task, with seeds for noise)."""
    terms = ("cycle_A", "cycle_B", "idt_A", "idt_B")
    first, last = {}, {}
    for precision in ("32", "bf16-mixed"):
        cfg = tiny_cfg("trainer.max_steps=120", f"trainer.precision={precision}", "logger=csv",
                       "trainer.log_every_n_steps=1")
        with open_dict(cfg):
            cfg.paths.output_dir = f"{cfg.paths.output_dir}-{precision}"  # one run per folder
        trainer, _ = train(cfg)
        with open(Path(trainer.loggers[0].log_dir) / "metrics.csv") as f:
            rows = [r for r in csv.DictReader(f) if r.get("loss/cycle_A")]
        mean = lambda rows, t: sum(float(r[f"loss/{t}"]) for r in rows) / len(rows)  # noqa: E731
        first[precision] = {t: mean(rows[:10], t) for t in terms}
        last[precision] = {t: mean(rows[-40:], t) for t in terms}
    for term in terms:
        assert last["32"][term] < 0.9 * first["32"][term], term  # fp32 learned (by 14-33 % here) ...
        assert last["bf16-mixed"][term] == pytest.approx(last["32"][term], rel=0.15), term  # ... and bf16 as far
