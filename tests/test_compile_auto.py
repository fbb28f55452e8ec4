"""`model.compile: auto` and the on-disk Inductor caches (`cyclestyle.compiling`)."""
import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch._functorch.config as functorch_config
import torch._inductor.config as inductor_config
from omegaconf import open_dict
from torch.utils.data import DataLoader

from cyclestyle.compiling import MIN_ITERATIONS, cache_dir, check_setting, keep_compile_caches, resolve_compile
from cyclestyle.models import CycleGAN
from cyclestyle.train import train

from conftest import compose_config, family_overrides

CPU, GPU = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize("iterations, device, expected", [
    (500, CPU, False),  # the demo's length: too short on the CPU
    (MIN_ITERATIONS["cpu"], CPU, True),
    (200 * 1000, CPU, True),  # the reference schedule: 200 epochs of ~1000 images
    (math.inf, CPU, True),  # no limit (max_steps=-1 with a stream)
    (None, CPU, False),  # unknown length
    (5_000, GPU, False),  # long on a CPU, short on a GPU
    (200 * 1000, GPU, True),
])
def test_auto_compiles_runs_long_enough_for_their_device(iterations, device, expected):
    chosen, why = resolve_compile("auto", iterations=iterations, device=device)
    assert chosen is expected
    assert why.startswith("model.compile=auto: " + ("compiling" if expected else "not compiling"))


@pytest.mark.parametrize("setting", [True, False, "true", "False"])
def test_explicit_settings_are_kept_whatever_the_length(setting):
    expected = str(setting).lower() == "true"
    for iterations in (1, 10**9, None):
        assert resolve_compile(setting, iterations=iterations, device=CPU)[0] is expected


@pytest.mark.parametrize("bad", ["yes", 1, None, "on"])
def test_unknown_settings_are_refused_naming_the_setting(bad):
    with pytest.raises(ValueError, match="model.compile="):
        check_setting(bad)


def test_caches_go_to_the_user_cache_folder_and_are_on(monkeypatch, tmp_path):
    for name in ("TORCHINDUCTOR_CACHE_DIR", "TORCHINDUCTOR_FX_GRAPH_CACHE", "TORCHINDUCTOR_AUTOGRAD_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(inductor_config, "fx_graph_cache", False)
    monkeypatch.setattr(functorch_config, "enable_autograd_cache", False)
    folder = keep_compile_caches()
    assert folder == tmp_path / "cyclestyle" / "inductor"
    from torch._inductor.runtime.cache_dir_utils import cache_dir as inductor_cache_dir

    assert Path(inductor_cache_dir()) == folder  # what Inductor itself will use
    assert inductor_config.fx_graph_cache and functorch_config.enable_autograd_cache


def test_a_chosen_cache_folder_and_disabled_caches_are_respected(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    monkeypatch.setenv("TORCHINDUCTOR_FX_GRAPH_CACHE", "0")
    monkeypatch.setattr(inductor_config, "fx_graph_cache", False)
    assert keep_compile_caches() == cache_dir() == tmp_path / "mine"
    assert inductor_config.fx_graph_cache is False


def tiny_model(compile) -> CycleGAN:
    torch.manual_seed(0)
    return CycleGAN(generator=dict(name="resnet_6blocks", ngf=8), discriminator=dict(ndf=8), compile=compile,
                    scheduler={"unit": "iteration", "constant": 100, "decay": 100})


def batches(n: int, size: int = 32) -> list[dict]:
    g = torch.Generator().manual_seed(1)
    return [{"A": torch.rand(1, 3, size, size, generator=g) * 2 - 1,
             "B": torch.rand(1, 3, size, size, generator=g) * 2 - 1} for _ in range(n)]


def fit(model: CycleGAN, data: list[dict], **limits) -> pl.Trainer:
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, **limits)
    trainer.fit(model, DataLoader(data, batch_size=None))
    return trainer


@pytest.fixture
def compiled(monkeypatch, tmp_path):
    """Names of the networks `setup` compiles (nothing is really compiled); caches kept in tmp_path."""
    names = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda net, **kw: names.append(type(net).__name__))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    return names


