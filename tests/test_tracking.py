"""Dashboards: wandb (offline), TensorBoard and CSV contents, sample grids, throughput, FID/KID
(with a tiny local feature network), best.ckpt, the model card, sweeps sharing a wandb group."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclestyle import metrics as metrics_module
from cyclestyle.loggers import wandb_logger
from cyclestyle.metrics import TranslationMetrics
from cyclestyle.train import train
from tiny_features import TinyFeatures
from wandb_records import history, records, run_info, wait_until_complete

FID_ON = ["model.metrics.num_images=4", "model.metrics.kid_subset_size=2",
          "+model.feature_extractor._target_=tiny_features.TinyFeatures"]
SHORT = ["trainer.max_steps=6", "trainer.val_check_interval=3", "trainer.log_every_n_steps=1",
         "callbacks.performance.every_n_iterations=2"]


def test_many_loggers_hold_losses_samples_metrics_and_metadata(tiny_cfg, tmp_path):
    trainer, _ = train(tiny_cfg("logger=many", *SHORT, *FID_ON))
    out = tmp_path / "out"

    # wandb, read back from the offline run's .wandb file
    (run_file,) = (out / "wandb").glob("offline-run-*/run-*.wandb")
    rows = history(wait_until_complete(run_file))
    losses = [r for r in rows if "loss/G_A_adv" in r]
    assert sorted(int(float(r["trainer/global_step"])) for r in losses) == list(range(6))  # iteration x-axis
    assert any("perf/images_per_s" in r and "perf/peak_memory_mb" in r for r in rows)
    fid_rows = [r for r in rows if "val/FID_A2B" in r]
    assert len(fid_rows) == 2 and all(float(r["val/FID_A2B"]) >= 0 and "val/KID_B2A" in r for r in fid_rows)
    images = [r for r in rows if "samples/A2B/path" in r or "samples/A2B" in str(list(r))]
    assert len(images) == 2
    image_paths = {json.loads(v) for r in rows for k, v in r.items() if k.endswith("/path")}
    media = run_file.parent / "files"
    for path in image_paths:
        assert Image.open(media / path).size[0] > 32 * 3  # a grid: 4 columns of 32 px crops
    assert any("columns: real A | fake B | rec A | idt B" in v for r in rows for v in r.values())
    config = {item.key: item.value_json for r in records(run_file) if r.WhichOneof("record_type") == "config"
              for item in r.config.update}
    assert json.loads(config["cyclestyle_version"]) and "model" in config and "git_commit" in config

    # TensorBoard, read back with its event reader
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    assert [e.step for e in events.Scalars("loss/cycle_A")] == list(range(6))
    assert [e.step for e in events.Scalars("val/FID")] == [2, 5]  # after iterations 3 and 6 (0-based x-axis)
    assert [e.step for e in events.Images("samples/B2A")] == [2, 5]

    # CSV
    header = (out / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    for column in ("step", "loss/G_A_adv", "lr/G", "val/FID", "val/KID_A2B", "perf/iterations_per_s"):
        assert column in header, column

    # best.ckpt by FID, and the model card
    assert (out / "checkpoints" / "best.ckpt").exists()
    card = (out / "model_card.md").read_text()
    assert f"cyclestyle translate {out}/checkpoints/last.ckpt" in card and "val/FID" in card
    assert "samples/iter_0000006.png" in card and "lambda_identity" in card


def test_best_checkpoint_keeps_the_lowest_fid(tiny_cfg, tmp_path, monkeypatch):
    values = iter([5.0, 3.0, 4.0])
    monkeypatch.setattr(TranslationMetrics, "compute", lambda self: {"FID": torch.tensor(next(values))})
    train(tiny_cfg("trainer.max_steps=6", "trainer.val_check_interval=2", "callbacks.best_checkpoint.top_k=2",
                   *FID_ON))
    folder = tmp_path / "out" / "checkpoints"
    assert sorted(p.name for p in folder.glob("best-*.ckpt")) == ["best-iter0000004.ckpt", "best-iter0000006.ckpt"]
    assert torch.load(folder / "best.ckpt", weights_only=True)["global_step"] == 4


def test_fid_and_kid_values_match_a_direct_computation():
    torch.manual_seed(0)
    real = torch.rand(12, 3, 32, 32) * 2 - 1
    fake = (real * 0.5 + 0.3).clamp(-1, 1)
    metrics = TranslationMetrics(TinyFeatures(), num_images=12, kid_subset_size=6)
    for start in range(0, 12, 4):  # in batches, as validation does
        metrics.update("A2B", real[start:start + 4], fake[start:start + 4])
        metrics.update("B2A", real[start:start + 4], real[start:start + 4])
    values = metrics.compute()

    f_real, f_fake = (TinyFeatures()((x + 1) / 2).numpy() for x in (real, fake))
    from scipy import linalg

    mu1, mu2 = f_real.mean(0), f_fake.mean(0)
    s1, s2 = np.cov(f_real, rowvar=False), np.cov(f_fake, rowvar=False)
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert float(values["FID_A2B"]) == pytest.approx(expected, rel=1e-3)
    assert abs(float(values["FID_B2A"])) < 1e-3 and float(values["FID"]) == pytest.approx(float(values["FID_A2B"]) / 2, rel=1e-3)
    assert float(values["KID_A2B"]) > 0


DDP_SCRIPT = """
import os, sys, torch, torch.distributed as dist
sys.path.insert(0, sys.argv[2])
from tiny_features import TinyFeatures
from cyclestyle.metrics import TranslationMetrics
rank = int(sys.argv[1])
dist.init_process_group("gloo", init_method="tcp://127.0.0.1:" + sys.argv[3], rank=rank, world_size=2)
torch.manual_seed(0)
real = torch.rand(12, 3, 32, 32) * 2 - 1
fake = (real * 0.5 + 0.3).clamp(-1, 1)
mine = slice(rank * 6, rank * 6 + 6)  # each rank sees half of the images
metrics = TranslationMetrics(TinyFeatures(), num_images=6, kid_subset_size=6)
metrics.update("A2B", real[mine], fake[mine]); metrics.update("B2A", real[mine], fake[mine])
print("FID", float(metrics.compute()["FID_A2B"]))
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_fid_is_reduced_across_ddp_ranks(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    tests = str(Path(__file__).parent)
    procs = [subprocess.Popen([sys.executable, "-c", DDP_SCRIPT, str(r), tests, port], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    torch.manual_seed(0)
    real = torch.rand(12, 3, 32, 32) * 2 - 1
    fake = (real * 0.5 + 0.3).clamp(-1, 1)
    single = TranslationMetrics(TinyFeatures(), num_images=12, kid_subset_size=6)
    single.update("A2B", real, fake), single.update("B2A", real, fake)
    expected = float(single.compute()["FID_A2B"])
    for out, _ in outs:
        assert float(out.split("FID")[-1]) == pytest.approx(expected, rel=1e-4)


def test_missing_inception_weights_warn_once_and_training_goes_on(tiny_cfg, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(metrics_module, "_warned", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer, model = train(tiny_cfg(*SHORT, "model.metrics.num_images=4", "model.metrics.download=false"))
    notes = [str(w.message) for w in caught if "FID/KID disabled" in str(w.message)]
    assert len(notes) == 1, notes
    assert metrics_module.INCEPTION_FILE in notes[0] and str(tmp_path / "hub" / "checkpoints") in notes[0]
    assert trainer.global_step == 6 and "val/FID" not in trainer.callback_metrics
    assert not (tmp_path / "out" / "checkpoints" / "best.ckpt").exists()


def test_wandb_never_prompts(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    with pytest.raises(RuntimeError, match="WANDB_API_KEY"):
        wandb_logger(mode="online", save_dir=str(tmp_path / "w"), project="p")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    with pytest.warns(UserWarning, match="log_model needs mode=online"):
        logger = wandb_logger(save_dir=str(tmp_path / "w"), project="p", log_model=True)
    assert logger._wandb_init["mode"] == "offline" and logger._log_model is False


def test_a_wandb_run_starts_without_deprecation_noise(tmp_path, capfd):
    """Lightning hands wandb.init anonymous=None, which wandb 0.19+ warns about on every run."""
    logger = wandb_logger(save_dir=str(tmp_path / "w"), project="p", mode="offline")
    assert "anonymous" not in logger._wandb_init
    logger.experiment  # noqa: B018 -- starts the run
    logger.experiment.finish()
    assert "anonymous" not in capfd.readouterr().err


@pytest.mark.slow
def test_a_multirun_sweep_shares_one_wandb_group(folders, tmp_path):
    from conftest import TINY

    a, b = folders
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(Path(__file__).parent)}
    result = subprocess.run(
        [sys.executable, "-m", "cyclestyle", "train", "-m", "data=folders", f"data.a={a}", f"data.b={b}", *TINY,
         "logger=wandb", "trainer.max_steps=2", "seed=1,2", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)  # not the source tree
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    runs = sorted((tmp_path / "sweep").glob("*/wandb/offline-run-*/run-*.wandb"))
    assert len(runs) == 2
    groups = {run_info(wait_until_complete(path)).run_group for path in runs}
    assert groups == {"sweep"}


def test_checkpoints_are_uploaded_only_for_an_online_logger_that_asks(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import wandb
    from pytorch_lightning.loggers import WandbLogger

    from cyclestyle.loggers import upload_checkpoints

    logged = []

    class Run:
        id = "abc"

        def log_artifact(self, artifact, aliases):
            logged.append((artifact, aliases))

    def online_logger(log_model):
        logger = WandbLogger.__new__(WandbLogger)
        logger._log_model, logger._experiment = log_model, Run()
        return logger

    monkeypatch.setattr(WandbLogger, "experiment", property(lambda self: self._experiment))
    ckpt = tmp_path / "last.ckpt"
    ckpt.write_bytes(b"weights")
    trainer = SimpleNamespace(loggers=[online_logger(True), online_logger(False)], is_global_zero=True, global_step=7)
    assert upload_checkpoints(trainer, [ckpt, tmp_path / "best.ckpt"]) == 1
    (artifact, aliases), = logged
    assert isinstance(artifact, wandb.Artifact) and artifact.type == "model" and aliases == ["latest"]
    assert list(artifact.manifest.entries) == ["last.ckpt"]
