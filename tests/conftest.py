"""Shared fixtures: tiny image folders and the real Hydra configs composed for tiny runs."""
from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "offline")

from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict
from PIL import Image


TINY_GENERATOR = {"name": "resnet_6blocks", "ngf": 8, "norm": "instance", "dropout": False}


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    """A weights-only cyclestyle checkpoint (what import-reference writes) of two tiny random generators."""
    import torch

    from cyclestyle.networks import build_generator

    torch.manual_seed(0)
    state = {f"{prefix}.{k}": v for prefix in ("g_a", "g_b")
             for k, v in build_generator(**TINY_GENERATOR).state_dict().items()}
    path = tmp_path_factory.mktemp("model") / "tiny.ckpt"
    torch.save({"state_dict": state, "hyper_parameters": {"generator": TINY_GENERATOR}, "epoch": 0, "global_step": 0},
               path)
    return path


def write_images(folder: Path, count: int, *, size: tuple[int, int] = (40, 40), seed: int = 0, tint: int = 0) -> list[Path]:
    """`count` smooth random RGB PNGs (so a network can learn something from them)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize(size, Image.BICUBIC)
        if tint:
            image = Image.fromarray(np.clip(np.asarray(image).astype(int) + tint, 0, 255).astype(np.uint8))
        path = folder / f"img_{i:03d}.png"
        image.save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def module_folders(tmp_path_factory) -> tuple[Path, Path]:
    """The same two domains as `folders`, shared by a module's tests (for module-scoped fits)."""
    root = tmp_path_factory.mktemp("domains")
    write_images(root / "A", 8, seed=1)
    write_images(root / "B", 6, seed=2, tint=60)
    return root / "A", root / "B"


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """Two unpaired domains: 8 images in A, 6 (brighter) in B; 2 and 1 of them are held out."""
    a, b = tmp_path / "A", tmp_path / "B"
    write_images(a, 8, seed=1)
    write_images(b, 6, seed=2, tint=60)
    return a, b


TINY_RUN = [
    "data.load_size=36", "data.crop_size=32", "data.num_workers=0", "data.persistent_workers=false", "data.num_val=2",
    "logger=none", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
    "model.metrics.num_images=0",  # FID/KID: tests that want them inject tiny_features.TinyFeatures
]
# Per model family: the smallest networks that still train on 32 px crops. The contract test
# (tests/test_families.py) runs every family listed here: a new family adds one line.
FAMILY_TINY = {
    "cyclegan": ["model=cyclegan", "model.generator.name=resnet_6blocks", "model.generator.ngf=8",
                 "model.discriminator.ndf=8"],
    # full mode (img_size = the 32 px crop); shallower discriminators: the official 7-layer one needs 96 px
    "ugatit": ["model=ugatit", "model.generator.ngf=8", "model.generator.n_blocks=1", "model.discriminator.ndf=4",
               "model.discriminator.global_layers=5", "model.discriminator.local_layers=4"],
    "cut": ["model=cut", "model.generator.n_blocks=6", "model.generator.ngf=8", "model.discriminator.ndf=8"],
    "fastcut": ["model=fastcut", "model.generator.n_blocks=6", "model.generator.ngf=8", "model.discriminator.ndf=8"],
    # a random VGG: plumbing only (tests/test_fast_style.py trains with the real one)
    "fast_style": ["model=fast_style", "model.network.channels=4", "model.network.n_blocks=1", "model.vgg.weights=null",
                   "model.style_size=32", "model.styles=[builtin:mosaic]"],
    "multi_style": ["model=multi_style", "model.network.channels=4", "model.network.n_blocks=1",
                    "model.vgg.weights=null", "model.style_size=32", "model.styles=[builtin:mosaic,builtin:swirls]"],
    "adain": ["model=adain", "model.encoder.weights=null"],  # a random VGG: plumbing (test_adain.py trains the real one)
}
# Families that learn from content photos alone train on data=content (folder A) and have no FID/KID
# (TINY_RUN's model.metrics is left out). Style-conditioned families: the translate/export options that
# pick the style their own forward(x) uses.
ONE_DOMAIN = {"fast_style", "multi_style"}
STYLE_OPTIONS = {"multi_style": ["--style-index", "0"], "adain": ["--style", "builtin:mosaic", "--style-size", "32"]}


def family_overrides(family: str, a, b) -> list[str]:
    """The data, tiny-run and family overrides of a contract-test run of `family` on folders a, b."""
    if family in ONE_DOMAIN:
        run = [o for o in TINY_RUN if not o.startswith("model.metrics.")]
        return ["data=content", f"data.content={a}", *run, *FAMILY_TINY[family]]
    return ["data=folders", f"data.a={a}", f"data.b={b}", *TINY_RUN, *FAMILY_TINY[family]]
TINY = [*TINY_RUN, *FAMILY_TINY["cyclegan"]]


def compose_config(overrides: list[str], output_dir: Path) -> DictConfig:
    """The real `train` config with `overrides`, outside a Hydra run (paths.output_dir set)."""
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="cyclestyle.configs", version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=False)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg


@pytest.fixture
def tiny_cfg(folders, tmp_path):
    """Factory: a tiny CPU run on `folders` with extra overrides."""
    a, b = folders

    def make(*extra: str) -> DictConfig:
        overrides = ["data=folders", f"data.a={a}", f"data.b={b}", *TINY, *extra]
        return compose_config(overrides, tmp_path / "out")

    return make
