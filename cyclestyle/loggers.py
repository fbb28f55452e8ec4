"""Experiment loggers: wandb offline by default and never prompting, run metadata stored with
every run, and images sent to whichever loggers can show them."""
from __future__ import annotations

import os
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger


def wandb_logger(*, mode: str | None = None, log_model: bool = False, save_dir: str, **kwargs) -> WandbLogger:
    """A `WandbLogger` that runs offline unless `mode`/`WANDB_MODE` says online, uploads
    checkpoints only when online and asked for, and never waits for a login prompt."""
    mode = mode or os.environ.get("WANDB_MODE") or "offline"
    if mode not in ("offline", "online", "disabled"):
        raise ValueError(f"logger.wandb.mode must be offline, online or disabled, got {mode!r}")
    if mode == "online":
        if not (os.environ.get("WANDB_API_KEY") or _netrc_has("api.wandb.ai")):
            raise RuntimeError("logger.wandb.mode=online but no wandb credentials: set WANDB_API_KEY or run "
                               "`wandb login` first, or log offline (the default) and `wandb sync` later")
    elif log_model:
        warnings.warn("logger.wandb.log_model needs mode=online; checkpoints are not uploaded offline", stacklevel=2)
        log_model = False
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    import wandb

    settings = wandb.Settings(silent=True, console="off", x_disable_stats=True)
    logger = WandbLogger(save_dir=save_dir, mode=mode, log_model=log_model, settings=settings, **kwargs)
    if logger._wandb_init.get("anonymous", "unset") is None:  # Lightning passes it; wandb >= 0.19 warns on it
        del logger._wandb_init["anonymous"]
    return logger


def _netrc_has(host: str) -> bool:
    import netrc

    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def git_commit(folder: str | os.PathLike = ".") -> str | None:
    """The commit checked out in `folder`, or None outside a git work tree."""
    try:
        result = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def log_images(trainer: pl.Trainer, key: str, image: np.ndarray, caption: str) -> None:
    """Send one (H, W, 3) uint8 image to every logger that shows images, at the x-axis value
    Lightning gives the metrics logged at this moment (the 0-based index of the current iteration)."""
    step = getattr(trainer.fit_loop.epoch_loop, "_batches_that_stepped", trainer.global_step)
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[image], caption=[caption], step=step)
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, image, global_step=step, dataformats="HWC")
            logger.experiment.add_text(f"{key}/caption", caption, global_step=step)



def upload_checkpoints(trainer: pl.Trainer, paths: list[Path]) -> int:
    """Upload existing `paths` as one wandb model artifact for each online WandbLogger created with
    log_model (Lightning itself only does this for its ModelCheckpoint). Returns the uploads made."""
    uploads = 0
    for logger in trainer.loggers:
        if not (isinstance(logger, WandbLogger) and logger._log_model and trainer.is_global_zero):
            continue
        import wandb

        artifact = wandb.Artifact(name=f"model-{logger.experiment.id}", type="model",
                                  metadata={"iteration": trainer.global_step})
        for path in paths:
            if path.exists():
                artifact.add_file(str(path), name=path.name)
        logger.experiment.log_artifact(artifact, aliases=["latest"])
        uploads += 1
    return uploads
