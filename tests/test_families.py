"""The model-family contract, for every `model=` option (conftest.FAMILY_TINY lists them): a short
fit from two folders writes a self-describing checkpoint; resume continues exactly; `translate`
runs every direction from the checkpoint alone; ONNX export matches PyTorch; DDP keeps ranks equal."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import open_dict
from PIL import Image

from cli_runs import cyclestyle
from conftest import FAMILY_TINY, STYLE_OPTIONS, compose_config, family_overrides, write_images

FAMILIES = sorted(FAMILY_TINY)


def family_cfg(family: str, a, b, out, *extra: str):
    return compose_config([*family_overrides(family, a, b), *extra], out)


def bound(family: str, net, condition):
    """A style-conditioned network bound as `translate` binds it with the family's STYLE_OPTIONS."""
    from cyclestyle.commands.translate import build_parser, options_from
    from cyclestyle.inference.api import read_option_styles, style_binding

    args = build_parser().parse_args(["model", "input", "--output", "out", *STYLE_OPTIONS.get(family, [])])
    options = options_from(args)
    return style_binding(options, read_option_styles(options))(net, condition)


def expected(family: str, model, direction: str, x: torch.Tensor) -> torch.Tensor:
    """What translate gives for x: model(x, direction), or for a style-image family (AdaIN, whose model
    has no style of its own) its network bound to the family's STYLE_OPTIONS."""
    spec = model.translators[direction]
    if spec.condition != "style_image":
        return model(x, direction)
    return bound(family, getattr(model, spec.module), spec.condition)(x)


@pytest.fixture(scope="module")
def data(module_folders):
    return module_folders


@pytest.fixture(scope="module", params=FAMILIES)
def trained(request, data, tmp_path_factory):
    """(family, model, last.ckpt) after a 3-iteration fit."""
    from cyclestyle.train import train

    out = tmp_path_factory.mktemp(request.param)
    _, model = train(family_cfg(request.param, *data, out, "trainer.max_steps=3"))
    return request.param, model.cpu().eval(), out / "checkpoints" / "last.ckpt"


def test_a_checkpoint_records_its_family_and_how_to_rebuild_each_translator(trained):
    from cyclestyle.checkpoints import build_translator
    from cyclestyle.record import read_record

    family, model, ckpt = trained
    checkpoint = torch.load(ckpt, weights_only=True)
    record = read_record(checkpoint, source=str(ckpt))
    assert record.family == family == model.family
    assert set(record.translators) == set(model.translators)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    for direction in record.translators:
        net, spec = build_translator(checkpoint, direction, source=str(ckpt))
        assert spec.size_multiple == model.translators[direction].size_multiple
        net = bound(family, net, spec.condition)
        with torch.no_grad():
            torch.testing.assert_close(net(x), expected(family, model, direction, x))


def test_an_unknown_direction_is_an_error_not_another_network(trained):
    from cyclestyle.checkpoints import build_translator

    _, model, ckpt = trained
    with pytest.raises(ValueError, match="translates"):
        model(torch.zeros(1, 3, 32, 32), "a2c")
    with pytest.raises(ValueError, match="--direction a2c is not available"):
        build_translator(torch.load(ckpt, weights_only=True), "a2c", source=str(ckpt))


def test_translate_runs_every_direction_from_the_checkpoint_alone(trained, tmp_path):
    from cyclestyle.commands.translate import main as translate_main

    family, model, ckpt = trained
    write_images(tmp_path / "in", 2, size=(32, 32), seed=5)
    for direction in model.translators:
        out = tmp_path / direction
        assert translate_main([str(ckpt), str(tmp_path / "in"), "--output", str(out), "--direction", direction,
                               "--precision", "32", "--workers", "0", "--no-progress", *STYLE_OPTIONS.get(family, [])]) == 0
        for source in sorted((tmp_path / "in").iterdir()):
            x = torch.from_numpy(np.asarray(Image.open(source).convert("RGB")).copy()).permute(2, 0, 1)[None]
            with torch.no_grad():
                want = ((expected(family, model, direction, x.float() / 127.5 - 1).clamp(-1, 1) + 1) * 127.5).round()
            name = source.name  # AdaIN names its outputs <input>__<style> (the builtin:NAME of STYLE_OPTIONS)
            if model.translators[direction].condition == "style_image":
                name = f"{source.stem}__{STYLE_OPTIONS[family][1].split(':')[-1]}{source.suffix}"
            got = np.asarray(Image.open(out / name)).astype(np.int16)
            assert np.abs(got - want[0].permute(1, 2, 0).numpy().astype(np.int16)).max() <= 1


