"""The `cyclestyle` command end to end, in subprocesses: help, multirun, signals, DDP on CPU."""
import signal
import subprocess
import sys
import time

import pytest
import torch

from cli_runs import cyclestyle, env, tiny_args
from conftest import TINY


def test_help_lists_subcommands():
    result = cyclestyle("--help")
    assert result.returncode == 0 and "train" in result.stdout


def test_train_help_lists_config_groups():
    result = cyclestyle("train", "--help")
    assert result.returncode == 0
    for group in ("data:", "model:", "trainer:", "logger:", "callbacks:", "experiment:"):
        assert group in result.stdout, group
    assert "horse2zebra" in result.stdout and "ddp_cpu" in result.stdout


@pytest.mark.slow
def test_train_writes_checkpoint_into_the_named_output_dir(folders, tmp_path):
    out = tmp_path / "run"
    result = cyclestyle(*tiny_args(folders, out, "trainer.max_steps=3"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3
    assert (out / ".hydra" / "config.yaml").exists()  # Hydra's record of the run is in the same folder
    assert f"Checkpoint: {out}/checkpoints/last.ckpt" in result.stdout + result.stderr


@pytest.mark.slow
def test_missing_folder_fails_before_training_naming_it(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cyclestyle("train", "data=folders", f"data.a={empty}", f"data.b={tmp_path / 'nowhere'}",
                        *TINY, f"paths.output_dir={tmp_path / 'out'}")
    assert result.returncode != 0
    assert str(empty) in result.stderr and "no images" in result.stderr
    assert not (tmp_path / "out" / "checkpoints").exists()


@pytest.mark.slow
def test_multirun_sweeps_values(folders, tmp_path):
    a, b = folders
    sweep = tmp_path / "sweep"
    result = cyclestyle("train", "-m", "data=folders", f"data.a={a}", f"data.b={b}", *TINY, "trainer.max_steps=1",
                        "model.lambda_a=5,10", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-3000:]
    lambdas = []
    for job in ("0", "1"):
        ckpt = torch.load(sweep / job / "checkpoints" / "last.ckpt", weights_only=True)
        lambdas.append(ckpt["hyper_parameters"]["lambda_a"])
    assert sorted(lambdas) == [5.0, 10.0]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_a_checkpoint_then_exits(folders, tmp_path, signum):
    out = tmp_path / "run"
    args = tiny_args(folders, out, "trainer.max_steps=100000", "trainer.val_check_interval=2",
                     "callbacks.last_checkpoint.every_n_iterations=100000")
    process = subprocess.Popen([sys.executable, "-m", "cyclestyle", *args], env=env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    deadline = time.time() + 300
    while not (out / "samples" / "iter_0000002.png").exists():  # training is under way
        assert process.poll() is None and time.time() < deadline, process.stdout.read()[-3000:]
        time.sleep(0.2)
    process.send_signal(signum)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, output[-3000:]
    saved = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] >= 2
    assert "ckpt_path=" in output
    # ... and the run resumes from it.
    more = saved["global_step"] + 2
    result = cyclestyle(*tiny_args(folders, out, f"trainer.max_steps={more}", "ckpt_path=last"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == more
