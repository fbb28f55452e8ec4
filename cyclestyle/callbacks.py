"""Callbacks of a training run: last.ckpt upkeep (periodic, final, on SIGTERM/SIGINT),
sample grids on disk, and the demo's PSNR check."""
from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import torchvision
from pytorch_lightning.utilities import rank_zero_info

from .atomic import DiskFullError, disk_full
from .data.images import find_images, load_rgb
from .inference.tiling import translate_any_size
from .loggers import log_images
from .pixels import from_rgb_array, psnr, to_uint8


SIGNAL_CHECK_EVERY = 10  # iterations between the ranks' checks for a stop signal under DDP


def save_checkpoint_atomically(trainer: pl.Trainer, target: Path) -> None:
    """Every rank calls `trainer.save_checkpoint` (a collective); rank 0 writes to a temporary name
    beside `target` and renames it, so a crash or kill never leaves a torn checkpoint."""
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        trainer.save_checkpoint(tmp, weights_only=False)
    except Exception as error:
        full = disk_full(error, target)  # before the partial file goes
        if trainer.is_global_zero:
            tmp.unlink(missing_ok=True)  # torch.save leaves what it wrote of a failed file
        if full is None:
            raise
        raise DiskFullError(full.errno, f"{full}; the previous {target.name} is kept: free space and resume with "
                                        f"ckpt_path=last") from None
    if trainer.is_global_zero:
        os.replace(tmp, target)


