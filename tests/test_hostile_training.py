"""Hostile use of `cyclestyle train` (issue 16): reused run folders, wrong checkpoints, signals,
and the run's log. Each runs the installed command in a subprocess, as a user would."""
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cli_runs import cyclestyle, env, tiny_args


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One finished tiny run (3 iterations) and its folders; tests copy it before changing it."""
    from conftest import write_images

    root = tmp_path_factory.mktemp("finished")
    folders = (root / "A", root / "B")
    write_images(folders[0], 8, seed=1)
    write_images(folders[1], 6, seed=2, tint=60)
    out = root / "run"
    result = cyclestyle(*tiny_args(folders, out, "trainer.max_steps=3", "model.lambda_a=5"))
    assert result.returncode == 0, result.stderr[-3000:]
    return folders, out


@pytest.mark.slow
def test_second_run_into_the_same_folder_is_refused_and_changes_nothing(finished_run):
    folders, out = finished_run
    before = _files(out)
    result = cyclestyle(*tiny_args(folders, out, "trainer.max_steps=2"))
    assert result.returncode == 2
    assert f"paths.output_dir={out}" in result.stderr and "ckpt_path=last" in result.stderr
    assert "overwrite=true" in result.stderr and "Traceback" not in result.stderr
    assert _files(out) == before  # checkpoint, .hydra config, model card, log: all as they were


@pytest.mark.slow
def test_overwrite_true_replaces_a_previous_run(finished_run, tmp_path):
    import shutil

    folders, finished = finished_run
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    result = cyclestyle(*tiny_args(folders, out, "trainer.max_steps=2", "overwrite=true"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2


def test_train_api_refuses_a_folder_holding_a_checkpoint(tiny_cfg, tmp_path):
    from cyclestyle.run_folder import RunFolderInUse
    from cyclestyle.train import train

    cfg = tiny_cfg("trainer.max_steps=1")
    (Path(cfg.paths.output_dir) / "checkpoints").mkdir(parents=True)
    (Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt").write_bytes(b"earlier run")
    with pytest.raises(RunFolderInUse, match="overwrite=true"):
        train(cfg)
    assert (Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt").read_bytes() == b"earlier run"


@pytest.mark.slow
def test_resuming_a_checkpoint_of_another_architecture_says_so_in_one_line(finished_run, tmp_path):
    folders, finished = finished_run
    ckpt = finished / "checkpoints" / "last.ckpt"
    result = cyclestyle(*tiny_args(folders, tmp_path / "run", "trainer.max_steps=4", f"ckpt_path={ckpt}",
                                   "model.generator.ngf=16"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "size mismatch" not in result.stderr
    line = next(line for line in result.stderr.splitlines() if "error:" in line)
    assert str(ckpt) in line and "another model configuration" in line and "model.generator" in line


@pytest.mark.slow
def test_resuming_a_checkpoint_with_flipped_bytes_says_so_in_one_line(finished_run, tmp_path):
    from conftest import flip_middle

    folders, finished = finished_run
    ckpt = flip_middle(finished / "checkpoints" / "last.ckpt", tmp_path / "last.ckpt")
    result = cyclestyle(*tiny_args(folders, tmp_path / "run", "trainer.max_steps=4", f"ckpt_path={ckpt}"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = next(line for line in result.stderr.splitlines() if "error:" in line)
    assert str(ckpt) in line and "corrupt: the checksum" in line


@pytest.mark.slow
@pytest.mark.parametrize("content", [b"just some text\n", b"PK\x03\x04 not really a zip"])
def test_a_file_that_is_no_checkpoint_as_ckpt_path_says_so_in_one_line(folders, tmp_path, content):
    bogus = tmp_path / "notes.ckpt"
    bogus.write_bytes(content)
    result = cyclestyle(*tiny_args(folders, tmp_path / "run", "trainer.max_steps=2", f"ckpt_path={bogus}"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "mmap" not in result.stderr
    line = next(line for line in result.stderr.splitlines() if "error:" in line)
    assert str(bogus) in line and "not a readable PyTorch checkpoint" in line


@pytest.mark.slow
def test_train_log_holds_the_console_messages_and_warnings(tmp_path):
    from conftest import write_images

    a, b = tmp_path / "A", tmp_path / "B"
    write_images(a, 3, seed=1)
    write_images(b, 2, seed=2)
    (a / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "run"  # A leads: 4 iterations read every A file once
    result = cyclestyle(*tiny_args((a, b), out, "trainer.max_steps=4", f"data.val_a={a}", f"data.val_b={b}"))
    assert result.returncode == 0, result.stderr[-3000:]
    text = (out / "train.log").read_text()
    assert f"Checkpoint: {out}/checkpoints/last.ckpt" in text  # our summary line
    assert "Precision:" in text  # a message from inside the run
    assert "broken.png" in text  # the warning about the skipped image


@pytest.mark.slow
def test_train_log_records_why_a_run_failed(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "run"
    result = cyclestyle("train", "data=folders", f"data.a={empty}", f"data.b={empty}", "logger=none",
                        f"paths.output_dir={out}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no images" in (out / "train.log").read_text()


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cyclestyle", *args], env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=cwd)


def _wait_for(path: Path, process: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.time() + seconds
    while not path.exists():
        assert process.poll() is None and time.time() < deadline, process.stdout.read()[-3000:]
        time.sleep(0.1)


@pytest.mark.slow
def test_sigterm_saves_and_exits_without_validating(folders, tmp_path):
    out = tmp_path / "run"
    args = tiny_args(folders, out, "trainer.max_steps=100000", "trainer.val_check_interval=100000",
                     "callbacks.last_checkpoint.every_n_iterations=1")
    process = _start(args, tmp_path)
    _wait_for(out / "checkpoints" / "last.ckpt", process)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, output[-3000:]
    assert not (out / "samples").exists(), "validation ran after the stop signal"


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_second_signal_stops_a_hung_run_at_once(folders, tmp_path, signum):
    out, marker = tmp_path / "run", tmp_path / "hung"
    args = tiny_args(folders, out, "trainer.max_steps=100000", "+callbacks.hang._target_=hang_probe.HangAt",
                     "+callbacks.hang.at=2", f"+callbacks.hang.marker={marker}")
    process = _start(args, tmp_path)
    _wait_for(marker, process)
    process.send_signal(signum)  # the first one waits for an iteration that never ends
    time.sleep(1.0)
    assert process.poll() is None
    process.send_signal(signum)
    process.communicate(timeout=30)
    assert process.returncode == -signum


@pytest.mark.slow
def test_sigkill_never_leaves_a_torn_last_checkpoint(folders, tmp_path):
    """Held before issue 16 and kept: last.ckpt is written to a temporary name and renamed."""
    out = tmp_path / "run"
    args = tiny_args(folders, out, "trainer.max_steps=100000", "callbacks.last_checkpoint.every_n_iterations=1")
    process = _start(args, tmp_path)
    _wait_for(out / "checkpoints" / "last.ckpt", process)
    time.sleep(1.5)  # several more saves: the kill lands at some point of one
    process.kill()
    process.communicate(timeout=60)
    saved = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] >= 1
    result = cyclestyle(*tiny_args(folders, out, f"trainer.max_steps={saved['global_step'] + 1}", "ckpt_path=last"))
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_a_full_disk_while_saving_keeps_the_previous_checkpoint(folders, tmp_path, small_disk):
    checkpoints = small_disk(32768)
    out = tmp_path / "run"
    on_disk = f"callbacks.last_checkpoint.dirpath={checkpoints}"
    first = cyclestyle(*tiny_args(folders, out, "trainer.max_steps=2", on_disk))
    assert first.returncode == 0, first.stderr[-2000:]
    saved = (checkpoints / "last.ckpt").read_bytes()
    (checkpoints / "filler").write_bytes(b"\0" * (32768 * 1024 - len(saved) - 64 * 1024))  # room for less than one more
    last = f"ckpt_path={checkpoints / 'last.ckpt'}"
    full = cyclestyle(*tiny_args(folders, tmp_path / "run2", "trainer.max_steps=4", on_disk, last,
                                 "callbacks.last_checkpoint.every_n_iterations=1"))
    assert full.returncode == 2 and "Traceback" not in full.stderr
    line = next(line for line in full.stderr.splitlines() if "error:" in line)
    assert f"the disk holding {checkpoints} is full" in line and "previous last.ckpt is kept" in line
    assert (checkpoints / "last.ckpt").read_bytes() == saved  # intact
    assert sorted(p.name for p in checkpoints.iterdir()) == ["filler", "last.ckpt"]  # no partial file
    (checkpoints / "filler").unlink()
    resumed = cyclestyle(*tiny_args(folders, tmp_path / "run3", "trainer.max_steps=4", on_disk, last))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert torch.load(checkpoints / "last.ckpt", weights_only=False)["global_step"] == 4


def _ddp_args(folders, out, *extra: str) -> list[str]:
    """A tiny 2-process CPU DDP run with DataLoader workers (as users run it), last.ckpt every iteration."""
    return tiny_args(folders, out, "trainer=ddp_cpu", "trainer.accelerator=cpu", "data.num_workers=1",
                     "trainer.val_check_interval=1000", "callbacks.last_checkpoint.every_n_iterations=1", *extra)


@pytest.mark.slow
def test_a_sigkilled_ddp_rank_stops_the_run_with_a_line_naming_it_and_last_resumes_exactly(folders, tmp_path):
    """Issue 23.1. Before: the survivor died with a gloo 'Connection reset by peer' traceback naming a
    socket (or was SIGKILLed by Lightning's child observer, racing its own shutdown)."""
    killed, whole, probe = tmp_path / "killed", tmp_path / "whole", tmp_path / "probe"
    started = time.monotonic()
    result = cyclestyle(*_ddp_args(folders, killed, "trainer.max_steps=5", "+callbacks.kill._target_=hang_probe.KillRankAt",
                                   "+callbacks.kill.rank=1", "+callbacks.kill.at=3"))
    assert time.monotonic() - started < 240
    assert result.returncode == 1, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if "cyclestyle train: error" in line]
    assert len(errors) == 1 and "rank 1 (pid" in errors[0] and "killed by SIGKILL" in errors[0], result.stderr[-3000:]
    assert "ckpt_path=last" in errors[0] and "Traceback" not in result.stderr
    assert torch.load(killed / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3
    assert not list((killed / "checkpoints").glob("*.tmp*"))
    resumed = cyclestyle(*_ddp_args(folders, killed, "trainer.max_steps=5", "ckpt_path=last"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # The same run uninterrupted: ranks agree, one run folder, and the resumed run ends on its weights.
    reference = cyclestyle(*_ddp_args(folders, whole, "trainer.max_steps=5", "+callbacks.probe._target_=ddp_probe.SaveRankWeights",
                                      f"+callbacks.probe.out_dir={probe}"))
    assert reference.returncode == 0, reference.stderr[-3000:]
    ranks = [torch.load(probe / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2] and [r["batches"] for r in ranks] == [5, 5]
    assert sorted(tmp_path.rglob(".hydra")) == [killed / ".hydra", whole / ".hydra"]  # not one per rank
    after, expected = (torch.load(run / "checkpoints" / "last.ckpt", weights_only=True) for run in (killed, whole))
    assert after["global_step"] == expected["global_step"] == 5
    for name, tensor in expected["state_dict"].items():
        assert torch.equal(tensor, ranks[1]["state_dict"][name]), name
        assert torch.equal(tensor, after["state_dict"][name]), name


@pytest.mark.slow
def test_when_the_launching_rank_is_killed_the_other_rank_says_so_and_stops(folders, tmp_path):
    out = tmp_path / "run"
    started = time.monotonic()
    result = cyclestyle(*_ddp_args(folders, out, "trainer.max_steps=50", "+callbacks.kill._target_=hang_probe.KillRankAt",
                                   "+callbacks.kill.rank=0", "+callbacks.kill.at=2"))
    assert time.monotonic() - started < 240  # the pipe closes when the surviving rank has exited too
    assert result.returncode == -signal.SIGKILL
    errors = [line for line in result.stderr.splitlines() if "cyclestyle train: error" in line]
    assert len(errors) == 1 and errors[0].split("error: ")[1].startswith("rank 1 stopped"), result.stderr[-3000:]
    assert "rank 0 (pid" in errors[0] and "the launching process) is gone" in errors[0]
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2


@pytest.mark.slow
def test_a_hung_ddp_rank_ends_the_run_after_the_collective_timeout(folders, tmp_path):
    """timeout_s bounds a rank that hangs instead of dying (20 s: ranks that start a few seconds apart
    on a busy machine must not trip it before the hang)."""
    out, marker = tmp_path / "run", tmp_path / "hung"
    started = time.monotonic()
    result = cyclestyle(*_ddp_args(folders, out, "trainer.max_steps=50", "trainer.strategy.timeout_s=20",
                                   "+callbacks.hang._target_=hang_probe.HangAt", "+callbacks.hang.rank=1",
                                   "+callbacks.hang.at=2", f"+callbacks.hang.marker={marker}"))
    assert time.monotonic() - started < 180 and marker.exists(), result.stderr[-3000:]
    assert result.returncode == 1, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if "cyclestyle train: error" in line]
    assert len(errors) == 1 and "rank 0 stopped at iteration 2: lost contact with another rank" in errors[0], \
        result.stderr[-3000:]
