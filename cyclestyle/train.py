"""`cyclestyle train [OVERRIDES...]`: compose the Hydra config, instantiate, fit.

    cyclestyle train                                     # the offline demo
    cyclestyle train data=folders data.a=~/photos data.b=~/paintings
    cyclestyle train experiment=monet2photo trainer=gpu
    cyclestyle train trainer=ddp trainer.devices=8 trainer.num_nodes=2
    cyclestyle train ckpt_path=last                      # resume the newest run
    cyclestyle train --cfg job                           # print the composed config
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytorch_lightning as pl
from hydra.utils import instantiate
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn

from cyclestyle.callbacks import LastCheckpoint, SampleImages
from cyclestyle.checkpoints import prepare_checkpoint
from cyclestyle.config_checks import check_config
from cyclestyle.data.object_store import StorageError
from cyclestyle.distributed import LostRank, lost_rank
from cyclestyle.loggers import git_commit, upload_checkpoints
from cyclestyle.run_folder import check_run_folder
from cyclestyle.tracking import BestCheckpoint, ModelCard

CONFIG_MODULE = "cyclestyle.configs"
log = logging.getLogger("cyclestyle.train")


def resolve_ckpt_path(ckpt_path: str | None, *, output_dir: str, log_dir: str) -> str | None:
    """`last` -> this run's last.ckpt if any, else the newest last.ckpt under `log_dir`."""
    if ckpt_path is None:
        return None
    if ckpt_path == "last":
        own = Path(output_dir) / "checkpoints" / "last.ckpt"
        candidates = [own] if own.exists() else sorted(Path(log_dir).glob("**/checkpoints/last.ckpt"),
                                                       key=lambda p: p.stat().st_mtime)
        if not candidates:
            raise FileNotFoundError(f"ckpt_path=last: no checkpoints/last.ckpt in {output_dir} or under {log_dir}")
        return str(candidates[-1])
    if not Path(ckpt_path).expanduser().is_file():
        raise FileNotFoundError(f"ckpt_path: checkpoint not found: {ckpt_path}")
    return str(Path(ckpt_path).expanduser())


def run_metadata(cfg: DictConfig) -> dict:
    """What every logger stores with the run: the resolved config, the git commit, the version."""
    from cyclestyle import __version__

    return {**OmegaConf.to_container(cfg, resolve=True), "cyclestyle_version": __version__,
            "git_commit": git_commit(Path.cwd()) or git_commit(Path(__file__).parent)}


def _resolve_auto_precision(cfg: DictConfig) -> None:
    """`trainer.precision=auto`: bf16-mixed where bf16 runs natively (CPUs with AVX512-BF16/AMX,
    Ampere+ GPUs), else 32; says which it chose. An explicit bf16 where it is emulated (~100x
    slower on AVX2-only CPUs) is kept, with a warning that measures the cost."""
    import torch

    from cyclestyle.devices import bf16_trap, native_bf16

    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    on_gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    device = torch.device("cuda" if on_gpu else "cpu")
    precision = str(cfg.trainer.get("precision"))
    if precision != "auto":
        trap = bf16_trap(precision, device, setting="trainer.precision", better="trainer.precision=32 or auto")
        if trap:
            rank_zero_warn(trap)
        return
    chosen = "bf16-mixed" if native_bf16(device) else "32"
    with open_dict(cfg):
        cfg.trainer.precision = chosen
    reason = "native bf16" if chosen == "bf16-mixed" else "no native bf16"
    rank_zero_info(f"Precision: {chosen} (trainer.precision=auto on {device.type}: {reason}); "
                   f"override with trainer.precision=32|bf16-mixed|16-mixed")


def _enable_tf32() -> None:
    """fp32 matrix multiplies in TF32 on Ampere+ GPUs (cuDNN convolutions already use it)."""
    import torch

    if torch.cuda.is_available() and torch.cuda.get_device_capability()[0] >= 8:
        torch.set_float32_matmul_precision("high")


def _group_sweeps(cfg: DictConfig) -> None:
    """Under Hydra multirun, wandb runs of one sweep share a group (the sweep folder's name)."""
    wandb_cfg = (cfg.get("logger") or {}).get("wandb")
    if wandb_cfg is None or wandb_cfg.get("group") is not None or not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.MULTIRUN:
        with open_dict(cfg):
            wandb_cfg.group = Path(hydra_cfg.sweep.dir).name


def _instantiate_all(group: DictConfig | None) -> list:
    return [instantiate(node) for node in (group or {}).values() if isinstance(node, DictConfig) and "_target_" in node]


def train(cfg: DictConfig) -> tuple[pl.Trainer, pl.LightningModule]:
    """Fit the model the config describes; returns the trainer and the model."""
    check_config(cfg)
    pl.seed_everything(cfg.seed, workers=True)
    _group_sweeps(cfg)
    _resolve_auto_precision(cfg)
    _enable_tf32()
    metadata = run_metadata(cfg)  # after the two above, so it records what the run really uses
    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model, _convert_="all")
    callbacks = _instantiate_all(cfg.get("callbacks"))
    for card in [c for c in callbacks if isinstance(c, ModelCard)]:  # last: it reports what the others wrote
        callbacks.remove(card)
        callbacks.append(card)
        card.config = metadata
    loggers = _instantiate_all(cfg.get("logger"))
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for logger in trainer.loggers:
        logger.log_hyperparams(metadata)
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), output_dir=cfg.paths.output_dir, log_dir=cfg.paths.log_dir)
    check_run_folder(cfg.paths.output_dir, resuming=ckpt_path is not None, overwrite=bool(cfg.get("overwrite")))
    if ckpt_path and prepare_checkpoint(model, ckpt_path):
        rank_zero_info(f"Fine-tuning from the weights in {ckpt_path} (optimizers and schedules start fresh)")
        ckpt_path = None
    elif ckpt_path:
        rank_zero_info(f"Resuming from {ckpt_path}")
    try:
        _fit(trainer, model, datamodule, ckpt_path)
        upload_checkpoints(trainer, [c.path for c in trainer.callbacks if isinstance(c, (LastCheckpoint, BestCheckpoint))])
    finally:
        _finish_wandb()
    return trainer, model


