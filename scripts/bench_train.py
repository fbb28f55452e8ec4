"""Training speed: cyclestyle's Lightning CycleGAN against a plain PyTorch loop of the reference
algorithm (G step on both generators with the discriminators frozen, then D step on pooled
fakes), same networks (resnet_9blocks, basic PatchGAN), losses (lsgan, cycle 10, identity 0.5)
and image pool (50), in one process. Iteration time is the median over the timed iterations
after warm-up, and the lowest such median over `--repeats` interleaved rounds (this 2-core
machine's timings drift by ~10 % between runs, so rounds alternate the loops); peak memory is the
process's peak RSS during the case (Linux) or the GPU's peak allocation.

    python scripts/bench_train.py            # 128 and 256 px, batch 1 and 4, fp32 and bf16-mixed
    python scripts/bench_train.py --quick    # 128 px, batch 1
    python scripts/bench_train.py --variants # bf16-mixed defaults vs channels_last, compile, foreach Adam, threads
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from cyclestyle.image_pool import ImagePool
from cyclestyle.models import CycleGAN
from cyclestyle.networks import build_discriminator, build_generator


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    elif Path("/proc/self/clear_refs").exists():
        Path("/proc/self/clear_refs").write_text("5")


def peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


def batches(size: int, batch: int, count: int, device: torch.device) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    return [{"A": (torch.rand(batch, 3, size, size, generator=generator) * 2 - 1).to(device),
             "B": (torch.rand(batch, 3, size, size, generator=generator) * 2 - 1).to(device)} for _ in range(count)]


def plain_loop(data: list[dict], device: torch.device, warm_up: int) -> list[float]:
    """The reference algorithm in plain PyTorch, fp32. Returns per-iteration seconds after warm-up."""
    torch.manual_seed(0)
    g_a, g_b = build_generator().to(device), build_generator().to(device)
    d_a, d_b = build_discriminator().to(device), build_discriminator().to(device)
    opt_g = torch.optim.Adam([*g_a.parameters(), *g_b.parameters()], lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam([*d_a.parameters(), *d_b.parameters()], lr=2e-4, betas=(0.5, 0.999))
    pool_a, pool_b = ImagePool(50), ImagePool(50)

    def mse(logits: torch.Tensor, target: float) -> torch.Tensor:
        return F.mse_loss(logits, torch.full_like(logits, target))

    times = []
    for i, batch in enumerate(data):
        start = time.perf_counter()
        real_a, real_b = batch["A"], batch["B"]
        d_a.requires_grad_(False), d_b.requires_grad_(False)
        opt_g.zero_grad()
        fake_b, fake_a = g_a(real_a), g_b(real_b)
        rec_a, rec_b = g_b(fake_b), g_a(fake_a)
        idt_a, idt_b = g_a(real_b), g_b(real_a)
        loss_g = (mse(d_a(fake_b), 1) + mse(d_b(fake_a), 1) + 10 * F.l1_loss(rec_a, real_a)
                  + 10 * F.l1_loss(rec_b, real_b) + 5 * F.l1_loss(idt_a, real_b) + 5 * F.l1_loss(idt_b, real_a))
        loss_g.backward()
        opt_g.step()
        d_a.requires_grad_(True), d_b.requires_grad_(True)
        opt_d.zero_grad()
        pooled_b, pooled_a = pool_b.query(fake_b.detach()), pool_a.query(fake_a.detach())
        loss_d = (0.5 * (mse(d_a(real_b), 1) + mse(d_a(pooled_b), 0))
                  + 0.5 * (mse(d_b(real_a), 1) + mse(d_b(pooled_a), 0)))
        loss_d.backward()
        opt_d.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warm_up:
            times.append(time.perf_counter() - start)
    return times


class _Timer(pl.Callback):
    def __init__(self, warm_up: int) -> None:
        self.warm_up, self.times, self._start, self.warm_up_seconds = warm_up, [], 0.0, 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        seconds = time.perf_counter() - self._start
        if batch_idx >= self.warm_up:
            self.times.append(seconds)
        else:
            self.warm_up_seconds += seconds


def cyclestyle_loop(data: list[dict], device: torch.device, warm_up: int, precision: str,
                    variant: str = "default") -> tuple[list[float], float]:
    """cyclestyle's CycleGAN module under a Lightning Trainer (no logger, no checkpoints), in
    its defaults or one `variant` of them. Returns per-iteration seconds after warm-up and the
    warm-up's total seconds."""
    torch.manual_seed(0)
    kwargs = {}
    if variant == "foreach-adam":
        kwargs["optimizer"] = lambda params: torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999), foreach=True)
    model = CycleGAN(scheduler={"unit": "iteration", "constant": 10**6, "decay": 1}, compile=variant == "compile", **kwargs)
    if variant == "channels-last":
        model = model.to(memory_format=torch.channels_last)
        data = [{k: v.contiguous(memory_format=torch.channels_last) for k, v in b.items()} for b in data]
    threads = torch.get_num_threads()
    if variant == "1-thread":
        torch.set_num_threads(1)
    timer = _Timer(warm_up)
    trainer = pl.Trainer(accelerator=device.type, devices=1, precision=precision, max_steps=len(data), logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[timer], num_sanity_val_steps=0, limit_val_batches=0)
    try:
        trainer.fit(model, torch.utils.data.DataLoader(data, batch_size=None))
    finally:
        torch.set_num_threads(threads)
    return timer.times, timer.warm_up_seconds


