"""Test helper: run the installed `cyclestyle` command in a subprocess (tests/ on its PYTHONPATH, so
Hydra can instantiate the probes in ddp_probe.py and hang_probe.py), and the arguments of a tiny run."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from conftest import TINY

TESTS = Path(__file__).parent


def env() -> dict:
    return {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "WANDB_MODE": "offline",
            "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}


def cyclestyle(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the installed command from a neutral folder (not the source tree)."""
    return subprocess.run([sys.executable, "-m", "cyclestyle", *args], env=env(), capture_output=True, text=True,
                          timeout=600, cwd=cwd or tempfile.gettempdir())


def tiny_args(folders, out, *extra) -> list[str]:
    """`train` on the two folders of the `folders` fixture with the tiny CycleGAN, writing into `out`."""
    a, b = folders
    return ["train", "data=folders", f"data.a={a}", f"data.b={b}", *TINY, f"paths.output_dir={out}", *extra]
