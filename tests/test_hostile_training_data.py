"""Training data under hostile conditions (issue 16, items 1 and 9): exact resume with DataLoader
workers (the default), across epoch boundaries; a data order that does not depend on the worker
count; a folder where no image decodes stops the run before training, naming the setting.

The tiny folders (`folders` fixture: 6 training images lead, so an epoch is 6 iterations) keep
each run well under a second or two."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict
from torch.utils.data import DataLoader, Dataset

from cyclestyle.data import UnpairedDataModule, UnpairedSampler
from cyclestyle.train import train

from conftest import write_images
from state_dicts import max_difference

EPOCH = 6  # iterations per epoch on the `folders` fixture (8 A images, 2 held out)
WORKERS = ["data.num_workers=2", "data.persistent_workers=true"]  # the folder config's defaults


def run(tiny_cfg, out: Path, max_steps: int, *extra: str, ckpt_path: str | None = None):
    cfg = tiny_cfg(f"trainer.max_steps={max_steps}", "callbacks.last_checkpoint.every_n_iterations=1000",
                   "trainer.val_check_interval=1000", *extra)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
        cfg.ckpt_path = ckpt_path
    return train(cfg)


# --- item 1: exact resume with workers ------------------------------------------------------------

@pytest.mark.parametrize("total, cut", [(EPOCH + 3, EPOCH + 2), (EPOCH + 2, EPOCH), (4, 3)],
                         ids=["inside-epoch-1", "at-the-epoch-boundary", "inside-epoch-0"])
def test_resume_with_persistent_workers_is_exact(tiny_cfg, tmp_path, total, cut):
    _, whole = run(tiny_cfg, tmp_path / "whole", total, *WORKERS)
    run(tiny_cfg, tmp_path / "first", cut, *WORKERS)
    first = tmp_path / "first" / "checkpoints" / "last.ckpt"
    assert torch.load(first, weights_only=True)["global_step"] == cut
    trainer, resumed = run(tiny_cfg, tmp_path / "second", total, *WORKERS, ckpt_path=str(first))
    assert trainer.global_step == total
    assert max_difference(resumed, whole) == 0.0  # the old code: ~1e-3 (epoch 0's items replayed)


def test_a_resumed_run_resumes_exactly_again(tiny_cfg, tmp_path):
    """Positions saved by resumed runs (whose Lightning counters differ after a boundary resume)."""
    _, whole = run(tiny_cfg, tmp_path / "whole", 2 * EPOCH + 2, *WORKERS)
    ckpt = None
    for name, steps in [("first", EPOCH), ("second", EPOCH + 3), ("third", 2 * EPOCH), ("fourth", 2 * EPOCH + 2)]:
        _, model = run(tiny_cfg, tmp_path / name, steps, *WORKERS, ckpt_path=ckpt)
        ckpt = str(tmp_path / name / "checkpoints" / "last.ckpt")
    assert max_difference(model, whole) == 0.0


def test_data_order_does_not_depend_on_the_worker_count(tiny_cfg, tmp_path):
    steps = 2 * EPOCH + 1  # into the third epoch: each new epoch must get its own order
    _, none = run(tiny_cfg, tmp_path / "w0", steps, "data.num_workers=0", "data.persistent_workers=false")
    _, persistent = run(tiny_cfg, tmp_path / "w2", steps, *WORKERS)
    _, fresh = run(tiny_cfg, tmp_path / "w2_fresh", steps, "data.num_workers=2", "data.persistent_workers=false")
    assert max_difference(none, persistent) == 0.0
    assert max_difference(none, fresh) == 0.0


class Identity(Dataset):
    def __getitem__(self, item):
        return torch.tensor(item)

    def __len__(self) -> int:
        return 10


def _items(loader) -> list[tuple[int, int, int]]:
    return [tuple(row) for batch in loader for row in batch.tolist()]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_sampler_position_is_state_read_when_the_iterator_is_created(num_workers):
    """Lightning's order on resume: iter(loader) (workers prefetch at once), then set_epoch."""
    sampler = UnpairedSampler(10, 4, seed=5)
    sampler.resume(3, 4)  # what the datamodule's load_state_dict does, before any iterator exists
    loader = DataLoader(Identity(), sampler=sampler, num_workers=num_workers, persistent_workers=num_workers > 0)
    iterator = iter(loader)
    sampler.set_epoch(3)  # late: the epoch already being read; changes nothing
    assert _items(iterator) == sampler.items(3)[4:]
    sampler.set_epoch(4)
    assert _items(loader) == sampler.items(4)  # the next epoch: its own order, nothing skipped
    sampler.set_epoch(4)
    assert _items(loader) == sampler.items(4)  # set_epoch again: the same epoch again
    sampler.set_epoch(0)
    assert _items(loader) == sampler.items(0)


def test_sampler_refuses_a_position_beyond_the_epoch():
    with pytest.raises(ValueError, match="trainer.devices"):
        UnpairedSampler(10, 4, world_size=2).resume(0, 6)


def test_checkpoint_position_names_the_next_epoch_at_a_boundary(tiny_cfg, tmp_path):
    run(tiny_cfg, tmp_path / "run", EPOCH, *WORKERS)
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)["UnpairedDataModule"]
    assert state == {"next_epoch": 1, "next_item": 0}


def test_old_checkpoint_positions_still_load(folders):
    a, b = folders
    dm = UnpairedDataModule(a=str(a), b=str(b), num_val=2, load_size=36, crop_size=32, num_workers=0)
    dm.load_state_dict({"epoch": 2, "items_done": 3})  # before the fix: mid-epoch
    dm.setup("fit")
    assert (dm.sampler.epoch, dm.sampler.start) == (2, 3)
    dm.load_state_dict({"epoch": 2, "items_done": 0})  # before the fix: epoch 2 was over
    assert (dm.sampler.epoch, dm.sampler.start) == (3, 0)


