"""Data loading speed: image pairs per second delivered (decode + the training augmentation:
resize 286, random 256 crop, flip) from two image folders (data=folders) and from the same images
packed into streams (`cyclestyle pack`, data=stream), with 0, 1 and 2 DataLoader workers, next to
how many pairs per second the default training step consumes (resnet_9blocks + 70x70 PatchGAN,
256 px, batch 1, the default precision), all in one process. The loader is not the bottleneck when
its rate is above the training rate.

    python scripts/bench_data.py                 # 96 synthetic 640x480 JPEG photos per domain
    python scripts/bench_data.py --images 300 --seconds 10
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np
import torch
from PIL import Image

from cyclestyle.data import UnpairedDataModule
from cyclestyle.data.packing import pack
from cyclestyle.data.streams import StreamingUnpairedDataModule
from cyclestyle.devices import describe_machine, native_bf16

sys.path.insert(0, str(Path(__file__).parent))
from bench_train import batches, cyclestyle_loop  # noqa: E402


def photos(folder: Path, count: int, seed: int) -> None:
    """`count` smooth synthetic 640x480 JPEG photos (quality 90)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        coarse = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        noise = rng.integers(-12, 12, (480, 640, 3))
        image = np.asarray(Image.fromarray(coarse).resize((640, 480), Image.BICUBIC)).astype(int) + noise
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(folder / f"{i:04d}.jpg", quality=90)


def pairs_per_second(module, seconds: float) -> float:
    """Iterate the training loader for about `seconds` (after its first batch); pairs per second."""
    module.setup("fit")
    loader = module.train_dataloader()
    count, start = 0, None
    while True:
        for item in loader:
            batch = item[0] if isinstance(item, tuple) else item  # CombinedLoader yields (batch, index, loader index)
            if start is None:
                start = time.perf_counter()  # workers are up
                continue
            count += len(batch["A"])
            if time.perf_counter() - start > seconds:
                return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=96, help="synthetic photos per domain (default: 96)")
    parser.add_argument("--seconds", type=float, default=6.0, help="seconds per measurement (default: 6)")
    args = parser.parse_args()
    shape = dict(load_size=286, crop_size=256, batch_size=1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        photos(root / "A", args.images, 0)
        photos(root / "B", args.images, 1)
        for domain in ("A", "B"):
            pack(root / domain, str(root / f"packed_{domain}"), workers=2, progress=False)  # defaults: JPEG, max side 512
        print(describe_machine())
        print(f"{args.images} 640x480 JPEGs per domain; {torch.get_num_threads()} CPU threads; "
              "pairs/s (decode + augment, 256 px)")
        print(f"{'workers':>7} | {'folders':>8} | {'stream':>8}")
        for workers in (0, 1, 2):
            folder = UnpairedDataModule(a=str(root / "A"), b=str(root / "B"), num_workers=workers, **shape)
            stream = StreamingUnpairedDataModule(a=str(root / "packed_A"), b=str(root / "packed_B"), num_workers=workers,
                                                 cache_dir=str(root / "cache"), **shape)
            rates = [pairs_per_second(m, args.seconds) for m in (folder, stream)]
            print(f"{workers:>7} | {rates[0]:>8.1f} | {rates[1]:>8.1f}", flush=True)
    precision = "bf16-mixed" if native_bf16(torch.device("cpu")) else "32"
    times, _ = cyclestyle_loop(batches(256, 1, 6, torch.device("cpu")), torch.device("cpu"), 2, precision)
    print(f"training consumes {1 / statistics.median(times):.2f} pairs/s (256 px, batch 1, {precision}, this CPU)")


if __name__ == "__main__":
    main()
