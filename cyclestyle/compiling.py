"""When to run the networks through torch.compile, and keeping its work between runs.

`model.compile: auto` compiles when the run is long enough to repay the compilation: Inductor
fuses pads, convolutions, norms and activations, ~1.2x faster CPU iterations in bf16 and ~1.3x
in fp32 (AVX2-only EPYC, issue 17), after one to three minutes of compilation the first time
(`python scripts/bench_train.py --variants` and `--startup`). At 128 px, batch 1 (the smallest
crop, so the least time saved per iteration) that is repaid after ~150 iterations in fp32 and
~700 in bf16 on the CPU; GPU iterations are ~50x shorter, so they need many more.

Inductor keeps compiled graphs on disk (its FX graph cache and the AOTAutograd cache, both on by
default in torch 2.4+) in TORCHINDUCTOR_CACHE_DIR, by default under /tmp, which containers and
reboots wipe; `keep_compile_caches` moves it to the user's cache folder, so a second run of the
same model and crop starts in seconds instead of minutes.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import torch

SETTINGS = (True, False, "auto")
# Iterations from which `auto` compiles, by device type: the CPU's break-even (~700 iterations in
# bf16 at 128 px) with margin; GPUs (not measured yet) conservatively far above theirs.
MIN_ITERATIONS = {"cpu": 1_000, "cuda": 20_000}


def check_setting(compile: bool | str) -> bool | str:
    """The `model.compile` value, or a ValueError naming the setting."""
    if isinstance(compile, str) and compile.lower() in ("true", "false"):
        compile = compile.lower() == "true"
    if compile not in SETTINGS or (isinstance(compile, int) and not isinstance(compile, bool)):
        raise ValueError(f"model.compile={compile!r}: choose true, false or auto")
    return compile


def resolve_compile(compile: bool | str, *, iterations: float | None, device: torch.device) -> tuple[bool, str]:
    """(compile?, why) for `model.compile`: `auto` compiles runs of at least MIN_ITERATIONS[device]
    iterations (`iterations` None: unknown length, not compiled; inf: unbounded, compiled)."""
    compile = check_setting(compile)
    if compile != "auto":
        return compile, f"model.compile={str(compile).lower()}"
    needed = MIN_ITERATIONS.get(device.type)
    if needed is None:
        return False, f"model.compile=auto: not compiling on {device.type}"
    if iterations is None:
        return False, "model.compile=auto: not compiling, the run's length is unknown"
    length = "an unbounded run" if math.isinf(iterations) else f"a run of {int(iterations)} iterations"
    if iterations >= needed:
        return True, f"model.compile=auto: compiling, {length} repays it (>= {needed} on {device.type})"
    return False, f"model.compile=auto: not compiling, {length} is too short to repay it (< {needed} on {device.type})"


def cache_dir() -> Path:
    """Where Inductor's caches live: TORCHINDUCTOR_CACHE_DIR if the user set it, else
    $XDG_CACHE_HOME/cyclestyle/inductor (~/.cache/cyclestyle/inductor).

    Importing torch._inductor writes its own default (/tmp/torchinductor_<user>, wiped at reboot)
    into TORCHINDUCTOR_CACHE_DIR, so that value is read as "not set"."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    chosen = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if chosen and os.path.abspath(chosen) != os.path.abspath(default_cache_dir()):
        return Path(chosen)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "cyclestyle" / "inductor"


def keep_compile_caches() -> Path:
    """Point Inductor at `cache_dir()` (before the first compilation of the process) and make sure
    its FX graph and AOTAutograd caches are on; TORCHINDUCTOR_FX_GRAPH_CACHE=0,
    TORCHINDUCTOR_AUTOGRAD_CACHE=0 or TORCHINDUCTOR_FORCE_DISABLE_CACHES=1 still turn them off."""
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config

    folder = cache_dir()
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)  # read by Inductor at each cache access
    if os.environ.get("TORCHINDUCTOR_FX_GRAPH_CACHE") != "0":
        inductor_config.fx_graph_cache = True
    if os.environ.get("TORCHINDUCTOR_AUTOGRAD_CACHE") != "0":
        functorch_config.enable_autograd_cache = True
    return folder
