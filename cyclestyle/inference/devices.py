"""Choosing the device and the fastest precision that keeps quality on it."""
from __future__ import annotations

import torch

PRECISIONS = ("auto", "32", "bf16", "16")


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
    return any(check is not None and check() for check in checks)


def resolve_precision(precision: str, device: torch.device) -> str:
    """`auto` -> bf16 where it is native (several times faster there), else 32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "32"
    return precision
