"""A callback for subprocess tests: training hangs (as on a blocking read) from iteration `at`."""
import time

import pytorch_lightning as pl


class HangAt(pl.Callback):
    def __init__(self, at: int, marker: str) -> None:
        self.at, self.marker = at, marker

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step >= self.at:
            open(self.marker, "w").close()
            while True:  # never returns, like a read from a FIFO nobody writes to
                time.sleep(0.05)