def _fit(trainer: pl.Trainer, model: pl.LightningModule, datamodule, ckpt_path: str | None) -> None:
    """trainer.fit; a collective failing because a rank is gone becomes `LostRank` (one line)."""
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    except Exception as error:
        last = next((c.path for c in trainer.callbacks if isinstance(c, LastCheckpoint) and c.path.is_file()), None)
        lost = lost_rank(error, trainer, resume_from=str(last) if last else None)
        if lost is not None:
            raise lost from error
        raise


def _finish_wandb() -> None:
    """Close the wandb run, so its files are complete and the next run (multirun) gets its own."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()


def _report(trainer: pl.Trainer) -> int:
    """Print where the results are; the exit status (128 + signal number if a signal stopped training)."""
    status = 0
    for callback in trainer.callbacks:
        if isinstance(callback, LastCheckpoint):
            rank_zero_info(f"Checkpoint: {callback.path}  (iteration {trainer.global_step})")
            if callback.stopped_by is not None:
                status = 128 + callback.stopped_by
                rank_zero_info(f"Interrupted; resume with: cyclestyle train ... ckpt_path={callback.path}")
        elif isinstance(callback, SampleImages) and callback.last_path is not None:
            rank_zero_info(f"Sample images: {callback.dirpath}  (latest {callback.last_path.name})")
    return status


def _log_to_run_folder() -> None:
    """Lightning's messages, ours and Python warnings (e.g. skipped images) go where Hydra's
    logging goes: the console and the run's train.log. Lightning keeps its own console handler
    and stops propagation when it is imported before Hydra sets up logging."""
    logging.captureWarnings(True)
    if not logging.getLogger().handlers:
        return
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric"):
        lightning_log = logging.getLogger(name)
        for handler in list(lightning_log.handlers):
            lightning_log.removeHandler(handler)
        lightning_log.propagate = True


# Errors of the user's making (settings, files): one line, no traceback (HYDRA_FULL_ERROR=1 shows it).
USER_ERRORS = (OSError, ValueError)


def _user_error(error: BaseException) -> BaseException | None:
    """The user-facing error behind `error` (Hydra wraps errors raised while instantiating)."""
    from hydra.errors import InstantiationException

    while isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__
    return error if isinstance(error, USER_ERRORS) else None


def task(cfg: DictConfig) -> None:
    _log_to_run_folder()
    try:
        trainer, _ = train(cfg)
    except LostRank as error:  # one line naming the lost rank (HYDRA_FULL_ERROR=1 adds the traceback)
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            log.exception("Training failed")
        log.error(f"cyclestyle train: error: {error}")
        sys.exit(1)
    except Exception as error:
        cause = _user_error(error)
        if cause is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            log.exception("Training failed")
            raise
        log.error(f"cyclestyle train: error: {cause}")
        sys.exit(1 if isinstance(cause, StorageError) else 2)  # 2: a setting or file to fix; 1: the store failed
    status = _report(trainer)
    if status:
        sys.exit(status)


def _output_dir_alias(overrides: list[str]) -> list[str]:
    """`paths.output_dir=DIR` also moves Hydra's own run folder there (one folder per run)."""
    chosen = [o.split("=", 1)[1] for o in overrides if o.startswith("paths.output_dir=")]
    if chosen and not any(o.startswith("hydra.run.dir=") for o in overrides):
        return [*overrides, f"hydra.run.dir={chosen[-1]}"]
    return overrides


def _refuse_used_run_folder(overrides: list[str]) -> None:
    """Before Hydra writes its .hydra/ record: a named run folder that holds another run is
    refused (train() checks the checkpoints again, for runs composed without the CLI)."""
    if any(o in ("-m", "--multirun") or o.startswith(("-c", "--cfg", "-h", "--help", "--info")) for o in overrides):
        return
    values = dict(o.split("=", 1) for o in overrides if "=" in o and not o.startswith("-"))
    folder = values.get("hydra.run.dir")
    if folder is None:
        return
    resuming = values.get("ckpt_path", "null") not in ("null", "None", "")
    overwrite = values.get("overwrite", "false").lower() in ("true", "1", "yes")
    check_run_folder(folder, resuming=resuming, overwrite=overwrite, before_hydra=True)


def main(overrides: list[str]) -> None:
    """Run Hydra on `overrides` (sys.argv is left alone, so Lightning's DDP launcher can
    re-run the same `cyclestyle train ...` command line for the other ranks)."""
    from hydra import version
    from hydra._internal.utils import _run_hydra, get_args_parser  # what @hydra.main runs on sys.argv

    version.setbase("1.3")
    overrides = _output_dir_alias(overrides)
    try:
        _refuse_used_run_folder(overrides)
    except ValueError as error:
        print(f"cyclestyle train: error: {error}", file=sys.stderr)
        sys.exit(2)
    parser = get_args_parser()
    _run_hydra(
        args=parser.parse_args(overrides),
        args_parser=parser,
        task_function=task,
        config_path=f"pkg://{CONFIG_MODULE}",
        config_name="train",
    )

