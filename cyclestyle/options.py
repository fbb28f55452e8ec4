"""The library calls' option objects (frozen dataclasses such as `StylizeOptions`): one helper that
applies a call's keyword overrides, so `call(x, options, steps=10)` means `replace(options, steps=10)`
and a misspelt keyword is an error naming it. Plain Python (no torch), usable from any layer."""
from __future__ import annotations

import dataclasses
from typing import TypeVar

Options = TypeVar("Options")


def with_changes(options: Options | None, kind: type[Options], changes: dict, *, call: str) -> Options:
    """`options` (None: `kind()`, the defaults) with the fields in `changes` replaced; TypeError
    naming every unknown field, or for options of another type."""
    if options is not None and not isinstance(options, kind):
        raise TypeError(f"{call}: options must be a {kind.__name__}, got {type(options).__name__}")
    known = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise TypeError(f"unknown {call} option(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return dataclasses.replace(kind() if options is None else options, **changes)
