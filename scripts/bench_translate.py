"""Batch-translation speed: `cyclestyle translate`'s pipeline against what the reference test tool
does (batch 1, fp32, decode - translate - save one image at a time in the main thread), in one
process, on the same files and the same reference-layout ResNet-9 generator (random weights: speed
does not depend on them). Prints images/s, the ratio to the baseline, the warm-up of
`--compile` (excluded from its images/s) and the PSNR of bf16 against fp32 outputs.

    python scripts/bench_translate.py            # 256x256 and 1024x768, CPU (and GPU if present)
    python scripts/bench_translate.py --quick    # fewer, smaller runs
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np
import torch
from PIL import Image

from cyclestyle.inference.devices import describe_machine
from cyclestyle.pixels import from_rgb_array, psnr, to_uint8
from cyclestyle.inference.batch import translate_files
from cyclestyle.inference.files import plan
from cyclestyle.inference.sources import load_generator
from cyclestyle.networks import build_generator


def make_images(folder: Path, count: int, size: tuple[int, int]) -> None:
    """`count` JPEG photos-like images (smooth colour fields plus grain) of (W, H) `size`."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        base = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize(size, Image.BICUBIC)
        grain = rng.normal(0, 8, (size[1], size[0], 3))
        Image.fromarray(np.clip(np.asarray(base) + grain, 0, 255).astype(np.uint8)).save(folder / f"{i:04d}.jpg", quality=92)


def reference_loop(model_path: Path, folder: Path, out: Path, device: torch.device) -> float:
    """The reference test tool's way: one image at a time, fp32, everything in the main thread."""
    net = build_generator("resnet_9blocks")
    net.load_state_dict(torch.load(model_path, weights_only=True))
    net.eval().to(device)
    out.mkdir(parents=True)
    start = time.perf_counter()
    for path in sorted(folder.iterdir()):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        x = from_rgb_array(rgb).to(device)
        with torch.no_grad():
            y = net(x)
        Image.fromarray(to_uint8(y)[0].permute(1, 2, 0).cpu().numpy()).save(out / f"{path.stem}.png")
    return time.perf_counter() - start


def ours(model_path: Path, folder: Path, out: Path, device: torch.device, precision: str, batch_size: int,
         compile: bool = False) -> tuple[float, float]:
    """(seconds for the folder after a one-batch warm-up, seconds of that warm-up)."""
    generator = load_generator(model_path, device=device, precision=precision, compile=compile)
    jobs = plan([str(folder)], out, "png")
    warm = translate_files(jobs[:batch_size], generator, batch_size=batch_size, workers=0, progress=False)
    for job in jobs[:batch_size]:
        job.target.unlink()
    summary = translate_files(jobs, generator, batch_size=batch_size, workers=2, progress=False)
    assert summary.translated == len(jobs) and not summary.failed, summary
    return summary.seconds, warm.seconds


def mean_psnr(a: Path, b: Path) -> float:
    return float(np.mean([psnr(np.asarray(Image.open(p)), np.asarray(Image.open(b / p.name))) for p in sorted(a.iterdir())]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer images, 256x256 only")
    parser.add_argument("--batch-size", type=int, default=2, help="images per batch for our pipeline (default: 2)")
    args = parser.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    cases = [((256, 256), 8 if args.quick else 24)] + ([] if args.quick else [((1024, 768), 4)])
    print(f"{describe_machine()}; batch size {args.batch_size}")
    print(f"{'device':6} {'size':>9} {'images':>6} {'baseline img/s':>15} {'ours fp32':>10} {'ratio':>6} "
          f"{'ours bf16':>10} {'ratio':>6} {'bf16+compile':>13} {'ratio':>6} {'warm-up':>8} {'PSNR bf16/fp32':>15}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        torch.manual_seed(0)
        model_path = tmp / "latest_net_G.pth"
        torch.save(build_generator("resnet_9blocks").state_dict(), model_path)  # reference zoo layout
        for device in devices:
            for (w, h), count in cases:
                folder = tmp / f"in_{w}x{h}"
                if not folder.exists():
                    make_images(folder, count, (w, h))
                tag = f"{device.type}_{w}x{h}"
                base = count / reference_loop(model_path, folder, tmp / f"base_{tag}", device)
                fp32 = count / ours(model_path, folder, tmp / f"fp32_{tag}", device, "32", args.batch_size)[0]
                bf16 = count / ours(model_path, folder, tmp / f"bf16_{tag}", device, "bf16", args.batch_size)[0]
                seconds, warm_up = ours(model_path, folder, tmp / f"comp_{tag}", device, "bf16", args.batch_size, True)
                compiled = count / seconds
                quality = mean_psnr(tmp / f"fp32_{tag}", tmp / f"bf16_{tag}")
                print(f"{device.type:6} {w:>4}x{h:<4} {count:>6} {base:>15.2f} {fp32:>10.2f} {fp32 / base:>5.2f}x "
                      f"{bf16:>10.2f} {bf16 / base:>5.2f}x {compiled:>13.2f} {compiled / base:>5.2f}x {warm_up:>7.0f}s "
                      f"{quality:>12.1f} dB", flush=True)


if __name__ == "__main__":
    main()
