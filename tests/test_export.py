"""`cyclestyle export` (ONNX, TorchScript) and `cyclestyle import-reference` (+ fine-tuning from it)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cyclestyle.commands.export import main as export_main
from cyclestyle.commands.import_reference import main as import_main
from cyclestyle.commands.translate import main as translate_main
from cyclestyle.inference import load_generator
from cyclestyle.networks import build_discriminator, build_generator
from cyclestyle.train import train

from conftest import write_images


@pytest.mark.parametrize("fmt,suffix", [("onnx", ".onnx"), ("pt2", ".pt2"), ("torchscript", ".pt")])
def test_exported_files_match_pytorch_on_a_non_square_input(checkpoint, tmp_path, fmt, suffix):
    out = tmp_path / f"g{suffix}"
    assert export_main([str(checkpoint), "--format", fmt, "--direction", "b2a", "--output", str(out)]) == 0
    original = load_generator(checkpoint, direction="b2a", precision="32")
    exported = load_generator(out)
    assert exported.size_multiple == 4 and exported.spec["name"] == "resnet_6blocks"
    x = torch.rand(2, 3, 36, 60) * 2 - 1  # another batch size and shape than the export's example
    assert (exported(x) - original(x)).abs().max() < 1e-4


def test_onnx_export_uses_the_dynamo_exporter_and_falls_back_without_onnxscript(checkpoint, tmp_path, monkeypatch):
    import torch.onnx

    calls = []
    real = torch.onnx.export

    def recording(*args, dynamo, **kwargs):
        calls.append(dynamo)
        if dynamo and len(calls) == 2:  # the second export: as without onnxscript
            raise ImportError("No module named 'onnxscript'")
        return real(*args, dynamo=dynamo, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", recording)
    x = torch.rand(1, 3, 28, 44) * 2 - 1
    original = load_generator(checkpoint, precision="32")
    for name in ("dynamo.onnx", "fallback.onnx"):
        assert export_main([str(checkpoint), "--output", str(tmp_path / name)]) == 0
        assert (load_generator(tmp_path / name)(x) - original(x)).abs().max() < 1e-4
    assert calls == [True, True, False]  # dynamo first; the TorchScript-based exporter only without onnxscript


def test_translate_accepts_exported_files(checkpoint, tmp_path):
    write_images(tmp_path / "in", 2, size=(30, 41))
    export_main([str(checkpoint), "--format", "onnx", "--output", str(tmp_path / "g.onnx")])
    export_main([str(checkpoint), "--format", "pt2", "--output", str(tmp_path / "g.pt2")])
    for model, out in ((checkpoint, "ckpt"), (tmp_path / "g.onnx", "onnx"), (tmp_path / "g.pt2", "pt2")):
        assert translate_main([str(model), str(tmp_path / "in"), "--output", str(tmp_path / out), "--precision", "32",
                               "--no-progress"]) == 0
    for path in (tmp_path / "ckpt").iterdir():
        for exported in ("onnx", "pt2"):
            a, b = (np.asarray(Image.open(tmp_path / d / path.name)).astype(int) for d in ("ckpt", exported))
            assert np.abs(a - b).max() <= 1


def _reference_files(tmp_path, *, with_d: bool):
    torch.manual_seed(0)
    nets = {"G_A": build_generator("resnet_6blocks", ngf=8), "G_B": build_generator("resnet_6blocks", ngf=8)}
    if with_d:
        nets.update(D_A=build_discriminator("basic", ndf=8), D_B=build_discriminator("basic", ndf=8))
    paths = {}
    for name, net in nets.items():
        paths[name] = tmp_path / f"latest_net_{name}.pth"
        torch.save(net.state_dict(), paths[name])
    return nets, paths


def test_import_reference_gives_a_checkpoint_translate_runs_both_ways(tmp_path):
    nets, paths = _reference_files(tmp_path, with_d=True)
    ckpt = tmp_path / "model.ckpt"
    assert import_main(["--g-a", str(paths["G_A"]), "--g-b", str(paths["G_B"]), "--d-a", str(paths["D_A"]),
                        "--d-b", str(paths["D_B"]), "--output", str(ckpt)]) == 0
    state = torch.load(ckpt, weights_only=True)
    assert state["hyper_parameters"]["discriminator"]["ndf"] == 8
    assert torch.equal(state["state_dict"]["d_b.model.0.weight"], nets["D_B"].state_dict()["model.0.weight"])
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    for direction, name in (("a2b", "G_A"), ("b2a", "G_B")):
        with torch.no_grad():
            assert torch.allclose(load_generator(ckpt, direction=direction, precision="32")(x), nets[name].eval()(x))


def test_import_reference_refuses_mismatched_generators(tmp_path, capsys):
    _, paths = _reference_files(tmp_path, with_d=False)
    torch.save(build_generator("resnet_9blocks", ngf=8).state_dict(), paths["G_B"])
    assert import_main(["--g-a", str(paths["G_A"]), "--g-b", str(paths["G_B"]), "--output", str(tmp_path / "m.ckpt")]) == 2
    assert "differ" in capsys.readouterr().err and not (tmp_path / "m.ckpt").exists()


def test_train_fine_tunes_from_an_imported_checkpoint(tiny_cfg, tmp_path):
    nets, paths = _reference_files(tmp_path, with_d=False)
    ckpt = tmp_path / "model.ckpt"
    import_main(["--g-a", str(paths["G_A"]), "--g-b", str(paths["G_B"]), "--output", str(ckpt)])
    trainer, model = train(tiny_cfg("trainer.max_steps=1", f"ckpt_path={ckpt}", "model.optimizer.lr=0.0"))
    assert trainer.global_step == 1  # a fresh run, not a resume
    for name, net in (("g_a", nets["G_A"]), ("g_b", nets["G_B"])):
        for key, value in net.state_dict().items():
            assert torch.equal(model.state_dict()[f"{name}.{key}"], value), key
    with pytest.raises(ValueError, match="model.generator"):
        train(tiny_cfg("trainer.max_steps=1", f"ckpt_path={ckpt}", "model.generator.ngf=16"))
