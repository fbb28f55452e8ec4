"""What the hardware allows, for the benchmarks: FLOPs counted by torch's FlopCounterMode, and the
peak this device reaches on exactly the convolutions a case runs, each timed alone.

`conv_peak` is the "floor" of a case: the time its convolutions take when each runs by itself
(forward, and backward where the case needs it, with the gradients it needs), as GFLOP/s. A case
at 100 % of it spends nothing on anything else (norms, pads, optimizers, Python, Lightning).
Timings on a GPU use CUDA events after a synchronisation.
"""
from __future__ import annotations

import time
from collections import Counter
from contextlib import contextmanager
from typing import Callable, NamedTuple

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode


def seconds(fn: Callable[[], object], device: torch.device, repeats: int = 1) -> float:
    """Wall seconds per call of `fn` on `device` (CUDA: events, synchronised)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(repeats):
            fn()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end) / 1000 / repeats
    begin = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - begin) / repeats


class ConvCall(NamedTuple):
    """One convolution as a case runs it: the layer, the input shape, which gradients it needs."""

    kind: str  # "conv" | "transpose"
    config: tuple  # in, out, kernel, stride, padding, output_padding, groups, bias
    shape: tuple  # input (B, C, H, W)
    grad_input: bool
    grad_weight: bool


@contextmanager
def recording_convs():
    """Counter of ConvCall for every Conv2d/ConvTranspose2d forward inside the block."""
    calls: Counter[ConvCall] = Counter()

    def hook(module, args, output):
        if type(module) not in (nn.Conv2d, nn.ConvTranspose2d) or not args:
            return
        m, x = module, args[0]
        transpose = isinstance(m, nn.ConvTranspose2d)
        config = (m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                  m.output_padding if transpose else (0, 0), m.groups, m.bias is not None)
        calls[ConvCall("transpose" if transpose else "conv", config, tuple(x.shape),
                       x.requires_grad and torch.is_grad_enabled(),
                       m.weight.requires_grad and torch.is_grad_enabled())] += 1

    handle = nn.modules.module.register_module_forward_hook(hook)
    try:
        yield calls
    finally:
        handle.remove()


def count_flops(fn: Callable[[], object]) -> tuple[float, Counter]:
    """(FLOPs of `fn`: forward and backward, a multiply-add = 2, the convolutions it ran)."""
    with FlopCounterMode(display=False) as counter, recording_convs() as calls:
        fn()
    return float(counter.get_total_flops()), calls


def _layer(call: ConvCall, device: torch.device) -> nn.Module:
    cin, cout, kernel, stride, padding, output_padding, groups, bias = call.config
    if call.kind == "transpose":
        layer = nn.ConvTranspose2d(cin, cout, kernel, stride, padding, output_padding, groups, bias)
    else:
        layer = nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=bias)
    return layer.to(device).requires_grad_(call.grad_weight)


def conv_peak(calls: Counter, device: torch.device, dtype: torch.dtype | None, repeats: int = 3) -> float:
    """GFLOP/s of `calls` with each convolution timed alone (best of `repeats`), in `dtype`
    autocast (None: fp32): sum of FLOPs / sum of times, each weighted by its count."""
    total_flops = total_seconds = 0.0
    for call, count in calls.items():
        layer = _layer(call, device)
        x = torch.randn(call.shape, device=device, requires_grad=call.grad_input)
        backward = call.grad_input or call.grad_weight

        def step():
            with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                y = layer(x)
            if backward:
                y.float().backward(torch.ones_like(y, dtype=torch.float32))

        with torch.set_grad_enabled(backward):
            flops, _ = count_flops(step)
            step()  # warm-up: kernel choice, weight packing
            best = min(seconds(step, device) for _ in range(repeats))
        total_flops += flops * count
        total_seconds += best * count
    return total_flops / max(total_seconds, 1e-12) / 1e9
