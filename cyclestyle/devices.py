"""Choosing the device and the fastest precision that keeps quality on it."""
from __future__ import annotations

import os

import torch

PRECISIONS = ("auto", "32", "bf16", "16", "int8")  # int8: translate only, x86 CPUs (inference/quantize.py)


def resolve_device(device: str) -> torch.device:
    """`auto` -> the first CUDA GPU if there is one, else the CPU; otherwise `cpu`, `cuda`, `cuda:i`."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA GPU is available here (use --device cpu)")
    return resolved


def native_bf16(device: torch.device) -> bool:
    """True where bf16 convolutions run in hardware: CPUs with AVX512-BF16/AMX, Ampere+ GPUs."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type != "cpu":
        return False
    # torch.backends.mkldnn's bf16 check also accepts plain AVX-512, where bf16 is emulated (slower than fp32).
    checks = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    return any(check is not None and check() for check in checks) and onednn_isa_cap() in (None, *_BF16_ISAS)


# oneDNN's ISA names (ONEDNN_MAX_CPU_ISA) whose convolutions have bf16 dot products.
_BF16_ISAS = ("AVX512_CORE_BF16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16", "AVX10_1_512", "AVX10_1_512_AMX",
              "AVX10_1_512_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2")


def onednn_isa_cap() -> str | None:
    """The ISA oneDNN is limited to by ONEDNN_MAX_CPU_ISA (or its old name DNNL_MAX_CPU_ISA), None if
    unlimited. A cap below AVX512_CORE_BF16 makes bf16 convolutions emulated even on a CPU that has
    the instructions (it is how an AVX2-only CPU is reproduced on a newer one)."""
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").strip().upper()
    return None if cap in ("", "ALL", "DEFAULT") else cap


def resolve_precision(precision: str, device: torch.device) -> str:
    """`auto` -> bf16 where it is native (several times faster there), else 32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "32"
    return precision


def bf16_slowdown(device: torch.device) -> float:
    """How many times slower a bf16 3x3 convolution runs than fp32 on `device`, measured now
    (a 32-channel 32x32 map: ~20 MFLOP, well under a second even where bf16 is emulated)."""
    import time

    conv = torch.nn.Conv2d(32, 32, 3, padding=1).to(device)
    x = torch.randn(1, 32, 32, 32, device=device)

    def seconds(dtype: torch.dtype | None) -> float:
        with torch.no_grad(), torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            conv(x)  # warm-up: kernel choice, weight packing
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            for _ in range(3):
                conv(x)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            return time.perf_counter() - start

    return seconds(torch.bfloat16) / max(seconds(None), 1e-9)


def bf16_trap(precision: str, device: torch.device, *, setting: str, better: str) -> str | None:
    """A warning for bf16 asked for where it is not native (it runs in slow reference kernels
    there: ~100x slower than fp32 on AVX2-only CPUs), with the cost measured on this device."""
    if "bf16" not in precision or native_bf16(device):
        return None
    where = "this CPU (no AVX512-BF16 or AMX)" if device.type == "cpu" else f"{device} (no native bf16)"
    return (f"{setting}={precision} on {where}: bf16 convolutions are emulated, measured "
            f"{bf16_slowdown(device):.0f}x slower than fp32 here; use {better} (auto picks the fast one)")


def describe_machine() -> str:
    """One line for benchmark reports: the CPU model and its bf16-relevant features (or the GPU),
    torch and its threads, so that figures from different machines are never confused."""
    import platform
    from pathlib import Path

    model, flags = platform.processor() or "unknown CPU", set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("unknown CPU", platform.processor()):
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    features = [name for flag, name in (("avx2", "AVX2"), ("avx512f", "AVX-512"), ("avx512_bf16", "AVX512-BF16"),
                                        ("amx_tile", "AMX")) if flag in flags]
    cpu, cap = torch.device("cpu"), onednn_isa_cap()
    limits = "".join(f", {name} {value}" for name, value in (("oneDNN limited to", cap),
                     ("ATen kernels", torch.backends.cpu.get_cpu_capability())) if value)
    text = (f"CPU: {model} ({', '.join(features) or 'no AVX2'}{limits}; native bf16: "
            f"{'yes' if native_bf16(cpu) else 'no'}), {torch.get_num_threads()} torch threads; torch {torch.__version__}")
    if torch.cuda.is_available():
        text += f"; GPU: {torch.cuda.get_device_name()} (native bf16: {native_bf16(torch.device('cuda'))})"
    return text