def test_onnx_export_matches_pytorch(trained, tmp_path):
    pytest.importorskip("onnxruntime")
    from cyclestyle.commands.export import main as export_main
    from cyclestyle.inference import load_generator

    family, model, ckpt = trained
    for direction, spec in model.translators.items():
        if spec.condition == "style_image":
            continue  # content and style are two inputs there: tests/test_adain.py checks those files
        out = tmp_path / f"{direction}.onnx"
        assert export_main([str(ckpt), "--format", "onnx", "--direction", direction, "--output", str(out),
                            *STYLE_OPTIONS.get(family, [])]) == 0
        side = spec.fixed_size or 36
        x = torch.rand(2, 3, side, spec.fixed_size or 60) * 2 - 1
        with torch.no_grad():
            want = model(x, direction)
        assert (load_generator(out)(x) - want).abs().max() <= 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_resume_continues_exactly_with_dataloader_workers(family, data, tmp_path):
    from cyclestyle.train import train

    def run(out, steps, ckpt_path=None):
        cfg = family_cfg(family, *data, out, f"trainer.max_steps={steps}", "data.num_workers=2",
                         "data.persistent_workers=true", "trainer.val_check_interval=1000")
        with open_dict(cfg):
            cfg.ckpt_path = ckpt_path
        trainer, model = train(cfg)
        assert trainer.global_step == steps
        return model

    whole = run(tmp_path / "whole", 5)
    run(tmp_path / "first", 3)
    resumed = run(tmp_path / "second", 5, str(tmp_path / "first" / "checkpoints" / "last.ckpt"))
    assert not torch.equal(whole.state_dict()[next(iter(whole.translators.values())).module + "." +
                                              next(iter(getattr(whole, next(iter(whole.translators.values())).module)
                                                        .state_dict()))], torch.zeros(()))
    for (name, p), q in zip(resumed.state_dict().items(), whole.state_dict().values()):
        assert torch.equal(p, q), name


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_two_process_ddp_ends_with_identical_weights(family, data, tmp_path):
    out, probe = tmp_path / "run", tmp_path / "probe"
    a, b = data
    result = cyclestyle("train", *family_overrides(family, a, b),
                        f"paths.output_dir={out}", "trainer=ddp_cpu", "trainer.max_steps=2", "trainer.accelerator=cpu",
                        "+callbacks.probe._target_=ddp_probe.SaveRankWeights", f"+callbacks.probe.out_dir={probe}")
    assert result.returncode == 0, result.stderr[-4000:]
    ranks = [torch.load(probe / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [r["global_step"] for r in ranks] == [2, 2]
    for name, tensor in ranks[0]["state_dict"].items():
        assert torch.equal(tensor, ranks[1]["state_dict"][name]), name


def _legacy(checkpoint: dict) -> dict:
    """The checkpoint as cyclestyle wrote it before the record existed (CycleGAN only)."""
    from cyclestyle.record import RECORD_KEY

    return {k: v for k, v in checkpoint.items() if k != RECORD_KEY}


def test_checkpoints_in_the_layout_before_the_record_still_translate_resume_and_fine_tune(data, tmp_path):
    from cyclestyle.commands.translate import main as translate_main
    from cyclestyle.train import train

    _, model = train(family_cfg("cyclegan", *data, tmp_path / "old", "trainer.max_steps=2"))
    full = _legacy(torch.load(tmp_path / "old" / "checkpoints" / "last.ckpt", weights_only=True))
    assert "cyclestyle" not in full and "g_a.model.1.weight" in full["state_dict"]
    torch.save(full, tmp_path / "old.ckpt")
    write_images(tmp_path / "in", 1, size=(32, 32))
    for direction in ("a2b", "b2a"):
        assert translate_main([str(tmp_path / "old.ckpt"), str(tmp_path / "in"), "--output", str(tmp_path / direction),
                               "--direction", direction, "--workers", "0", "--no-progress"]) == 0
    cfg = family_cfg("cyclegan", *data, tmp_path / "resumed", "trainer.max_steps=3")
    with open_dict(cfg):
        cfg.ckpt_path = str(tmp_path / "old.ckpt")
    trainer, _ = train(cfg)
    assert trainer.global_step == 3  # resumed at 2
    weights_only = {"state_dict": {k: v for k, v in full["state_dict"].items() if k.startswith(("g_a.", "g_b."))},
                    "hyper_parameters": {"generator": dict(full["hyper_parameters"]["generator"])},
                    "epoch": 0, "global_step": 0}  # what import-reference wrote
    torch.save(weights_only, tmp_path / "imported.ckpt")
    cfg = family_cfg("cyclegan", *data, tmp_path / "tuned", "trainer.max_steps=1")
    with open_dict(cfg):
        cfg.ckpt_path = str(tmp_path / "imported.ckpt")
    trainer, tuned = train(cfg)
    assert trainer.global_step == 1  # fine-tuning starts at 0


@pytest.mark.parametrize("family, pooled, default_size", [("cyclegan", ("A", "B"), 50), ("ugatit", ("A", "B"), 0),
                                                          ("cut", ("B",), 0), ("fastcut", ("B",), 0)])
def test_the_gan_base_keeps_each_familys_pools_and_checks_its_loss_weights(family, pooled, default_size):
    """Pools, their seeds and the loss-weight check live once in GANModel: each family still pools the
    domains its discriminators judge, with its paper's default size, and a negative weight names its setting."""
    from cyclestyle.models import CUT, UGATIT, CycleGAN, FastCUT

    cls = {"cyclegan": CycleGAN, "ugatit": UGATIT, "cut": CUT, "fastcut": FastCUT}[family]
    tiny = {"generator": {"ngf": 4, "n_blocks": 1} if family != "cyclegan" else {"name": "resnet_6blocks", "ngf": 4},
            "discriminator": {"ndf": 4}}
    if family == "ugatit":
        tiny = {"generator": {"ngf": 4, "n_blocks": 1, "img_size": 32, "light": True},
                "discriminator": {"ndf": 4, "global_layers": 5, "local_layers": 3}}
    model = cls(**tiny)
    assert tuple(model.pools) == pooled and {p.size for p in model.pools.values()} == {default_size}
    model = cls(**tiny, pool_size=2, seed=7)
    assert {p.size for p in model.pools.values()} == {2} and model.hparams["pool_size"] == 2
    weight = {"cyclegan": "lambda_a", "ugatit": "lambda_cam", "cut": "lambda_nce", "fastcut": "lambda_gan"}[family]
    with pytest.raises(ValueError, match=rf"model\.{weight} must be >= 0"):
        cls(**tiny, **{weight: -1.0})
