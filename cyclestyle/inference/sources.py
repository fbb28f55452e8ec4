"""Every kind of file a generator can come from, behind one callable.

- a cyclestyle checkpoint (`.ckpt`): the generator is rebuilt from the saved hyperparameters;
- a reference CycleGAN generator (`.pth`, bare state_dict): the architecture is read off the keys;
- a file written by `cyclestyle export`: TorchScript (`.pt`/`.ts`) or ONNX (`.onnx`).

Pickled files are read with `torch.load(weights_only=True)`: a file that would run code when
unpickled is refused, not executed. TorchScript files are programs: load only trusted ones.
"""
from __future__ import annotations

import json
import os
import pickle
import warnings
import zipfile
from pathlib import Path

import torch
import torch.nn as nn

from ..networks import build_generator
from .reference import drop_stale_norm_keys, infer_generator

DIRECTIONS = ("a2b", "b2a")
EXPORT_META = "cyclestyle.json"  # extra file in TorchScript exports / metadata key in ONNX exports


class UnsafeCheckpointError(RuntimeError):
    """The file holds pickled Python objects that could run code when loaded."""


def safe_load(path: str | os.PathLike, *, mmap: bool = False) -> dict:
    """`torch.load` restricted to tensors and plain data; clear errors for unsafe or broken files.
    `mmap` maps tensors lazily instead of reading them (for a quick look at a large file)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        raise UnsafeCheckpointError(
            f"{path}: refused to load: it holds pickled Python objects other than tensors and plain data, "
            f"which could run code when loaded. Only tensors, numbers, strings and containers are accepted. "
            f"({str(error).splitlines()[0]})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({error})") from None


def generator_from_state(
    state: dict[str, torch.Tensor], overrides: dict | None = None, *, source: str
) -> tuple[nn.Module, dict]:
    """(generator, its `build_generator` arguments): the network `state` describes (with
    `overrides`), loaded strictly."""
    spec = {**infer_generator(state), **_given(overrides)}
    net = build_generator(**spec)
    try:
        net.load_state_dict(drop_stale_norm_keys(state, spec["norm"]), strict=True)
    except RuntimeError as error:
        raise ValueError(f"{source}: the weights do not fit a {spec} generator: {error}") from None
    return net, spec


def _lightning_generator(
    checkpoint: dict, direction: str, overrides: dict | None, source: str
) -> tuple[nn.Module, dict]:
    prefix = {"a2b": "g_a.", "b2a": "g_b."}[direction]
    state = {k[len(prefix):]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    if not state:
        raise ValueError(f"{source}: the checkpoint holds no '{prefix}*' weights (direction {direction})")
    saved = (checkpoint.get("hyper_parameters") or {}).get("generator") or {}
    architecture = {k: v for k, v in saved.items() if k not in ("init_type", "init_gain")}
    return generator_from_state(state, {**architecture, **_given(overrides)}, source=source)


def _given(overrides: dict | None) -> dict:
    """The overrides actually set (None means "read it from the file")."""
    return {k: v for k, v in (overrides or {}).items() if v is not None}


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") or "/code/" in name for name in archive.namelist())


class Generator:
    """(B, 3, H, W) float images in [-1, 1] -> translated, same shape. H and W must be multiples
    of `size_multiple`; `cyclestyle.inference.tiling` pads and crops for you."""

    def __init__(self, module: nn.Module, *, size_multiple: int, device: torch.device, precision: str, spec: dict,
                 compile: bool = False) -> None:
        self.size_multiple, self.device, self.spec = size_multiple, device, spec
        # Inductor fuses pads, convs, norms and activations: ~1.6x faster in bf16 on CPU, after a
        # warm-up per new input shape (about a minute the first time, seconds once cached on disk).
        # Freezing folds the (fixed) weights into the graph so oneDNN can pre-pack them: ~7% more.
        if compile:
            import torch._inductor.config as inductor_config

            inductor_config.freezing = True  # process-wide; safe here, inference only
        self.module = torch.compile(module, dynamic=False) if compile else module
        self.autocast = {"32": None, "bf16": torch.bfloat16, "16": torch.float16}[precision]

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if self.autocast is None:
            return self.module(x).float()
        with torch.autocast(self.device.type, dtype=self.autocast):
            return self.module(x).float()


class OnnxGenerator:
    """The same interface over an ONNX file run by onnxruntime (always fp32)."""

    def __init__(self, path: Path) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise ImportError(f"{path}: running ONNX files needs onnxruntime: pip install onnxruntime") from None
        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        meta = json.loads(self.session.get_modelmeta().custom_metadata_map.get(EXPORT_META, "{}"))
        self.size_multiple, self.spec = int(meta.get("size_multiple", 4)), meta.get("generator", {})
        self.device = torch.device("cpu")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        (y,) = self.session.run(None, {self.input_name: x.float().cpu().numpy()})
        return torch.from_numpy(y)


def load_generator(
    path: str | os.PathLike,
    *,
    direction: str = "a2b",
    device: str | torch.device = "cpu",
    precision: str = "32",
    overrides: dict | None = None,
    compile: bool = False,
) -> Generator | OnnxGenerator:
    """Open any supported model file and return its `direction` generator, ready for inference.

    `overrides` (name, ngf, norm, dropout) replace what is read from the file; `compile` runs
    PyTorch models through `torch.compile`."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    path, device = Path(path).expanduser(), torch.device(device)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    if path.suffix.lower() == ".onnx":
        return OnnxGenerator(path)
    if _is_torchscript(path):
        extra = {EXPORT_META: ""}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated, still supported
            module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
        meta = json.loads(extra[EXPORT_META] or "{}")
        return Generator(module.eval(), size_multiple=int(meta.get("size_multiple", 4)), device=device,
                         precision=precision, spec=meta.get("generator", {}))  # TorchScript: not compiled
    checkpoint = safe_load(path)
    if isinstance(checkpoint, dict) and "state_dict" in checkpoint:
        net, spec = _lightning_generator(checkpoint, direction, overrides, str(path))
    elif isinstance(checkpoint, dict) and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        net, spec = generator_from_state(checkpoint, overrides, source=str(path))  # reference: one direction per file
    else:
        raise ValueError(f"{path}: neither a cyclestyle checkpoint nor a generator state_dict")
    return Generator(net.eval().to(device), size_multiple=net.size_multiple, device=device, precision=precision,
                     spec=spec, compile=compile)

