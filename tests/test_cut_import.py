"""Official CUT/FastCUT files (taesungp/contrastive-unpaired-translation: bare state dicts
latest_net_G.pth, latest_net_D.pth, latest_net_F.pth) translate directly and import into a
checkpoint that translates A->B and fine-tunes. The test writes them in that layout itself."""
from __future__ import annotations

import torch
from omegaconf import open_dict

from conftest import FAMILY_TINY, TINY_RUN, compose_config, write_images


def official_files(folder, *, ngf=8, n_blocks=6, antialias=True):
    from cyclestyle.models.cut import CUT

    torch.manual_seed(0)
    model = CUT(generator=dict(ngf=ngf, n_blocks=n_blocks, antialias=antialias, antialias_up=antialias),
                discriminator=dict(ndf=8, antialias=antialias))
    folder.mkdir(parents=True, exist_ok=True)
    for name, net in (("G", model.g), ("D", model.d), ("F", model.f)):
        torch.save(net.state_dict(), folder / f"latest_net_{name}.pth")
    return model


def test_translate_reads_an_official_cut_generator(tmp_path):
    from cyclestyle.inference import load_generator

    model = official_files(tmp_path / "cut")
    generator = load_generator(tmp_path / "cut" / "latest_net_G.pth")
    x = torch.rand(1, 3, 36, 44) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(generator(x), model.g.eval()(x))


def test_an_imported_cut_checkpoint_translates_one_way_and_fine_tunes(tmp_path, folders, capfd):
    from cyclestyle.commands.import_reference import main as import_main
    from cyclestyle.commands.translate import main as translate_main
    from cyclestyle.train import train

    model = official_files(tmp_path / "cut")
    files = {n: str(tmp_path / "cut" / f"latest_net_{n}.pth") for n in "GDF"}
    assert import_main(["--cut", files["G"], "--cut-d", files["D"], "--cut-f", files["F"],
                        "--output", str(tmp_path / "cut.ckpt")]) == 0
    write_images(tmp_path / "in", 1, size=(32, 32))
    assert translate_main([str(tmp_path / "cut.ckpt"), str(tmp_path / "in"), "--output", str(tmp_path / "out"),
                           "--workers", "0", "--no-progress"]) == 0
    capfd.readouterr()
    assert translate_main([str(tmp_path / "cut.ckpt"), str(tmp_path / "in"), "--output", str(tmp_path / "back"),
                           "--direction", "b2a", "--no-progress"]) == 2
    assert "translates A→B only" in capfd.readouterr().err
    a, b = folders
    cfg = compose_config(["data=folders", f"data.a={a}", f"data.b={b}", *TINY_RUN, *FAMILY_TINY["cut"],
                          "model.generator.antialias=true", "model.generator.antialias_up=true",
                          "model.discriminator.antialias=true", "trainer.max_steps=1", "model.optimizer.lr=0",
                          "trainer.val_check_interval=1000"], tmp_path / "run")
    with open_dict(cfg):
        cfg.ckpt_path = str(tmp_path / "cut.ckpt")
    trainer, tuned = train(cfg)
    assert trainer.global_step == 1
    for name in ("g", "d", "f"):  # all three official networks were loaded (lr 0 keeps them as they were)
        theirs = getattr(model, name).state_dict()
        assert all(torch.equal(v, theirs[k]) for k, v in getattr(tuned, name).state_dict().items()), name


def test_a_discriminator_file_given_as_the_cut_generator_is_one_clear_line(tmp_path, capfd):
    from cyclestyle.commands.import_reference import main as import_main

    official_files(tmp_path / "cut")
    wrong = tmp_path / "cut" / "latest_net_D.pth"
    assert import_main(["--cut", str(wrong), "--output", str(tmp_path / "m.ckpt")]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(wrong) in err[0]
    assert not (tmp_path / "m.ckpt").exists()