class LastCheckpoint(pl.Callback):
    """Keeps `dirpath/last.ckpt` current: every `every_n_iterations`, at the end of training,
    and when SIGTERM (preemption) or SIGINT (Ctrl-C) arrives. A signal lets the current
    iteration finish, saves, and stops training at once (no validation); `stopped_by` then names
    the signal. A second signal stops the process immediately.
    Files are written to a temporary name and renamed, so a crash never leaves a torn file.
    """

    def __init__(self, dirpath: str, every_n_iterations: int = 500, save_on_signal: bool = True) -> None:
        if every_n_iterations < 1:
            raise ValueError(f"callbacks.last_checkpoint.every_n_iterations must be >= 1, got {every_n_iterations}")
        self.dirpath = Path(dirpath).expanduser()
        self.every = every_n_iterations
        self.save_on_signal = save_on_signal
        self.stopped_by: int | None = None
        self._signal: int | None = None
        self._previous_handlers: dict[int, object] = {}
        self._saved_at = -1

    @property
    def path(self) -> Path:
        return self.dirpath / "last.ckpt"

    def save(self, trainer: pl.Trainer) -> None:
        save_checkpoint_atomically(trainer, self.path)
        trainer.strategy.barrier("last_checkpoint")
        self._saved_at = trainer.global_step

    def _on_signal(self, signum: int, frame) -> None:
        if self._signal is not None:  # the second signal: stop now, whatever the process is waiting for
            for other in self._previous_handlers:
                signal.signal(other, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self._signal = signum
        print(f"\n{signal.Signals(signum).name}: saving last.ckpt after this iteration, then stopping "
              f"(send it again to stop at once)", file=sys.stderr, flush=True)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Installed here, after Lightning's own handlers, so these decide what a signal does.
        if self.save_on_signal:
            try:
                for signum in (signal.SIGTERM, signal.SIGINT):
                    self._previous_handlers[signum] = signal.signal(signum, self._on_signal)
            except ValueError:  # not the main thread: leave signals alone
                self._previous_handlers.clear()

    def _signalled(self, trainer: pl.Trainer) -> bool:
        """Whether any rank got a signal. Ranks agree through a collective, which waits for the
        device; so with several ranks they compare notes every `SIGNAL_CHECK_EVERY` iterations."""
        if not self._previous_handlers:
            return False
        if trainer.world_size == 1:
            return self._signal is not None
        if trainer.global_step % SIGNAL_CHECK_EVERY and not _is_final_iteration(trainer):
            return False
        return trainer.strategy.reduce_boolean_decision(self._signal is not None, all=False)

    def on_train_batch_end(self, trainer: pl.Trainer, *args) -> None:
        if self._signalled(trainer):
            self.stopped_by = self._signal or signal.SIGTERM
            self.save(trainer)
            rank_zero_info(f"Stopped by signal {signal.Signals(self.stopped_by).name}; saved {self.path}")
            trainer.should_stop = True
            trainer.limit_val_batches = 0  # Lightning validates before an early stop: not in a grace period
        elif trainer.global_step % self.every == 0 or _is_final_iteration(trainer):
            self.save(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._saved_at != trainer.global_step:  # stopped early by something else
            self.save(trainer)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers.clear()


def _is_final_iteration(trainer: pl.Trainer) -> bool:
    """True in the last iteration of the run (max_steps or max_epochs reached).

    The final checkpoint is saved then rather than in on_train_end: Lightning resumes
    a checkpoint saved after a batch exactly, but one saved after the loop's end-of-run
    bookkeeping skips the next epoch.
    """
    if 0 < trainer.max_steps <= trainer.global_step:
        return True
    max_epochs = trainer.fit_loop.max_epochs
    last_batch = trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
    return last_batch and max_epochs not in (None, -1) and trainer.current_epoch + 1 >= max_epochs


class SampleImages(pl.Callback):
    """After each validation, one grid per `SampleGrid` the model declares (CycleGAN's A2B rows:
    real A | fake B | rec A | idt B; U-GAT-IT adds attention heatmaps) for the first `max_images`
    validation images, written to `dirpath/iter_XXXXXXX.png` (the grids stacked) and sent to the
    loggers that show images (`samples/<grid name>`, with captions). The same images every time."""

    def __init__(self, dirpath: str, max_images: int = 4) -> None:
        self.dirpath = Path(dirpath).expanduser()
        self.max_images = max_images
        self.last_path: Path | None = None
        self._collected: dict[str, list[torch.Tensor]] = {}
        self._count = 0

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._collected, self._count = {}, 0

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or not outputs or self._count >= self.max_images:
            return
        for key, images in outputs.items():
            self._collected.setdefault(key, []).append(images.detach().cpu())
        self._count += len(next(iter(outputs.values())))

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not self._collected:
            return
        images = {key: torch.cat(parts)[: self.max_images] for key, parts in self._collected.items()}
        grids = []
        for spec in pl_module.sample_grids():
            keys = [k for k in spec.columns if k in images]
            tiles = torch.stack([images[k] for k in keys], dim=1).flatten(0, 1)  # (n * len(keys), 3, H, W)
            grid = torchvision.utils.make_grid(to_uint8(tiles), nrow=len(keys), padding=2)  # (3, H', W')
            grids.append(grid)
            caption = (f"iteration {trainer.global_step}; one validation image per row; columns: "
                       + " | ".join(k.replace("_", " ") for k in keys))
            log_images(trainer, f"samples/{spec.name}", grid.permute(1, 2, 0).numpy(), caption)
        width = max(grid.shape[2] for grid in grids)  # grids with fewer columns are padded on the right
        grids = [torch.nn.functional.pad(grid, (0, width - grid.shape[2])) for grid in grids]
        self.dirpath.mkdir(parents=True, exist_ok=True)
        self.last_path = self.dirpath / f"iter_{trainer.global_step:07d}.png"
        torchvision.io.write_png(torch.cat(grids, dim=1), str(self.last_path))
        self._collected = {}


class PairedPSNR(pl.Callback):
    """At the end of training, translates each image in `a_dir` A -> B and reports the mean
    PSNR against the same-named image in `target_dir`, next to the PSNR of the untouched
    input. The demo uses it to show the model learned its watercolour rendering. Results go to the
    log and to `output_file` (JSON)."""

    def __init__(self, a_dir: str, target_dir: str, output_file: str) -> None:
        self.a_dir, self.target_dir = Path(a_dir).expanduser(), Path(target_dir).expanduser()
        self.output_file = Path(output_file).expanduser()
        self.result: dict | None = None

    @torch.no_grad()
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        stopped = any(isinstance(c, LastCheckpoint) and c.stopped_by is not None for c in trainer.callbacks)
        if not trainer.is_global_zero or stopped:  # a stop signal leaves no time for reports
            return
        translated, untouched = [], []
        spec = pl_module.translators["a2b"]  # the shared translation path: padding, fixed-size tiles
        for path in find_images(self.a_dir, setting="a_dir"):
            photo, target = load_rgb(path), load_rgb(self.target_dir / path.relative_to(self.a_dir))
            x = from_rgb_array(photo).to(pl_module.device)
            was_training = pl_module.training
            pl_module.eval()
            fake = translate_any_size(lambda batch: pl_module(batch, "a2b"), x, multiple=spec.size_multiple,
                                      fixed_size=spec.fixed_size)
            pl_module.train(was_training)
            fake = to_uint8(fake)[0].permute(1, 2, 0).cpu().numpy()
            translated.append(psnr(fake, target))
            untouched.append(psnr(photo, target))
        self.result = {
            "images": len(translated),
            "psnr_translated_db": float(np.mean(translated)),
            "psnr_untouched_db": float(np.mean(untouched)),
        }
        self.output_file.parent.mkdir(parents=True, exist_ok=True)
        self.output_file.write_text(json.dumps(self.result, indent=2))
        rank_zero_info(
            f"Held-out demo photos ({self.result['images']}): PSNR to their true domain-B rendering: "
            f"A->B translation {self.result['psnr_translated_db']:.2f} dB vs untouched photo "
            f"{self.result['psnr_untouched_db']:.2f} dB"
        )
