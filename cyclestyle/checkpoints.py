"""Checkpoint files: loading them safely, and rebuilding networks from their record.

`safe_load` reads any `.ckpt`/`.pth`/`.pt` with `torch.load(weights_only=True)` (a file that would
run code is refused, a broken one named in one line); `build_translator` rebuilds a direction's
network from a checkpoint's record (`cyclestyle.record`) with builders from `cyclestyle.networks`
only; `load_weights` and `check_resumable` fit a checkpoint to a model about to train.
`translate`, `export`, `import-reference`, weights-only fine-tuning and the resume check use only
this module and the record. Models are duck-typed here (`family`, `translators`, `state_dict`):
this module sits below `cyclestyle.models`.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path

import torch
import torch.nn as nn
from pytorch_lightning.utilities import rank_zero_info

from .networks.layers import drop_stale_norm_keys
from .record import BUILDER_PACKAGE, CYCLEGAN_BUILDER, TranslatorSpec, read_record


class UnsafeCheckpointError(RuntimeError):
    """The file holds pickled Python objects that could run code when loaded."""


def safe_load(path: str | os.PathLike, *, mmap: bool = False) -> dict:
    """`torch.load` restricted to tensors and plain data; clear errors for unsafe or broken files.
    `mmap` maps tensors lazily instead of reading them (for a quick look at a large file)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    archive = zipfile.is_zipfile(path)
    if archive:
        check_archive(path)
    mmap = mmap and archive  # only zip-format files map; legacy ones are read
    try:
        with warnings.catch_warnings():  # garbage read as a pickle warns of an unknown protocol first
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        detail = _unpickler_detail(str(error))
        if detail is None or _UNSAFE_PICKLE.search(detail):
            named = f" ({detail})" if detail else ""
            raise UnsafeCheckpointError(
                f"{path}: refused to load: it holds pickled Python objects other than tensors and plain data{named}, "
                f"which could run code when loaded. Only tensors, numbers, strings and containers are accepted."
            ) from None
        raise ValueError(f"{path}: not a readable PyTorch checkpoint (corrupt or not written by torch.save: "
                         f"{detail})") from None
    except MemoryError:
        raise
    except Exception as error:  # noqa: BLE001 -- unpickling arbitrary bytes fails in any of a dozen ways
        told = isinstance(error, (RuntimeError, EOFError, ValueError, zipfile.BadZipFile)) and str(error).strip()
        reason = (str(error).split(". ")[0].strip().splitlines()[0] if told  # torch adds paragraphs of advice
                  else f"corrupt or not written by torch.save: {type(error).__name__}")
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({reason})") from None


def check_archive(path: Path) -> None:
    """torch.save's zip archives carry a CRC-32 per member, which torch.load does not check: a file
    with flipped bytes in a tensor loads as garbage weights. Reading it once (~1 GB/s) catches that."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise ValueError(f"{path}: not a readable PyTorch checkpoint (damaged archive: {error})") from None
    if bad is not None:
        raise ValueError(f"{path}: corrupt: the checksum of {bad} does not match (damaged or partly copied file); "
                         f"restore it from a good copy")


# The weights-only unpickler's reason; globals and INST/OBJ opcodes are what code-running pickles need.
_UNPICKLER_DETAIL = re.compile(r"WeightsUnpickler error:\s*(.*?)\s*(?:\n\n|Check the documentation|$)", re.DOTALL)
_UNSAFE_PICKLE = re.compile(r"global|class|Unsupported operand (?:105|111)\b", re.IGNORECASE)


def _unpickler_detail(message: str) -> str | None:
    """The one-line reason in torch's weights-only error (None if the format is not recognised)."""
    match = _UNPICKLER_DETAIL.search(message)
    if match is None or not match.group(1):
        return None
    line = match.group(1).splitlines()[0].strip()
    return re.sub(r"\s*Please use `torch\.serialization.*", "", line) or None


def builder_callable(builder: str, *, source: str):
    """The callable a record names, from `cyclestyle.networks` only."""
    module_name, _, attribute = builder.partition(":")
    if not (module_name == BUILDER_PACKAGE or module_name.startswith(BUILDER_PACKAGE + ".")) or not attribute:
        raise ValueError(f"{source}: refusing builder {builder!r}: checkpoints may only name builders in "
                         f"{BUILDER_PACKAGE}")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError):
        raise ValueError(f"{source}: builder {builder!r} does not exist in this cyclestyle version") from None


def build_network(spec: TranslatorSpec, *, source: str, overrides: dict | None = None) -> nn.Module:
    """A fresh network as `spec` describes it (weights not loaded); `overrides` replace kwargs."""
    build = builder_callable(spec.builder, source=source)
    kwargs = {**spec.kwargs, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    accepted = inspect.signature(build).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown:
            raise ValueError(f"{source}: unknown setting(s) {', '.join(map(str, unknown))} for {spec.builder} "
                             f"(known: {', '.join(sorted(accepted))})")
    try:
        return build(**kwargs)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{source}: cannot build {spec.builder} with {kwargs}: {error}") from None


def _full_kwargs(spec: TranslatorSpec, source: str) -> dict:
    """The builder's arguments with its defaults filled in, so equal networks compare equal."""
    parameters = inspect.signature(builder_callable(spec.builder, source=source)).parameters
    defaults = {name: p.default for name, p in parameters.items() if p.default is not p.empty}
    return {**defaults, **spec.kwargs}


def load_network(spec: TranslatorSpec, state: dict, *, source: str, overrides: dict | None = None) -> nn.Module:
    """The network `spec` describes with `state` loaded strictly; ValueError naming `source` on a misfit."""
    net = build_network(spec, source=source, overrides=overrides)
    try:
        net.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"{source}: the weights do not fit {spec.builder}({spec.kwargs}): "
                         f"{str(error).splitlines()[0]}") from None
    return net


