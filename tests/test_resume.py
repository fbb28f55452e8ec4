"""Exact resume: K + resume + K iterations equals 2K in one go."""
import pytest
import torch
from omegaconf import open_dict

from cyclestyle.train import resolve_ckpt_path, train

pytestmark = pytest.mark.slow

EPOCH = 6  # tiny folders: 8 - 2 held-out A images lead, so one epoch is 6 iterations


def run(tiny_cfg, out, max_steps, ckpt_path=None):
    cfg = tiny_cfg(f"trainer.max_steps={max_steps}", "model.scheduler.constant=1", "model.scheduler.decay=2", "callbacks.last_checkpoint.every_n_iterations=1000",
                   "trainer.val_check_interval=1000")
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
        cfg.ckpt_path = ckpt_path
    trainer, model = train(cfg)
    return trainer, model


def assert_same_weights(a, b):
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name


@pytest.mark.parametrize("cut", [EPOCH, EPOCH // 2], ids=["epoch-boundary", "mid-epoch"])
def test_resume_continues_exactly(tiny_cfg, tmp_path, cut):
    whole_trainer, whole = run(tiny_cfg, tmp_path / "whole", 2 * EPOCH)
    run(tiny_cfg, tmp_path / "first", cut)
    first_ckpt = tmp_path / "first" / "checkpoints" / "last.ckpt"
    saved = torch.load(first_ckpt, weights_only=True)
    assert saved["global_step"] == cut
    assert len(saved["image_pools"]["A"]["images"]) == cut  # pool contents are part of the state
    trainer, resumed = run(tiny_cfg, tmp_path / "second", 2 * EPOCH, ckpt_path=str(first_ckpt))
    assert trainer.global_step == 2 * EPOCH
    assert trainer.fit_loop.epoch_loop._batches_that_stepped == 2 * EPOCH
    assert trainer.current_epoch == whole_trainer.current_epoch
    assert_same_weights(resumed, whole)
    assert [c.scheduler.last_epoch for c in trainer.lr_scheduler_configs] == [
        c.scheduler.last_epoch for c in whole_trainer.lr_scheduler_configs
    ]


def test_ckpt_path_last_finds_the_newest_run(tmp_path):
    older = tmp_path / "logs" / "train" / "runs" / "a" / "checkpoints"
    newer = tmp_path / "logs" / "train" / "runs" / "b" / "checkpoints"
    for folder in (older, newer):
        folder.mkdir(parents=True)
        (folder / "last.ckpt").write_bytes(b"x")
    import os
    os.utime(older / "last.ckpt", (1, 1))
    found = resolve_ckpt_path("last", output_dir=str(tmp_path / "new_run"), log_dir=str(tmp_path / "logs"))
    assert found == str(newer / "last.ckpt")
    with pytest.raises(FileNotFoundError, match="ckpt_path=last"):
        resolve_ckpt_path("last", output_dir=str(tmp_path / "x"), log_dir=str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        resolve_ckpt_path(str(tmp_path / "nope.ckpt"), output_dir="x", log_dir="y")


def test_ranks_compare_stop_signals_every_few_iterations_not_every_one():
    from types import SimpleNamespace

    from cyclestyle.callbacks import SIGNAL_CHECK_EVERY, LastCheckpoint

    callback = LastCheckpoint("/tmp/unused")
    callback._previous_handlers = {15: None}  # handlers installed
    reduced = []
    strategy = SimpleNamespace(reduce_boolean_decision=lambda flag, all: reduced.append(flag) or flag)
    fit_loop = SimpleNamespace(max_epochs=None, epoch_loop=SimpleNamespace(batch_progress=SimpleNamespace(is_last_batch=False)))
    for world_size in (1, 2):
        reduced.clear()
        for step in range(1, 2 * SIGNAL_CHECK_EVERY + 1):
            trainer = SimpleNamespace(world_size=world_size, global_step=step, max_steps=-1, strategy=strategy,
                                      fit_loop=fit_loop, current_epoch=0)
            assert callback._signalled(trainer) is False
        assert len(reduced) == (0 if world_size == 1 else 2)  # one process: no collective at all
    callback._signal = 15
    trainer = SimpleNamespace(world_size=2, global_step=SIGNAL_CHECK_EVERY, max_steps=-1, strategy=strategy,
                              fit_loop=fit_loop, current_epoch=0)
    assert callback._signalled(trainer) is True
