"""Shared fixtures: tiny image folders and the real Hydra configs composed for tiny runs; every test
starts from, and leaves, the same process-wide torch settings (`torch_globals_restored`)."""
from __future__ import annotations

import contextlib
import os
import sys

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

# Process-wide torch settings that code under test may change (cyclestyle's own compile paths set
# inductor_config.freezing and fx_graph_cache, train() the fp32 matmul precision, keep_compile_caches()
# TORCHINDUCTOR_CACHE_DIR): without a reset, a test's outcome depends on which tests ran before it.
TORCH_CONFIGS = ("torch._inductor.config", "torch._dynamo.config", "torch._functorch.config")
# Settings a library makes once, when it is first imported (a registration, not a test's change):
# undoing it would leave every later test without it, unlike any real process. torchao's x86 quantizer
# (imported by `translate --precision int8`) installs its quant lift-up pass as Inductor's pre-grad pass.
IMPORT_TIME_SETTINGS = {
    "torchao.quantization.pt2e.quantizer.x86_inductor_quantizer": [("torch._inductor.config", "pre_grad_custom_pass")],
}


def _torch_scalars() -> tuple:
    import torch

    return (torch.get_num_threads(), torch.get_default_dtype(), torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(), torch.is_grad_enabled(),
            torch.get_float32_matmul_precision())


def _set_torch_scalars(scalars: tuple) -> None:
    import torch

    threads, dtype, deterministic, warn_only, grad, matmul = scalars
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    torch.set_default_dtype(dtype)
    torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
    torch.set_grad_enabled(grad)
    torch.set_float32_matmul_precision(matmul)


@contextlib.contextmanager
def torch_globals_restored():
    """Snapshot torch's config modules (Inductor, Dynamo, AOTAutograd), the TORCHINDUCTOR_* environment
    and torch's global scalars (threads, default dtype, deterministic algorithms, grad mode, matmul
    precision), and on exit put back whatever was changed (~2 ms)."""
    import importlib

    configs = [importlib.import_module(name) for name in TORCH_CONFIGS]
    saved = [config.get_config_copy() for config in configs]
    imported = {module for module in IMPORT_TIME_SETTINGS if module in sys.modules}
    environment = {k: v for k, v in os.environ.items() if k.startswith("TORCHINDUCTOR_")}
    scalars = _torch_scalars()
    try:
        yield
    finally:
        registered = {setting for module, settings in IMPORT_TIME_SETTINGS.items()
                      if module not in imported and module in sys.modules for setting in settings}
        for config, before in zip(configs, saved):
            now = config.get_config_copy()
            changed = {k: v for k, v in before.items() if now.get(k) is not v and now.get(k) != v}
            # `del config.key` (unittest.mock.patch's restore path) hides a key until it is set again
            changed.update({k: before[k] for k, entry in getattr(config, "_config", {}).items()
                            if getattr(entry, "hide", False) and k in before})
            for key in [k for k in changed if (config.__name__, k) in registered]:
                del changed[key]
            if changed:
                config.load_config(changed)
        for k in [k for k in os.environ if k.startswith("TORCHINDUCTOR_") and k not in environment]:
            del os.environ[k]
        os.environ.update(environment)
        if _torch_scalars() != scalars:
            _set_torch_scalars(scalars)


@pytest.fixture(autouse=True, scope="module")
def _isolated_torch_globals_per_module():
    """Module-scoped fixtures (a trained checkpoint, a compiled or int8 generator) are set up before any
    function-scoped snapshot: what they change is put back when their module ends."""
    with torch_globals_restored():
        yield


@pytest.fixture(autouse=True)
def _isolated_torch_globals():
    """Every test starts from, and leaves, the same process-wide torch settings."""
    with torch_globals_restored():
        yield


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


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A real last.ckpt of a tiny 2-iteration run (resnet_6blocks, ngf 8), trained once per module."""
    from cyclestyle.train import train

    root = tmp_path_factory.mktemp("ckpt")
    write_images(root / "A", 4, seed=1)
    write_images(root / "B", 4, seed=2, tint=60)
    cfg = compose_config(["data=folders", f"data.a={root / 'A'}", f"data.b={root / 'B'}", *TINY,
                          "trainer.max_steps=2", "callbacks=none",
                          "+callbacks.last_checkpoint._target_=cyclestyle.callbacks.LastCheckpoint",
                          f"+callbacks.last_checkpoint.dirpath={root}"],
                         root / "out")
    train(cfg)
    return root / "last.ckpt"


@pytest.fixture
def tiny_cfg(folders, tmp_path):
    """Factory: a tiny CPU run on `folders` with extra overrides."""
    a, b = folders

    def make(*extra: str) -> DictConfig:
        overrides = ["data=folders", f"data.a={a}", f"data.b={b}", *TINY, *extra]
        return compose_config(overrides, tmp_path / "out")

    return make


def flip_middle(source: Path, target: Path) -> Path:
    """A copy of `source` with 16 bytes in its middle inverted (what a bad disk or copy does)."""
    data = bytearray(source.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 16] = bytes(b ^ 0xFF for b in data[middle:middle + 16])
    target.write_bytes(bytes(data))
    return target


@pytest.fixture
def small_disk(tmp_path):
    """Factory: mount(kb) -> a fresh tmpfs of that size (a disk that fills up), and resize(kb). Needs
    root (mount); skips with the reason otherwise. Unmounted at the end."""
    import subprocess

    mounted = []

    def mount(kb: int) -> Path:
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kb}k", "tmpfs", str(folder)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs here (needs root): {result.stderr.strip()}")
        mounted.append(folder)
        return folder

    def resize(folder: Path, kb: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={kb}k", str(folder)], check=True)

    mount.resize = resize
    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


class S3Server:
    """A local S3-compatible server (moto's server mode, in this process) that a test can stop and
    start again on the same port: moto keeps buckets and objects in this process, so what was stored
    before the stop is there after it, as on a real store that went away for a while."""

    def __init__(self) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server = None

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def reset(self) -> None:
        import urllib.request

        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")).close()

    def keys(self, bucket: str) -> list[str]:
        import boto3

        listing = boto3.client("s3").list_objects_v2(Bucket=bucket)
        return sorted(o["Key"] for o in listing.get("Contents", []))

    def read(self, bucket: str, key: str) -> bytes:
        import boto3

        return boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


@pytest.fixture
def s3_server(monkeypatch):
    """An `S3Server` with an empty bucket `photos`, the AWS_* variables pointing at it."""
    boto3 = pytest.importorskip("boto3")
    pytest.importorskip("moto.server")
    server = S3Server()
    server.start()
    server.reset()  # moto keeps its store per process: start empty, whatever earlier tests stored
    for name, value in {"AWS_ENDPOINT_URL": server.endpoint, "AWS_ACCESS_KEY_ID": "test",
                        "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    boto3.client("s3").create_bucket(Bucket="photos")
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server) -> str:
    return "s3://photos"
