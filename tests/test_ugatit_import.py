"""Official U-GAT-IT checkpoints (znxlwm/UGATIT-pytorch `*_params_*.pt`) become cyclestyle
checkpoints that translate both ways and fine-tune. The test writes such a file itself, in the
official layout: one torch.save dict of six state dicts."""
from __future__ import annotations

import pytest
import torch
from omegaconf import open_dict

from conftest import FAMILY_TINY, TINY_RUN, compose_config, write_images

OFFICIAL = ("genA2B", "genB2A", "disGA", "disGB", "disLA", "disLB")


def official_params(path, *, light: bool, img_size: int = 32, ngf: int = 8, n_blocks: int = 2):
    """A file as the official trainer saves it (`params = {'genA2B': genA2B.state_dict(), ...}`)."""
    from cyclestyle.networks.ugatit import UgatitDiscriminator, UgatitGenerator

    torch.manual_seed(0)
    g = dict(ngf=ngf, n_blocks=n_blocks, img_size=img_size, light=light)
    # the official depths are 7 (global) and 5 (local); 5 and 4 fit the tests' 32 px crops
    nets = {"genA2B": UgatitGenerator(**g), "genB2A": UgatitGenerator(**g),
            "disGA": UgatitDiscriminator(ndf=4, n_layers=5), "disGB": UgatitDiscriminator(ndf=4, n_layers=5),
            "disLA": UgatitDiscriminator(ndf=4, n_layers=4), "disLB": UgatitDiscriminator(ndf=4, n_layers=4)}
    torch.save({name: net.state_dict() for name, net in nets.items()}, path)
    return nets


@pytest.mark.parametrize("light", [True, False], ids=["light", "full"])
def test_an_official_checkpoint_imports_and_translates_both_ways(tmp_path, light):
    from cyclestyle.commands.import_reference import main as import_main
    from cyclestyle.commands.translate import main as translate_main
    from cyclestyle.inference import load_generator

    nets = official_params(tmp_path / "horse2zebra_params_latest.pt", light=light)
    assert import_main(["--ugatit", str(tmp_path / "horse2zebra_params_latest.pt"),
                        "--output", str(tmp_path / "model.ckpt")]) == 0
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    for direction, official in (("a2b", "genA2B"), ("b2a", "genB2A")):
        generator = load_generator(tmp_path / "model.ckpt", direction=direction)
        assert generator.fixed_size == (None if light else 32)
        with torch.no_grad():
            torch.testing.assert_close(generator(x), nets[official].eval()(x)[0])
    write_images(tmp_path / "in", 1, size=(40, 52))  # not the training size: full mode tiles at 32 px
    assert translate_main([str(tmp_path / "model.ckpt"), str(tmp_path / "in"), "--output", str(tmp_path / "out"),
                           "--direction", "b2a", "--workers", "0", "--no-progress"]) == 0
    assert (tmp_path / "out" / "img_000.png").exists()


def test_an_imported_official_checkpoint_fine_tunes(tmp_path, folders):
    from cyclestyle.commands.import_reference import main as import_main
    from cyclestyle.train import train

    nets = official_params(tmp_path / "params.pt", light=True)
    assert import_main(["--ugatit", str(tmp_path / "params.pt"), "--output", str(tmp_path / "model.ckpt")]) == 0
    a, b = folders
    cfg = compose_config(["data=folders", f"data.a={a}", f"data.b={b}", *TINY_RUN, *FAMILY_TINY["ugatit"],
                          "model.generator.light=true", "model.generator.n_blocks=2", "trainer.max_steps=1",
                          "trainer.val_check_interval=1000",
                          "model.optimizer.lr=0"], tmp_path / "run")
    with open_dict(cfg):
        cfg.ckpt_path = str(tmp_path / "model.ckpt")
    trainer, model = train(cfg)
    assert trainer.global_step == 1  # weights only: training starts at 0
    for name, state in (("g_a", nets["genA2B"].state_dict()), ("d_lb", nets["disLB"].state_dict())):
        mine = getattr(model, name).state_dict()
        assert all(torch.equal(mine[k], v) for k, v in state.items() if not k.endswith(("weight_u", "weight_v"))), name


def test_a_file_that_is_not_an_official_checkpoint_is_one_clear_line(tmp_path, capfd):
    from cyclestyle.commands.import_reference import main as import_main

    official_params(tmp_path / "params.pt", light=True)
    partial = torch.load(tmp_path / "params.pt", weights_only=True)
    del partial["disLB"]
    torch.save(partial, tmp_path / "partial.pt")
    assert import_main(["--ugatit", str(tmp_path / "partial.pt"), "--output", str(tmp_path / "m.ckpt")]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "partial.pt" in err[0] and "disLB" in err[0]
    assert not (tmp_path / "m.ckpt").exists()
