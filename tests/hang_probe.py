"""Callbacks for subprocess tests that make training fail as the world does: a hang (a blocking
read) from iteration `at`, or one rank SIGKILLed at iteration `at`."""
import os
import signal
import time

import pytorch_lightning as pl


class HangAt(pl.Callback):
    """Hangs every rank, or only rank `rank`, as iteration `at` starts (after touching `marker`)."""

    def __init__(self, at: int, marker: str, rank: int | None = None) -> None:
        self.at, self.marker, self.rank = at, marker, rank

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step >= self.at and self.rank in (None, trainer.global_rank):
            open(self.marker, "w").close()
            while True:  # never returns, like a read from a FIFO nobody writes to
                time.sleep(0.05)


class KillRankAt(pl.Callback):
    """SIGKILLs rank `rank` as iteration `at` starts (as the OOM killer would): no handler runs."""

    def __init__(self, rank: int, at: int) -> None:
        self.rank, self.at = rank, at

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_rank == self.rank and trainer.global_step >= self.at:
            os.kill(os.getpid(), signal.SIGKILL)
