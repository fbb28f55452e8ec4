"""Batch-translation speed: `cyclestyle translate`'s pipeline against what the reference test tool
does (batch 1, fp32, decode - translate - save one image at a time in the main thread), in one
process, on the same files and the same reference-layout ResNet-9 generator (random weights: speed
does not depend on them). Prints images/s, the ratio to the baseline and to our fp32 default,
the warm-up of `--compile` and of `--precision int8` (calibration on the first 8 images and
compilation; excluded from their images/s), the PSNR against fp32 outputs, and the generator's
GFLOP/s against this device's peak on the same convolutions each timed alone (`limits.py`; int8
counts its fp32-equivalent FLOPs against the fp32 peak, so it can pass 100 %). bf16 runs only where
it is native, int8 only on x86 CPUs; the GPU's peak allocated memory is printed.

    python scripts/bench_translate.py            # 256x256 and 1024x768, CPU (and GPU if present)
    python scripts/bench_translate.py --quick    # fewer, smaller runs

The video case stylises a synthetic 854x480 clip at 30000/1001 fps (moving shapes over a still,
grainy background) in fp32, in bf16 where it is native, and in fp32 with --temporal-smoothing 0.5,
and prints frames/s and the flicker of the still background (mean |frame_t - frame_t-1|).

The fast_style case prints images/s of Johnson et al.'s network at 256x256 and 1024x1024.

The AdaIN case prints images/s at 512x512 with a new style per image and with a cached style.
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

from cyclestyle.devices import describe_machine, native_bf16
from cyclestyle.pixels import from_rgb_array, psnr, to_uint8
from cyclestyle.inference.batch import default_workers, translate_files
from cyclestyle.inference.files import plan
from cyclestyle.inference.sources import load_generator
from cyclestyle.networks import build_generator
from limits import conv_peak, count_flops


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
    summary = translate_files(jobs, generator, batch_size=batch_size, workers=default_workers(device), progress=False)
    assert summary.translated == len(jobs) and not summary.failed, summary
    return summary.seconds, warm.seconds


def ours_int8(model_path: Path, folder: Path, out: Path, batch_size: int) -> tuple[float, float, float]:
    """(seconds for the folder, warm-up seconds: calibration, compilation, one batch, worst calibration PSNR)."""
    from cyclestyle.inference.quantize import int8_generator

    start = time.perf_counter()
    jobs = plan([str(folder)], out, "png")
    generator, calibration = int8_generator(load_generator(model_path), [job.source for job in jobs])
    translate_files(jobs[:batch_size], generator, batch_size=batch_size, workers=0, progress=False)  # batch shape
    for job in jobs[:batch_size]:
        job.target.unlink()
    warm_up = time.perf_counter() - start
    summary = translate_files(jobs, generator, batch_size=batch_size, workers=default_workers(torch.device("cpu")), progress=False)
    assert summary.translated == len(jobs) and not summary.failed, summary
    return summary.seconds, warm_up, calibration.psnr


def generator_limits(model_path: Path, shape: tuple[int, ...], device: torch.device) -> tuple[float, dict[str, float]]:
    """(forward FLOPs per image, GFLOP/s peak by precision) of the generator on `shape` batches."""
    net = load_generator(model_path, device=device).module
    with torch.no_grad():
        flops, calls = count_flops(lambda: net(torch.zeros(shape, device=device)))
        peaks = {"32": conv_peak(calls, device, None)}
        if native_bf16(device):
            peaks["bf16"] = conv_peak(calls, device, torch.bfloat16)
    return flops / shape[0], peaks


def main_cases(model_path: Path, tmp: Path, devices: list[torch.device], cases: list, batch_size: int) -> None:
    """Baseline, ours fp32 (the default without native bf16), fp32 --compile, bf16 (+compile) where
    native, int8 on x86 CPUs; a line per run and a Markdown summary."""
    import platform

    rows = []
    for device in devices:
        for (w, h), count in cases:
            folder = tmp / f"in_{w}x{h}"
            if not folder.exists():
                make_images(folder, count, (w, h))
            tag = f"{device.type}_{w}x{h}"
            flops, peaks = generator_limits(model_path, (batch_size, 3, h, w), device)
            mib = lambda: torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None  # noqa: E731
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            runs = {"baseline": (reference_loop(model_path, folder, tmp / f"base_{tag}", device), 0.0, None, mib())}
            names = [("32", "32", False), ("32 --compile", "32", True)]
            if native_bf16(device):
                names += [("bf16", "bf16", False), ("bf16 --compile", "bf16", True)]
            for name, precision, compile in names:
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                out = tmp / f"{name.replace(' --', '_')}_{tag}"
                seconds, warm_up = ours(model_path, folder, out, device, precision, batch_size, compile)
                runs[name] = (seconds, warm_up if compile else 0.0, out, mib())
            if device.type == "cpu" and platform.machine().lower() in ("x86_64", "amd64"):
                out = tmp / f"int8_{tag}"
                seconds, warm_up, checked = ours_int8(model_path, folder, out, batch_size)
                runs["int8"] = (seconds, warm_up, out, None)
                print(f"int8 calibration check: worst calibration image {checked:.1f} dB from fp32")
            base, fp32 = count / runs["baseline"][0], count / runs["32"][0]
            for name, (seconds, warm_up, out, memory) in runs.items():
                rate = count / seconds
                peak = peaks["bf16" if name.startswith("bf16") else "32"]
                quality = mean_psnr(tmp / f"32_{tag}", out) if out is not None and name != "32" else float("inf")
                rows.append((device.type, f"{w}x{h}", count, name, rate, rate / base, rate / fp32, warm_up,
                             quality, flops * rate / 1e9, peak))
                print(f"{device.type:4} {w:>4}x{h:<4} {count:>3} images  {name:15} {rate:>7.2f} img/s "
                      f"{rate / base:>5.2f}x baseline {rate / fp32:>5.2f}x fp32  warm-up {warm_up:>5.1f} s  "
                      f"PSNR vs fp32 {quality:>5.1f} dB  {flops * rate / 1e9:>6.1f} GFLOP/s = "
                      f"{100 * flops * rate / 1e9 / peak:>3.0f} % of {peak:.0f}"
                      + (f"  peak {memory:.0f} MiB allocated" if memory is not None else ""), flush=True)
    print(f"\nSummary ({describe_machine()}; batch size {batch_size}):\n")
    print("| device | input | run | images/s | vs baseline | vs ours fp32 | warm-up | PSNR vs fp32 | GFLOP/s | of peak |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for device, size, count, name, rate, vs_base, vs_fp32, warm_up, quality, gflops, peak in rows:
        shown = "exact" if quality == float("inf") else f"{quality:.1f} dB"
        print(f"| {device} | {count} x {size} | {name} | {rate:.2f} | {vs_base:.2f}x | {vs_fp32:.2f}x | "
              f"{warm_up:.0f} s | {shown} | {gflops:.1f} | {100 * gflops / peak:.0f} % of {peak:.0f} |")
    print("\nbaseline: the reference test tool's loop (batch 1, fp32); warm-up: compilation (and int8's calibration), "
          "excluded from images/s; peak: the generator's convolutions each timed alone in that precision (int8: fp32's)")


def mean_psnr(a: Path, b: Path) -> float:
    return float(np.mean([psnr(np.asarray(Image.open(p)), np.asarray(Image.open(b / p.name))) for p in sorted(a.iterdir())]))


def make_clip(path: Path, count: int, size: tuple[int, int] = (854, 480)) -> np.ndarray:
    """A `count`-frame H.264 clip of (W, H) `size`: discs moving over a smooth background, with fresh
    grain every frame; returns the (H, W) bool mask of pixels no disc ever covers."""
    import av
    from fractions import Fraction

    w, h = size
    rng = np.random.default_rng(0)
    background = np.asarray(Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize(size, Image.BICUBIC),
                            dtype=np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    still = np.ones((h, w), bool)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(30000, 1001), options={"crf": "18"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(count):
            frame = background.copy()
            for k, (x0, y0, dx) in enumerate(((w // 5, h // 3, 6), (w // 2, 2 * h // 3, -4))):
                disc = (xx - x0 - dx * i) ** 2 + (yy - y0) ** 2 < (h // 10) ** 2
                frame[disc] = (230, 200 - 80 * k, 60 + 120 * k)
                still &= (xx - x0 - dx * i) ** 2 + (yy - y0) ** 2 >= (h // 10 + 8) ** 2
            grain = rng.normal(0, 6, frame.shape)
            picture = av.VideoFrame.from_ndarray(np.clip(frame + grain, 0, 255).astype(np.uint8), format="rgb24")
            picture.pts = i
            out.mux(stream.encode(picture))
        out.mux(stream.encode(None))
    return still


def video_case(model_path: Path, tmp: Path, devices: list[torch.device], batch_size: int, quick: bool) -> None:
    """frames/s of `translate` on a 480p clip, and what temporal smoothing costs and gains."""
    import av

    from cyclestyle.devices import native_bf16
    from cyclestyle.inference.files import Job
    from cyclestyle.inference.smoothing import TemporalSmoother, flicker
    from cyclestyle.inference.tiling import run_whole
    from cyclestyle.inference.video import VideoOptions, translate_videos

    count = 4 if quick else 24
    clip = tmp / "clip_480p.mp4"
    still = make_clip(clip, count)
    with av.open(str(clip)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    smoother, start = TemporalSmoother(0.5), time.perf_counter()
    for frame in frames:
        smoother(frame, frame)
    smoothing_ms = 1000 * (time.perf_counter() - start) / len(frames)
    print(f"\nvideo: {count} frames 854x480 at 30000/1001 fps, batch size {batch_size}; temporal smoothing alone: "
          f"{smoothing_ms:.0f} ms/frame")
    print(f"{'device':6} {'precision':9} {'smoothing':>9} {'frames/s':>9} {'flicker of still areas':>23}")
    for device in devices:
        runs = [("32", 0.0), *([("bf16", 0.0)] if native_bf16(device) else []), ("32", 0.5)]
        for precision, strength in runs:
            generator = load_generator(model_path, device=device, precision=precision)
            target = tmp / f"video_{device.type}_{precision}_{strength}" / clip.name
            run_whole(generator, from_rgb_array(frames[0]), generator.size_multiple)  # warm-up: kernel choice
            summary = translate_videos([Job(clip, target)], generator, batch_size=batch_size,
                                       options=VideoOptions(smoothing=strength), progress=False)
            assert summary.translated == 1 and not summary.failed, summary
            with av.open(str(target)) as container:
                outputs = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
            print(f"{device.type:6} {precision:9} {strength:>9} {summary.frames / summary.seconds:>9.2f} "
                  f"{flicker(outputs, still):>23.2f}", flush=True)


def adain_case(devices: list[torch.device], quick: bool) -> None:
    """AdaIN images/s at 512x512 (the paper's network, random weights): a new 512 px style per image
    (the two-input forward: content and style encoded every time) against a cached style (its
    statistics encoded once: what `translate --style` runs), fp32 and bf16 where native."""
    from cyclestyle.devices import native_bf16
    from cyclestyle.networks.adain import AdaINNet, StyledAdaIN

    torch.manual_seed(0)
    count = 2 if quick else 8
    contents, styles = torch.rand(count, 1, 3, 512, 512) * 2 - 1, torch.rand(count, 1, 3, 512, 512) * 2 - 1
    print(f"\nAdaIN: {count} images 512x512, batch 1, styles 512x512")
    print(f"{'device':6} {'precision':9} {'new style/img img/s':>20} {'cached style img/s':>19}")
    for device in devices:
        net = AdaINNet(encoder={"weights": None}).eval().to(device)
        cached = StyledAdaIN(net, [styles[0].to(device)])
        for precision in ["32", *(["bf16"] if native_bf16(device) else [])]:
            rates = []
            for run in (lambda i: net(contents[i].to(device), styles[i].to(device)), lambda i: cached(contents[i].to(device))):
                with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=precision == "bf16"):
                    run(0)  # warm-up
                    start = time.perf_counter()
                    for i in range(count):
                        run(i).float().cpu()
                rates.append(count / (time.perf_counter() - start))
            print(f"{device.type:6} {precision:9} {rates[0]:>20.2f} {rates[1]:>19.2f}", flush=True)


def fast_style_case(tmp: Path, devices: list[torch.device], batch_size: int, quick: bool) -> None:
    """fast_style (Johnson et al.'s TransformerNet, 32 channels, 5 residual blocks, random weights) through
    `translate`'s pipeline from a pytorch/examples-layout .pth: images/s at 256x256 and 1024x1024, fp32
    and bf16 where native."""
    from cyclestyle.devices import native_bf16
    from cyclestyle.networks import TransformerNet

    torch.manual_seed(0)
    model_path = tmp / "mosaic.pth"
    torch.save(TransformerNet(pixels="0-255").state_dict(), model_path)
    print(f"\nfast_style (TransformerNet from a fast_neural_style .pth), batch size {batch_size}")
    print(f"{'device':6} {'size':>9} {'images':>6} {'fp32 img/s':>11} {'bf16 img/s':>11}")
    for device in devices:
        for side, count in ((256, 4 if quick else 24), (1024, 2 if quick else 6)):
            folder = tmp / f"fast_style_{side}"
            if not folder.exists():
                make_images(folder, count, (side, side))
            rates = [count / ours(model_path, folder, tmp / f"fs_{precision}_{device.type}_{side}", device, precision,
                                  batch_size)[0] for precision in ["32", *(["bf16"] if native_bf16(device) else [])]]
            bf16 = f"{rates[1]:>11.2f}" if len(rates) > 1 else f"{'(emulated)':>11}"
            print(f"{device.type:6} {side:>4}x{side:<4} {count:>6} {rates[0]:>11.2f} {bf16}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer images, 256x256 only")
    parser.add_argument("--batch-size", type=int, default=1,
                        help="images per batch for our pipeline (default: 1, translate's CPU default, where larger "
                             "batches are slower in fp32; translate uses 8 on a GPU)")
    args = parser.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    cases = [((256, 256), 8 if args.quick else 24)] + ([] if args.quick else [((1024, 768), 4)])
    print(f"{describe_machine()}; batch size {args.batch_size}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        torch.manual_seed(0)
        model_path = tmp / "latest_net_G.pth"
        torch.save(build_generator("resnet_9blocks").state_dict(), model_path)  # reference zoo layout
        main_cases(model_path, tmp, devices, cases, args.batch_size)
        video_case(model_path, tmp, devices, args.batch_size, args.quick)
        fast_style_case(tmp, devices, args.batch_size, args.quick)
    adain_case(devices, args.quick)


if __name__ == "__main__":
    main()
