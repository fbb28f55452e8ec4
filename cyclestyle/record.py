"""The record a checkpoint carries about its networks: data that says how to rebuild them.

A record names the model family that wrote it and, per translation direction, how to rebuild that
direction's network without the training code: the builder (a callable in `cyclestyle.networks`),
its keyword arguments, the size multiple, and the state-dict prefix of its weights.

    checkpoint["cyclestyle"] = {
        "format": 1, "family": "cyclegan", "version": "0.1.0",
        "translators": {"a2b": {"module": "g_a", "builder": "cyclestyle.networks:build_generator",
                                "kwargs": {"name": "resnet_9blocks", ...}, "size_multiple": 4,
                                "fixed_size": None, "condition": None},
                        "b2a": {...}}}

Every model family writes it (`cyclestyle.models.base`), every foreign-format adapter makes one
(`cyclestyle.adapters`), and `cyclestyle.checkpoints` rebuilds networks from it. This module sits
below all of them: it imports nothing of cyclestyle but the networks (for the legacy check). Checkpoints written before the
record existed (CycleGAN: `hyper_parameters.generator`, weights under `g_a.` / `g_b.`) are read as
the record they would have had.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

RECORD_KEY = "cyclestyle"
FORMAT = 1
BUILDER_PACKAGE = "cyclestyle.networks"  # a record may name builders from here only: it is data, not code
CYCLEGAN_BUILDER = "cyclestyle.networks:build_generator"  # CycleGAN's generators, and the reference's
DIRECTIONS = ("a2b", "b2a")
DIRECTION_NAMES = {"a2b": "A→B", "b2a": "B→A"}


@dataclass(frozen=True)
class TranslatorSpec:
    """How to rebuild one direction's network for inference, from the checkpoint alone."""

    module: str  # the LightningModule attribute holding the network: its state-dict prefix
    builder: str  # "cyclestyle.package.module:callable" -> nn.Module mapping (B, 3, H, W) images in [-1, 1]
    kwargs: dict = field(default_factory=dict)  # the builder's keyword arguments
    size_multiple: int = 4  # input height and width must be multiples of this
    fixed_size: int | None = None  # the network takes only fixed_size x fixed_size inputs (translate tiles)
    # None: net(x). A style-conditioned network takes a second input that `translate` binds once
    # (its style options) before running: "style_mix" = net(x, mix), mix (B, n_styles) weights;
    # "style_image" = net(x, style), style images or their encoded statistics (see the family).
    condition: str | None = None


def describe_directions(directions) -> str:
    """("a2b", "b2a") -> "A→B and B→A"."""
    return " and ".join(DIRECTION_NAMES.get(d, d) for d in directions)


@dataclass(frozen=True)
class Record:
    family: str
    translators: dict[str, TranslatorSpec]

    def spec(self, direction: str, *, source: str) -> TranslatorSpec:
        """The translator for `direction`; an unknown direction is an error, never another network."""
        if direction not in self.translators:
            raise ValueError(f"{source}: this {self.family} model translates {describe_directions(self.translators)} "
                             f"only; --direction {direction} is not available")
        return self.translators[direction]


def make_record(family: str, translators: dict[str, TranslatorSpec]) -> dict:
    """The record as it is stored in a checkpoint (plain data)."""
    from . import __version__

    return {"format": FORMAT, "family": family, "version": __version__,
            "translators": {d: dataclasses.asdict(spec) for d, spec in translators.items()}}


def new_checkpoint(family: str, translators: dict[str, TranslatorSpec], state_dict: dict, hyper_parameters: dict,
                   **extra) -> dict:
    """A weights-only checkpoint (no optimizer state): translates, and fine-tunes with `ckpt_path=`."""
    import pytorch_lightning as pl

    return {"state_dict": state_dict, "hyper_parameters": hyper_parameters, "epoch": 0, "global_step": 0,
            "pytorch-lightning_version": pl.__version__, RECORD_KEY: make_record(family, translators), **extra}


def read_record(checkpoint: Any, *, source: str) -> Record:
    """The record of a cyclestyle checkpoint (also of one written before records existed)."""
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{source}: not a cyclestyle checkpoint")
    raw = checkpoint.get(RECORD_KEY)
    if raw is None:
        return _legacy_record(checkpoint, source)
    if not isinstance(raw, dict) or not isinstance(raw.get("translators"), dict) or raw.get("format", 0) > FORMAT:
        raise ValueError(f"{source}: its '{RECORD_KEY}' record is unreadable or from a newer cyclestyle "
                         f"(format {raw.get('format') if isinstance(raw, dict) else '?'}; this one reads {FORMAT})")
    fields = {f.name for f in dataclasses.fields(TranslatorSpec)}
    translators = {}
    for direction, entry in raw["translators"].items():
        if not isinstance(entry, dict) or not fields >= set(entry) or "module" not in entry or "builder" not in entry:
            raise ValueError(f"{source}: the record's {direction} translator is malformed: {entry!r}")
        translators[direction] = TranslatorSpec(**entry)
    return Record(family=str(raw.get("family", "?")), translators=translators)


def _legacy_record(checkpoint: dict, source: str) -> Record:
    """CycleGAN checkpoints of cyclestyle 0.1 before the record: generator settings in hparams."""
    import inspect

    from .networks import UNET_LEVELS, build_generator

    hparams = checkpoint.get("hyper_parameters") or {}
    saved = hparams.get("generator") if isinstance(hparams, dict) else None
    if "state_dict" not in checkpoint or not isinstance(saved, dict):
        raise ValueError(f"{source}: not a cyclestyle checkpoint (no '{RECORD_KEY}' record, no "
                         f"hyper_parameters.generator)")
    known = inspect.signature(build_generator).parameters
    unknown = sorted(map(str, set(saved) - set(known)))
    if unknown:
        raise ValueError(f"{source}: hyper_parameters.generator has unknown setting(s) {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(known))})")
    kwargs = {k: v for k, v in saved.items() if k not in ("init_type", "init_gain")}
    name = kwargs.get("name", "resnet_9blocks")
    multiple = int(name.removeprefix("unet_")) if name in UNET_LEVELS else 4  # a U-Net halves its input per level
    return Record(family="cyclegan", translators={
        direction: TranslatorSpec(module=module, builder=CYCLEGAN_BUILDER, kwargs=kwargs, size_multiple=multiple)
        for direction, module in (("a2b", "g_a"), ("b2a", "g_b"))})
