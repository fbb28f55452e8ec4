"""Files of the peer implementations, read as cyclestyle checkpoints: one adapter per format.

    ADAPTERS["ugatit"].convert({"params": File("horse2zebra_params_latest.pt")})  # -> a checkpoint dict
    adapter_for(state)  # the format of one loaded file that is not a cyclestyle checkpoint

Layer: above `cyclestyle.models` (records use the families' `translator_specs`), below the library
(`cyclestyle.inference`) and the front ends.
"""
from __future__ import annotations

from typing import Any

from . import official, reference
from .base import Adapter, File, tensors_only

# Recognition order matters: the reference CycleGAN's check (any bare state dict) comes last.
ADAPTERS: dict[str, Adapter] = {adapter.name: adapter for adapter in (
    official.UGATIT, official.FAST_NEURAL_STYLE, official.CUT, official.ADAIN, reference.ADAPTER)}


def adapter_for(state: Any, *, source: str) -> Adapter:
    """The adapter whose single file `state` is; ValueError naming `source` if none is."""
    for adapter in ADAPTERS.values():
        if adapter.recognises is not None and adapter.recognises(state):
            return adapter
    raise ValueError(f"{source}: neither a cyclestyle checkpoint nor a generator state_dict")


def convert_file(path, state: Any, *, overrides: dict | None = None) -> tuple[dict, Adapter]:
    """(in-memory cyclestyle checkpoint, its adapter) for one loaded foreign file; `overrides`
    (architecture keys, None = read from the weights) apply to formats that take them."""
    adapter = adapter_for(state, source=str(path))
    options = {"overrides": overrides} if adapter.takes_overrides else {}
    return adapter.convert({adapter.roles[0]: File(path, state)}, **options), adapter


__all__ = ["ADAPTERS", "Adapter", "File", "adapter_for", "convert_file", "tensors_only"]
