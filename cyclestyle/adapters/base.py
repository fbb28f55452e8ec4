"""The adapter contract: one foreign file format turned into a cyclestyle checkpoint.

An adapter knows a format's files (its roles: G_A, G_B, ... or one params file), how to recognise
one file of it on its own (what `translate MODEL` is given), and how to turn its files into an
in-memory cyclestyle checkpoint (a record, the weights under the family's module names, the
settings that fine-tune it). `translate` on a foreign file = convert in memory, then the same
rebuild as any checkpoint; `import-reference` = the same conversion, saved.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import torch

from ..checkpoints import safe_load


class File:
    """One input file of a format, read (`safe_load`, weights only) when its state is first needed."""

    def __init__(self, path: str | Path, state: Any = None) -> None:
        self.path = Path(path).expanduser()
        if state is not None:
            self.state = state  # already read (translate reads a file once to recognise it)

    @property
    def name(self) -> str:
        return str(self.path)

    @cached_property
    def state(self) -> Any:
        return safe_load(self.path)


@dataclass(frozen=True)
class Adapter:
    name: str  # import-reference's word for the format, e.g. "ugatit"
    title: str  # what the files are, for messages and --help
    roles: tuple[str, ...]  # its files; roles[0] is the one `translate` can be given alone
    required: tuple[str, ...]  # the roles import-reference needs
    convert: Callable[..., dict]  # convert(files: {role: File}, **options) -> an in-memory checkpoint
    recognises: Callable[[Any], bool] | None = None  # a loaded roles[0] file of this format (None: never alone)
    one_way: bool = False  # a single file holds one direction: translate's --direction does not apply
    takes_overrides: bool = False  # convert(overrides=...) sets architecture keys the weights cannot tell


def tensors_only(state: Any) -> bool:
    """A bare state dict: names to tensors (what the reference implementations save)."""
    return isinstance(state, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())