def test_auto_counts_max_steps(compiled, monkeypatch):
    monkeypatch.setitem(MIN_ITERATIONS, "cpu", 3)
    fit(tiny_model("auto"), batches(2), max_steps=2)
    assert compiled == []
    fit(tiny_model("auto"), batches(3), max_steps=3)
    assert sorted(compiled) == ["NLayerDiscriminator"] * 2 + ["ResnetGenerator"] * 2


def test_auto_counts_epochs_times_batches(compiled, monkeypatch):
    monkeypatch.setitem(MIN_ITERATIONS, "cpu", 6)
    fit(tiny_model("auto"), batches(2), max_epochs=2)  # 4 iterations
    assert compiled == []
    fit(tiny_model("auto"), batches(2), max_epochs=3)  # 6
    assert len(compiled) == 4


def test_false_never_compiles_and_true_always(compiled):
    fit(tiny_model(False), batches(1), max_steps=1)
    assert compiled == []
    fit(tiny_model(True), batches(1), max_steps=1)
    assert len(compiled) == 4


@pytest.mark.parametrize("family", ["cyclegan", "ugatit", "cut", "fastcut"])
def test_every_gan_family_defaults_to_auto_and_a_short_cpu_run_stays_eager(family, compiled, monkeypatch, folders,
                                                                            tmp_path):
    """The real configs leave model.compile at auto; a 1-iteration CPU fit is far too short to repay
    compiling, so nothing is compiled, and the same run past the threshold compiles (auto is decided
    at on_train_start from the run's length, not fixed to false)."""
    cfg = compose_config([*family_overrides(family, *folders), "trainer.max_steps=1"], tmp_path / "short")
    _, model = train(cfg)
    assert model.compile_networks == "auto"
    assert compiled == []
    monkeypatch.setitem(MIN_ITERATIONS, "cpu", 1)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "long")
    train(cfg)
    assert len(compiled) >= 2  # at least the generator and the discriminator


def test_the_default_torch_writes_into_the_environment_is_not_taken_for_a_choice(monkeypatch, tmp_path):
    """Importing torch._inductor sets TORCHINDUCTOR_CACHE_DIR=/tmp/torchinductor_<user> itself; before
    this was recognised every run cached in /tmp (wiped at reboot) instead of the user cache folder."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "cyclestyle" / "inductor"


COMPILE_ONCE = """
import json, torch
from torch._dynamo.utils import counters
from cyclestyle.compiling import keep_compile_caches
from cyclestyle.networks.resnet import ResnetGenerator

keep_compile_caches()
torch.manual_seed(0)
net = ResnetGenerator(ngf=4, n_blocks=1).eval()
x = torch.randn(1, 3, 32, 32)
with torch.no_grad():
    eager, compiled = net(x), torch.compile(net)(x)
print(json.dumps({"difference": (eager - compiled).abs().max().item(),
                  "hits": counters["inductor"]["fxgraph_cache_hit"]}))
"""


@pytest.mark.slow
def test_two_first_compiles_sharing_a_fresh_cache_both_work_and_leave_it_usable(tmp_path):
    """Issue 23.4: Inductor publishes cache entries atomically under its own locks; two processes
    filling one fresh cache folder at once both compile, and a third then reads their entries."""
    import json
    import subprocess
    import sys

    from cli_runs import env

    environment = {**env(), "XDG_CACHE_HOME": str(tmp_path)}
    for name in ("TORCHINDUCTOR_CACHE_DIR", "TORCHINDUCTOR_FX_GRAPH_CACHE", "TORCHINDUCTOR_AUTOGRAD_CACHE"):
        environment.pop(name, None)

    def start():
        return subprocess.Popen([sys.executable, "-c", COMPILE_ONCE], env=environment, cwd=tmp_path, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def result(process) -> dict:
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-3000:]
        return json.loads(out.strip().splitlines()[-1])

    first = [result(p) for p in [start(), start()]]  # at the same time, into the same empty folder
    assert all(r["difference"] < 1e-4 for r in first)
    assert (tmp_path / "cyclestyle" / "inductor").is_dir()
    warm = result(start())
    assert warm["difference"] < 1e-4 and warm["hits"] >= 1  # the shared entries are whole and used
