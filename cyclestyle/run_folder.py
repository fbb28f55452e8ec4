"""A run folder belongs to one run: a second run into the same `paths.output_dir` would replace
the first one's checkpoints, config and model card, so it is refused unless it resumes that run
(`ckpt_path=...`) or is told to (`overwrite=true`)."""
from __future__ import annotations

import os
from pathlib import Path

# What a run leaves behind; `.hydra/config.yaml` only counts before Hydra writes the new one.
RUN_FILES = ("checkpoints/last.ckpt", "checkpoints/best.ckpt", "model_card.md")
HYDRA_FILES = (".hydra/config.yaml",)


class RunFolderInUse(ValueError):
    """The output folder holds another run's results."""


def env_global_rank() -> int:
    """This process's global rank as launchers announce it (0 when not launched as a rank)."""
    for name in ("RANK", "SLURM_PROCID"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    local, node = os.environ.get("LOCAL_RANK", "0"), os.environ.get("NODE_RANK", "0")
    return int(local) + int(node) if local.isdigit() and node.isdigit() else 0


def check_run_folder(folder: str | os.PathLike, *, resuming: bool, overwrite: bool, before_hydra: bool = False) -> None:
    """Raise RunFolderInUse if `folder` holds a previous run's files and this run neither
    resumes nor overwrites. Only the first rank checks: the others join a run it started."""
    if resuming or overwrite or env_global_rank() != 0:
        return
    root = Path(folder).expanduser()
    names = RUN_FILES + (HYDRA_FILES if before_hydra else ())
    found = [name for name in names if (root / name).exists()]
    if found:
        raise RunFolderInUse(
            f"paths.output_dir={root} already holds a run ({', '.join(found)}); refusing to replace it. "
            f"Resume that run with ckpt_path=last (or ckpt_path=FILE), choose another paths.output_dir, "
            f"or pass overwrite=true to replace it"
        )
