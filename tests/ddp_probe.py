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


def colour_ids(images: torch.Tensor) -> list[int]:
    """Ids of solid-colour test images whose red value is 10 x id (see test_streams.solid_images)."""
    red = (images[:, 0].float().mean(dim=(1, 2)) + 1) * 127.5  # (B,)
    return [round(v / 10) for v in red.tolist()]


class RecordBatches(pl.Callback):
    """Writes, per rank, the ids of the A and B images of every training batch (a JSON list per epoch)."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self.epochs: dict[int, dict[str, list]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        epoch = self.epochs.setdefault(trainer.current_epoch, {"A": [], "B": []})
        epoch["A"].append(colour_ids(batch["A"]))
        epoch["B"].append(colour_ids(batch["B"]))

    def on_train_end(self, trainer, pl_module) -> None:
        import json

        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"rank{trainer.global_rank}-step{trainer.global_step}.json"
        path.write_text(json.dumps({str(k): v for k, v in self.epochs.items()}))
