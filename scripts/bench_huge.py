"""Peak memory of `cyclestyle translate` on huge photos: automatic tiling against whole images.

Each run is a fresh `cyclestyle translate` process (peak RSS of that process, from getrusage) on
one smooth S x S JPEG with a small reference-layout generator (resnet_6blocks, ngf 8: the memory of
a whole image grows with ngf x S^2, the tiled one with ngf x tile^2, so the ratio shown holds for
wider generators too, whose whole-image runs would not fit here at all). Without --tile, images
above 2048 x 2048 run on 1024 px tiles; `--tile 0` forces the whole image (the old behaviour).

    python scripts/bench_huge.py                      # 4000 and 8000 px, both ways; 12000 px tiled
    python scripts/bench_huge.py --sizes 12000 --whole-up-to 0
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np
import torch
from PIL import Image

from cyclestyle.devices import describe_machine
from cyclestyle.networks import build_generator

CHILD = ("import resource, sys; from cyclestyle.commands.translate import main; code = main(sys.argv[1:]); "
         "print('peak_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)")


def make_photo(path: Path, side: int) -> None:
    """A smooth colour field (a small JPEG however large): decoding cost, not file size, is measured."""
    small = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(small).resize((side, side), Image.BILINEAR).save(path, quality=90)


def run(model: Path, photo: Path, out: Path, *extra: str) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of one translate process."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", CHILD, str(model), str(photo), "--output", str(out),
                             "--no-progress", "--precision", "32", "--overwrite", *extra],
                            capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"translate failed ({' '.join(extra) or 'auto'}): {result.stderr[-2000:]}")
    peak_kb = int(next(line.split()[1] for line in result.stdout.splitlines() if line.startswith("peak_kb")))
    return peak_kb / 1024, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4000, 8000, 12000], help="photo sides in pixels")
    parser.add_argument("--whole-up-to", type=int, default=8000,
                        help="also run --tile 0 (whole image) for sides up to this (default: 8000)")
    args = parser.parse_args()
    print(describe_machine())
    print(f"{'side':>6} {'mode':>6} {'peak RSS MB':>12} {'seconds':>8} {'whole / auto':>13}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        torch.manual_seed(0)
        model = tmp / "latest_net_G.pth"
        torch.save(build_generator("resnet_6blocks", ngf=8).state_dict(), model)
        for side in args.sizes:
            photo = tmp / f"photo_{side}.jpg"
            make_photo(photo, side)
            auto, auto_s = run(model, photo, tmp / "auto")
            print(f"{side:>6} {'auto':>6} {auto:>12.0f} {auto_s:>8.1f}")
            if side <= args.whole_up_to:
                whole, whole_s = run(model, photo, tmp / "whole", "--tile", "0")
                print(f"{side:>6} {'whole':>6} {whole:>12.0f} {whole_s:>8.1f} {whole / auto:>12.2f}x")
            photo.unlink()


if __name__ == "__main__":
    main()
