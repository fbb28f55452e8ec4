"""Lightning DDP that stops cleanly when a rank is lost.

Without this, a rank killed mid-training (SIGKILL, the OOM killer) leaves the others with a gloo or
NCCL traceback that names a socket, not a rank, and Lightning's child observer SIGKILLs the
launching process a few seconds later, racing whatever it was doing. Here the launching process
watches the ranks it started itself (`RankWatch`); whichever rank notices the loss (a collective
fails) stops with one line naming the lost rank and the checkpoint to resume from (`LostRank`).
Collectives time out after `timeout_s`, so a rank that hangs instead of dying also ends the run.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from datetime import timedelta

import pytorch_lightning as pl
import torch.distributed as dist
from lightning_fabric.utilities.distributed import _set_num_threads_if_needed
from pytorch_lightning.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

from .errors import first_line

# What a collective says when its peer is gone: gloo's socket errors and timeouts, NCCL's abort.
CONNECTION_LOST = ("connection reset by peer", "connection closed by peer", "broken pipe", "gloo/transport",
                   "timed out", "nccl communicator was aborted", "connection refused")


class LostRank(RuntimeError):
    """A rank of this run is gone; the message says which and how to resume."""


def exit_reason(returncode: int) -> str:
    """How a process ended, in words: 'killed by SIGKILL' or 'exited with status 1'."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with status {returncode}"


class RankWatch(threading.Thread):
    """On the launching process: polls the ranks it started. When one ends with a non-zero status
    it is recorded (`lost`), for the line the training thread prints when its next collective
    fails. Should the training thread not stop by itself within `grace_s` (it never reached a
    collective with the lost rank), the watch prints that line, stops the other ranks and this
    process: a lost rank always ends the run."""

    def __init__(self, procs: list[subprocess.Popen], first_rank: int, grace_s: float = 60.0,
                 period_s: float = 0.5) -> None:
        super().__init__(daemon=True, name="cyclestyle-rank-watch")
        self.procs, self.first_rank, self.grace_s, self.period_s = procs, first_rank, grace_s, period_s
        self.lost: list[str] = []  # what `dead` found, once it found any
        self._stopped = threading.Event()

    def dead(self) -> list[str]:
        """The launched ranks that ended with a non-zero status: "rank 1 (pid 4242) killed by SIGKILL"."""
        return [f"rank {self.first_rank + i} (pid {proc.pid}) {exit_reason(code)}"
                for i, proc in enumerate(self.procs) if (code := proc.poll()) not in (None, 0)]

    def run(self) -> None:
        while not self._stopped.wait(self.period_s):
            self.lost = self.dead()
            if self.lost:
                if not self._stopped.wait(self.grace_s):
                    print(f"cyclestyle train: error: {'; '.join(self.lost)}; the launching rank is stuck and "
                          "stops too", flush=True)
                    self.stop_ranks()
                    os._exit(1)
                return
            if all(proc.poll() == 0 for proc in self.procs):
                return  # every rank finished

    def wait_for_loss(self, timeout_s: float) -> list[str]:
        """The lost ranks, waiting up to `timeout_s` for one to show (a collective can fail a moment
        before the peer's exit status is there to read)."""
        deadline = time.monotonic() + timeout_s
        while not (lost := self.dead()) and time.monotonic() < deadline:
            time.sleep(0.05)
        return lost

    def stop_ranks(self, wait_s: float = 10.0) -> None:
        """Stop the watch; the ranks still running get `wait_s` to stop on their own, then SIGKILL."""
        self._stopped.set()
        deadline = time.monotonic() + wait_s
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class WatchedRanksLauncher(_SubprocessScriptLauncher):
    """Lightning's launcher for `cyclestyle train` on one machine's devices, with `RankWatch` in
    place of Lightning's observer (which SIGKILLs this process when a child dies)."""

    watch: RankWatch | None = None

    def launch(self, function, *args, trainer: pl.Trainer | None = None, **kwargs):
        self.cluster_environment.validate_settings(num_devices=self.num_processes, num_nodes=self.num_nodes)
        if not self.cluster_environment.creates_processes_externally:
            self._call_children_scripts()
            first_rank = self.cluster_environment.node_rank() * self.num_processes + 1
            self.watch = RankWatch(self.procs, first_rank)
            self.watch.start()
        _set_num_threads_if_needed(num_processes=self.num_processes)
        return function(*args, **kwargs)


class DDPStrategy(pl.strategies.DDPStrategy):
    """Lightning's DDPStrategy with a collective timeout in seconds (`timeout_s`, Hydra-friendly)
    and the launcher above."""

    def __init__(self, *, timeout_s: float = 1800.0, **kwargs) -> None:
        if timeout_s <= 0:
            raise ValueError(f"trainer.strategy.timeout_s must be > 0 seconds, got {timeout_s}")
        super().__init__(timeout=timedelta(seconds=timeout_s), **kwargs)
        self.parent_pid = os.getppid()  # on a launched rank: the launching process (rank 0)

    def _configure_launcher(self) -> None:
        super()._configure_launcher()
        if type(self._launcher) is _SubprocessScriptLauncher:
            self._launcher = WatchedRanksLauncher(self.cluster_environment, self.num_processes, self.num_nodes)


def connection_lost(error: BaseException) -> bool:
    """Whether `error` (or what caused it) is a collective failing because a peer is gone."""
    while error is not None:
        if isinstance(error, dist.DistError) or any(s in str(error).lower() for s in CONNECTION_LOST):
            return True
        error = error.__cause__ or error.__context__
    return False


def lost_rank(error: BaseException, trainer: pl.Trainer, *, resume_from: str | None) -> LostRank | None:
    """The one-line error for a training run whose collective failed because a rank is gone (None
    for any other error): which rank, found by the launching process's watch, or by a launched
    rank seeing its launcher gone; where to resume from."""
    strategy = trainer.strategy
    if trainer.world_size < 2 or not connection_lost(error):
        return None
    launcher = getattr(strategy, "launcher", None)
    watch = getattr(launcher, "watch", None)
    parent = getattr(strategy, "parent_pid", None)
    named = watch.wait_for_loss(5.0) if watch is not None else []
    if watch is not None:
        watch.stop_ranks()  # a hung rank (a timed-out collective) must not outlive the run
    if named:
        lost = "; ".join(named)
    elif watch is None and parent is not None and os.getppid() != parent and trainer.local_rank > 0:
        lost = f"rank 0 (pid {parent}, the launching process) is gone"
    else:
        lost = f"lost contact with another rank ({first_line(error)})"
    resume = (f"; the last checkpoint {resume_from} is whole: resume with ckpt_path=last" if resume_from else "")
    return LostRank(f"rank {trainer.global_rank} stopped at iteration {trainer.global_step}: {lost}{resume}")
