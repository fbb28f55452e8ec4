"""The composed training config's numbers, checked before anything is built: a value typed wrong
(`data.batch_size=0`, `trainer.max_steps=-5`, `data.crop_size=abc`) is one line naming the setting
and the value, not a traceback from deep inside Lightning or a DataLoader minutes later."""
from __future__ import annotations

from typing import Callable

from omegaconf import DictConfig, OmegaConf

_ABSENT = object()

# setting -> (what it must be, the test); integers only (True/False are not numbers here).
RULES: dict[str, tuple[str, Callable[[int], bool]]] = {
    "trainer.max_steps": ("-1 (no limit) or an integer >= 1", lambda v: v == -1 or v >= 1),
    "trainer.max_epochs": ("-1 (no limit) or an integer >= 1", lambda v: v == -1 or v >= 1),
    "trainer.log_every_n_steps": ("an integer >= 1", lambda v: v >= 1),
    "data.batch_size": ("an integer >= 1", lambda v: v >= 1),
    "data.num_workers": ("an integer >= 0", lambda v: v >= 0),
    "data.load_size": ("an integer >= 1 (pixels)", lambda v: v >= 1),
    "data.crop_size": ("an integer >= 1 (pixels)", lambda v: v >= 1),
    "data.num_val": ("an integer >= 1", lambda v: v >= 1),
    "seed": ("an integer", lambda v: True),
}
CROPS_OF_LOADED = ("resize_and_crop", "scale_width_and_crop")  # modes that crop the image resized to load_size


def check_config(cfg: DictConfig) -> None:
    """ValueError naming the first setting whose value cannot be right."""
    for key, (expected, ok) in RULES.items():
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        if value is _ABSENT or (value is None and key == "trainer.max_epochs"):
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not ok(value):
            raise ValueError(f"{key}={value!r}: must be {expected}")
    load, crop = OmegaConf.select(cfg, "data.load_size"), OmegaConf.select(cfg, "data.crop_size")
    preprocess = OmegaConf.select(cfg, "data.preprocess", default="resize_and_crop")
    if load is not None and crop is not None and crop > load and preprocess in CROPS_OF_LOADED:
        raise ValueError(f"data.crop_size={crop} is larger than data.load_size={load}: the crop is taken from the "
                         f"image resized to load_size (preprocess={preprocess}); lower crop_size or raise load_size")