# --- item 9: a folder where no image decodes ------------------------------------------------------

def garbage_images(folder: Path, count: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"photo_{i}.jpg").write_bytes(bytes(range(256)) * (i + 1))
    return folder


def test_a_folder_of_unreadable_images_stops_the_run_before_training(tmp_path, folders):
    _, b = folders
    broken = garbage_images(tmp_path / "broken", count=8)  # 2 held out for validation, 6 to train
    cfg = tiny_cfg_for(tmp_path, a=broken, b=b)
    with pytest.raises(ValueError) as caught:
        train(cfg)
    message = str(caught.value)
    assert message.startswith(f"data.a: no image in {broken} could be decoded")
    assert "(tried all 6)" in message and "cannot identify image file" in message
    assert message.count("photo_") == 2 * 3 and message.endswith("; and 3 more")  # a few errors, not all
    assert "\n" not in message  # one line, not a worker's traceback
    assert not (tmp_path / "out" / "checkpoints" / "last.ckpt").exists()  # no training step ran


def tiny_cfg_for(tmp_path: Path, *, a: Path, b: Path, extra: tuple[str, ...] = ()):
    from conftest import TINY, compose_config

    overrides = ["data=folders", f"data.a={a}", f"data.b={b}", *TINY, *WORKERS, "trainer.max_steps=2", *extra]
    return compose_config(overrides, tmp_path / "out")


@pytest.mark.parametrize("key", ["val_b", "b"])
def test_every_setting_is_checked_on_setup(tmp_path, folders, key):
    a, b = folders
    broken = garbage_images(tmp_path / "broken", count=2)
    folders_ = {"a": str(a), "b": str(b), key: str(broken)}
    dm = UnpairedDataModule(**folders_, num_val=2, load_size=36, crop_size=32, num_workers=0)
    with pytest.raises(ValueError, match=rf"^data\.{key}: no image in {re.escape(str(broken))} could be decoded .*photo_1\.jpg"):
        dm.setup("fit")


def test_held_out_validation_images_that_all_fail_are_named(tmp_path):
    a = tmp_path / "A"
    write_images(a, 1)  # img_000.png sorts first ...
    garbage_images(a, count=3)  # ... then photo_{0,1,2}.jpg; seed 0 holds out the last of the 4
    write_images(tmp_path / "B", 4)
    dm = UnpairedDataModule(a=str(a), b=str(tmp_path / "B"), num_val=1, seed=0, load_size=36, crop_size=32, num_workers=0)
    with pytest.raises(ValueError, match=rf"^data\.a: none of the 1 validation images held out of {re.escape(str(a))} "
                                         rf"\(set data\.val_a to a folder\) could be decoded .*photo_2\.jpg"):
        dm.setup("fit")


def test_broken_files_among_good_ones_are_skipped_with_a_warning_while_training(tmp_path, folders):
    a, b = folders
    garbage_images(a, count=2)  # photo_*.jpg sort before img_*.png: the first files tried
    cfg = tiny_cfg_for(tmp_path, a=a, b=b, extra=("data.num_workers=0", "data.persistent_workers=false",
                                                   f"trainer.max_steps={EPOCH + 3}", "data.num_val=1"))
    with pytest.warns(UserWarning, match=r"skipping unreadable image .*photo_\d\.jpg"):
        trainer, _ = train(cfg)  # 9 of the 10 files train: one epoch reads every one of them
    assert trainer.global_step == EPOCH + 3


BAD_VALUES = [
    ("trainer.max_steps=-5", r"^trainer\.max_steps=-5: must be -1 \(no limit\) or an integer >= 1$"),
    ("data.crop_size=0", r"^data\.crop_size=0: must be an integer >= 1"),
    ("data.crop_size=64", r"^data\.crop_size=64 is larger than data\.load_size=36"),
    ("data.batch_size=0", r"^data\.batch_size=0: must be an integer >= 1$"),
    ("data.batch_size=two", r"^data\.batch_size='two': must be an integer >= 1$"),
    ("trainer.max_steps=1.5", r"^trainer\.max_steps=1\.5: must be"),
]


@pytest.mark.parametrize("override, message", BAD_VALUES, ids=[o for o, _ in BAD_VALUES])
def test_a_bad_value_is_one_line_naming_the_setting_before_any_work(tmp_path, folders, override, message):
    from cyclestyle.config_checks import check_config

    a, b = folders
    cfg = tiny_cfg_for(tmp_path, a=a, b=b, extra=("data.load_size=36", "data.crop_size=32", override))
    with pytest.raises(ValueError, match=message):
        check_config(cfg)
    with pytest.raises(ValueError, match=message):
        train(cfg)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.ckpt"))


def test_a_file_or_an_empty_folder_as_a_domain_names_the_setting(tmp_path, folders):
    a, b = folders
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NotADirectoryError, match=r"^data\.a: not a folder: .*img_\d+\.png"):
        train(tiny_cfg_for(tmp_path, a=next(a.glob("*.png")), b=b))
    with pytest.raises(ValueError, match=rf"^data\.b: no images .* found under {re.escape(str(empty))}$"):
        train(tiny_cfg_for(tmp_path, a=a, b=empty))


@pytest.mark.slow
def test_the_command_prints_a_bad_value_as_one_line(tmp_path, folders):
    from cli_runs import cyclestyle, tiny_args

    result = cyclestyle(*tiny_args(folders, tmp_path / "run", "data.batch_size=0"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if "error:" in line] == [
        "cyclestyle train: error: data.batch_size=0: must be an integer >= 1"]