VARIANTS = {
    "channels-last": "networks and batches in channels_last memory format",
    "compile": "model.compile=true: torch.compile on the four networks (warm-up includes compilation)",
    "foreach-adam": "foreach Adam instead of the default fused Adam",
    "1-thread": "torch.set_num_threads(1) instead of one thread per core",
}


def explore(args: argparse.Namespace, device: torch.device) -> None:
    """bf16-mixed at 128 px, batch 1: the default against each variant, interleaved."""
    data = batches(128, 1, args.warm_up + args.iterations, device)
    results: dict[str, tuple[float, float]] = {}
    for _ in range(args.repeats):
        for name in ("default", *VARIANTS):
            times, warm_up = cyclestyle_loop(data, device, args.warm_up, "bf16-mixed", name)
            best = results.get(name, (float("inf"), 0.0))
            results[name] = (min(best[0], statistics.median(times)), warm_up)
    base = results["default"][0]
    print(f"{'variant (bf16-mixed, 128 px, batch 1)':40} {'s/it':>7} {'vs default':>10} {'warm-up s':>9}")
    for name, (seconds, warm_up) in results.items():
        print(f"{name:40} {seconds:>7.3f} {base / seconds:>9.2f}x {warm_up:>9.1f}   {VARIANTS.get(name, 'as shipped')}")
    print("vs default: default time / variant time (above 1 = the variant is faster)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="128 px, batch 1 only")
    parser.add_argument("--iterations", type=int, default=5, help="timed iterations per case (default: 5)")
    parser.add_argument("--warm-up", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds per case (default: 2)")
    parser.add_argument("--variants", action="store_true",
                        help="instead: bf16-mixed defaults vs channels_last, torch.compile, foreach Adam, 1 thread")
    args = parser.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    cases = [(128, 1)] if args.quick else [(128, 1), (128, 4), (256, 1), (256, 4)]
    print(f"torch {torch.__version__}, pytorch-lightning {pl.__version__}, {torch.get_num_threads()} CPU threads")
    if args.variants:
        return explore(args, devices[-1])
    print(f"{'device':6} {'px':>4} {'batch':>5} | {'plain fp32 s/it':>15} {'MiB':>6} | {'ours 32 s/it':>12} {'ratio':>6} "
          f"{'MiB':>6} | {'ours bf16 s/it':>14} {'speed-up':>8} {'MiB':>6}")
    for device in devices:
        for size, batch in cases:
            data = batches(size, batch, args.warm_up + args.iterations, device)
            results: dict[str, tuple[float, float]] = {}
            for _ in range(args.repeats):
                for name in ("plain", "32", "bf16"):
                    reset_peak(device)
                    if name == "plain":
                        times = plain_loop(data, device, args.warm_up)
                    else:
                        times, _ = cyclestyle_loop(data, device, args.warm_up, {"32": "32", "bf16": "bf16-mixed"}[name])
                    median = statistics.median(times)
                    best = results.get(name, (float("inf"), 0.0))
                    results[name] = (min(best[0], median), max(best[1], peak_mib(device)))
            plain, ours32, bf16 = results["plain"], results["32"], results["bf16"]
            print(f"{device.type:6} {size:>4} {batch:>5} | {plain[0]:>15.3f} {plain[1]:>6.0f} | {ours32[0]:>12.3f} "
                  f"{ours32[0] / plain[0]:>5.2f}x {ours32[1]:>6.0f} | {bf16[0]:>14.3f} {plain[0] / bf16[0]:>7.2f}x "
                  f"{bf16[1]:>6.0f}", flush=True)
    print("ratio: cyclestyle fp32 time / plain fp32 time (Lightning overhead = ratio - 1); "
          "speed-up: plain fp32 time / cyclestyle bf16-mixed time")


if __name__ == "__main__":
    main()
