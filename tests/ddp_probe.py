"""Test helper loaded by the DDP subprocess: every rank saves what it ended with."""
from pathlib import Path

import pytorch_lightning as pl
import torch


class SaveRankWeights(pl.Callback):
    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self.batches = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.batches += 1

    def on_train_end(self, trainer, pl_module) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        torch.save({"state_dict": pl_module.state_dict(), "global_step": trainer.global_step,
                    "batches": self.batches, "world_size": trainer.world_size},
                   self.out_dir / f"rank{trainer.global_rank}.pt")
