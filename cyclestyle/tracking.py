"""Callbacks that watch a run: throughput and peak memory, the best checkpoint by FID, and the
model card written at the end."""
from __future__ import annotations

import json
import os
import resource
import shutil
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from pytorch_lightning.utilities import rank_zero_info

from .atomic import atomic_target
from .record import describe_directions


class PerformanceMonitor(pl.Callback):
    """Logs `perf/iterations_per_s`, `perf/images_per_s` (all ranks together) and
    `perf/peak_memory_mb` (GPU: allocated tensors; CPU: the process's peak RSS) every
    `every_n_iterations`, averaged over that window. Host-side numbers only: no device sync."""

    def __init__(self, every_n_iterations: int = 10) -> None:
        self.every = every_n_iterations
        self._start: float | None = None
        self._images = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._start is None:
            self._start, self._images = time.perf_counter(), 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._images += len(batch["A"])
        if trainer.global_step % self.every:
            return
        seconds = time.perf_counter() - self._start
        iterations = self._images / max(len(batch["A"]), 1)
        if pl_module.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(pl_module.device) / 2**20
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        pl_module.log_dict({
            "perf/iterations_per_s": iterations / seconds,
            "perf/images_per_s": self._images * trainer.world_size / seconds,
            "perf/peak_memory_mb": float(peak),
        })
        self._start = None


class BestCheckpoint(pl.Callback):
    """Keeps `dirpath/best.ckpt` = the checkpoint with the lowest `monitor` (default val/FID) so far,
    and the `top_k` best as `best-iterXXXXXXX.ckpt`. Nothing is written when the metric is absent
    (e.g. FID disabled offline)."""

    def __init__(self, dirpath: str, monitor: str = "val/FID", top_k: int = 1) -> None:
        if top_k < 1:
            raise ValueError(f"callbacks.best_checkpoint.top_k must be >= 1, got {top_k}")
        self.dirpath, self.monitor, self.top_k = Path(dirpath).expanduser(), monitor, top_k
        self.kept: list[tuple[float, int]] = []  # (value, iteration), best first

    @property
    def path(self) -> Path:
        return self.dirpath / "best.ckpt"

    def _file(self, iteration: int) -> Path:
        return self.dirpath / f"best-iter{iteration:07d}.ckpt"

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if value is None or trainer.sanity_checking:
            return
        value, iteration = float(value), trainer.global_step
        if len(self.kept) == self.top_k and value >= self.kept[-1][0]:
            return
        from .callbacks import save_checkpoint_atomically

        save_checkpoint_atomically(trainer, self._file(iteration))
        self.kept = sorted([*self.kept, (value, iteration)])
        for _, dropped in self.kept[self.top_k:]:
            if trainer.is_global_zero:
                self._file(dropped).unlink(missing_ok=True)
        self.kept = self.kept[: self.top_k]
        if trainer.is_global_zero and self.kept[0][1] == iteration:
            with atomic_target(self.path) as tmp:
                shutil.copyfile(self._file(iteration), tmp)
            rank_zero_info(f"New best {self.monitor} {value:.3f} at iteration {iteration}: {self.path}")
        trainer.strategy.barrier("best_checkpoint")

    def state_dict(self) -> dict:
        return {"kept": self.kept}

    def load_state_dict(self, state_dict: dict) -> None:
        self.kept = [tuple(entry) for entry in state_dict.get("kept", [])]


class ModelCard(pl.Callback):
    """At the end of training, writes `model_card.md` in the run folder: the config, the final
    metrics, the latest sample grid and the `cyclestyle translate` command for this checkpoint."""

    def __init__(self, path: str, config: dict | None = None) -> None:
        self.path = Path(path).expanduser()
        self.config = config or {}

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        from .callbacks import LastCheckpoint, SampleImages

        folder = self.path.parent
        checkpoint = next((c.path for c in trainer.callbacks if isinstance(c, LastCheckpoint)), None)
        samples = next((c.last_path for c in trainer.callbacks if isinstance(c, SampleImages)), None)
        best = next((c.path for c in trainer.callbacks if isinstance(c, BestCheckpoint) and c.path.exists()), None)
        metrics = {k: float(v) for k, v in sorted(trainer.callback_metrics.items()) if k.startswith(("val/", "loss/"))}
        demo = folder / "demo_psnr.json"
        lines = [f"# cyclestyle model: {pl_module.title}", "", *pl_module.card_lines(),
                 f"Trained for {trainer.global_step} iterations ({trainer.current_epoch + 1} epochs).", ""]
        if checkpoint:
            rel = os.path.relpath(checkpoint, folder)
            inputs = {"a2b": "PHOTOS/", "b2a": "PAINTINGS/"}  # domain A, domain B
            commands = [f"cyclestyle translate {checkpoint} {inputs.get(d, 'IMAGES/')} --output OUT/ --direction {d}"
                        f"   # {describe_directions([d])}" for d in pl_module.translators]
            lines += ["## Use it", "", "```bash", *commands, "```", "",
                      f"Checkpoint: [{rel}]({rel})" + (f"; best by FID: {best}" if best else ""), ""]
        lines += ["## Final metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {name} | {value:.4g} |" for name, value in metrics.items()]
        if demo.exists():
            lines += [f"| demo PSNR ({name}) | {value:.4g} |" for name, value in json.loads(demo.read_text()).items()]
        if samples:
            rel = os.path.relpath(samples, folder)
            blocks = "; then ".join(f"{g.name} block: {' | '.join(c.replace('_', ' ') for c in g.columns)}"
                                    for g in pl_module.sample_grids())
            lines += ["", "## Samples", "", f"![samples at iteration {trainer.global_step}]({rel})", "",
                      f"Rows: validation images. {blocks}."]
        lines += ["", "## Config", "", "```yaml", OmegaConf.to_yaml(self.config).rstrip(), "```", ""]
        self.path.write_text("\n".join(lines))
        rank_zero_info(f"Model card: {self.path}")
