"""Does bf16-mixed train as well as fp32? Runs the demo task (`cyclestyle train` with its defaults)
at trainer.precision=32 and bf16-mixed for each seed, and prints the cycle and identity losses
averaged over the last 100 iterations, the demo's PSNR check (held-out photos translated A->B vs
their true rendering) and the wall time. Different seeds show the run-to-run noise that a
precision difference has to be compared with.

    python scripts/compare_precision.py                          # seeds 0 and 1, the demo's 500 iterations
    python scripts/compare_precision.py --seeds 0 1 2 --iterations 300
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TERMS = ("cycle_A", "cycle_B", "idt_A", "idt_B")


def run(precision: str, seed: int, iterations: int, root: Path) -> dict[str, float]:
    out = root / f"{precision}-seed{seed}"
    command = [sys.executable, "-m", "cyclestyle", "train", f"trainer.precision={precision}", f"seed={seed}",
               f"trainer.max_steps={iterations}", "logger=csv", "trainer.enable_progress_bar=false",
               "model.metrics.num_images=0", f"hydra.run.dir={out}"]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=root, env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"},
                   stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    with open(out / "csv" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("loss/cycle_A")]
    last = [r for r in rows if int(r["step"]) > iterations - 100]
    result = {term: statistics.mean(float(r[f"loss/{term}"]) for r in last) for term in TERMS}
    demo = json.loads((out / "demo_psnr.json").read_text())
    return {**result, "psnr": demo["psnr_translated_db"], "untouched": demo["psnr_untouched_db"], "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--iterations", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'precision':10} {'seed':>4} | " + " ".join(f"{t:>8}" for t in TERMS)
              + f" | {'A->B dB':>7} {'photo dB':>8} | {'time s':>6}")
        for seed in args.seeds:
            for precision in ("32", "bf16-mixed"):
                r = run(precision, seed, args.iterations, Path(tmp))
                print(f"{precision:10} {seed:>4} | " + " ".join(f"{r[t]:>8.3f}" for t in TERMS)
                      + f" | {r['psnr']:>7.2f} {r['untouched']:>8.2f} | {r['seconds']:>6.0f}", flush=True)
    print(f"losses: mean over the last 100 of {args.iterations} iterations (cycle = L1 x 10, identity = L1 x 5)")


if __name__ == "__main__":
    main()