def module_state(state_dict: dict, module: str) -> dict[str, torch.Tensor]:
    """The weights of the submodule `module` from a LightningModule's state dict, un-prefixed."""
    prefix = module + "."
    return {k[len(prefix):]: v for k, v in state_dict.items() if isinstance(k, str) and k.startswith(prefix)}


def build_translator(checkpoint: dict, direction: str, *, source: str, overrides: dict | None = None
                     ) -> tuple[nn.Module, TranslatorSpec]:
    """(network in eval mode with its weights, its spec) for `direction` of a cyclestyle checkpoint."""
    spec = read_record(checkpoint, source=source).spec(direction, source=source)
    weights = checkpoint.get("state_dict")
    if not isinstance(weights, dict):
        raise ValueError(f"{source}: not a cyclestyle checkpoint (state_dict must be a dict of tensors)")
    state = module_state(weights, spec.module)
    if not state:
        raise ValueError(f"{source}: the checkpoint holds no '{spec.module}.*' weights (direction {direction})")
    if spec.builder == CYCLEGAN_BUILDER:
        state = drop_stale_norm_keys(state, {**spec.kwargs, **(overrides or {})}.get("norm") or "instance")
    net = load_network(spec, state, source=f"{source} ({direction})", overrides=overrides)
    multiple = getattr(net, "size_multiple", spec.size_multiple)
    return net.eval(), dataclasses.replace(spec, size_multiple=multiple)


def is_weights_only(checkpoint: dict) -> bool:
    """True for checkpoints without training state (e.g. from `cyclestyle import-reference`)."""
    return "optimizer_states" not in checkpoint


def load_weights(model, checkpoint: dict, *, source: str) -> list[str]:
    """Load a weights-only checkpoint into `model` (a TranslationModel) to fine-tune it.

    Translators must match the model exactly; other networks (discriminators) missing from the
    file keep their fresh initialisation. Returns the names of the networks that stayed fresh."""
    record = read_record(checkpoint, source=source)
    if record.family != model.family:
        raise ValueError(f"ckpt_path={source}: it holds a {record.family} model; this run trains {model.family} "
                         f"(set model={record.family})")
    for direction, ours in model.translators.items():
        saved = record.translators.get(direction)
        if saved is None:
            raise ValueError(f"ckpt_path={source}: it has no {direction} translator")
        if saved.builder != ours.builder or _full_kwargs(saved, source) != _full_kwargs(ours, source):
            raise ValueError(f"ckpt_path={source}: its {direction} network {saved.kwargs} does not fit this run's "
                             f"{ours.kwargs}; set the model's network settings (e.g. model.generator.*) to match")
    try:
        result = model.load_state_dict(checkpoint.get("state_dict") or {}, strict=False)
    except RuntimeError as error:
        raise ValueError(f"ckpt_path={source}: its weights do not fit this run's model: "
                         f"{str(error).splitlines()[0]}") from None
    translator_modules = {spec.module for spec in model.translators.values()}
    missing = [k for k in result.missing_keys if k.split(".")[0] in translator_modules]
    if missing or result.unexpected_keys:
        raise ValueError(f"ckpt_path={source}: its weights do not fit this run's model; missing {missing[:3]}, "
                         f"unexpected {result.unexpected_keys[:3]}")
    return sorted({k.split(".")[0] for k in result.missing_keys})


def prepare_checkpoint(model, ckpt_path: str) -> bool:
    """Read `ckpt_path` once (its archive checked once) for a run starting from it. Weights without
    training state (e.g. from `cyclestyle import-reference`) are loaded into `model`: True. A full
    checkpoint is checked to fit `model` for Lightning to resume: False."""
    checkpoint = safe_load(ckpt_path, mmap=True)
    if not is_weights_only(checkpoint):
        check_resumable(model, checkpoint, ckpt_path)
        return False
    fresh = load_weights(model, checkpoint, source=ckpt_path)
    if fresh:
        rank_zero_info(f"{ckpt_path} holds no {', '.join(fresh)}: they start from a fresh initialisation")
    return True


def check_resumable(model, checkpoint: dict, ckpt_path: str) -> None:
    """Fail with one clear line if a full checkpoint does not fit the model this run builds
    (Lightning would stop with a long size-mismatch traceback instead)."""
    family = read_record(checkpoint, source=f"ckpt_path={ckpt_path}").family
    if family != model.family:
        raise ValueError(f"ckpt_path={ckpt_path}: it holds a {family} model; this run trains {model.family} "
                         f"(set model={family})")
    saved = checkpoint.get("state_dict")
    if not isinstance(saved, dict):
        raise ValueError(f"ckpt_path={ckpt_path}: not a cyclestyle training checkpoint (no state_dict)")
    own = model.state_dict()
    missing, unexpected = sorted(own.keys() - saved.keys()), sorted(saved.keys() - own.keys())
    resized = [k for k in own.keys() & saved.keys() if tuple(own[k].shape) != tuple(saved[k].shape)]
    if missing or unexpected or resized:
        detail = "; ".join(part for part in (
            missing and f"missing {', '.join(missing[:3])}",
            unexpected and f"unexpected {', '.join(unexpected[:3])}",
            resized and f"{resized[0]} is {list(saved[resized[0]].shape)} there, {list(own[resized[0]].shape)} here",
        ) if part)
        raise ValueError(f"ckpt_path={ckpt_path}: the checkpoint was written by another model configuration "
                         f"({detail}); pass the model settings of the run that wrote it (model=..., model.generator.*)")
