"""Streaming data (litdata): `cyclestyle pack`, data=stream, ranks and workers, reproducibility and
exact resume, object storage."""
from __future__ import annotations

import io
import json
import multiprocessing
import os
from pathlib import Path

import pytest
from PIL import Image

from cli_runs import cyclestyle
from conftest import TINY, compose_config, write_images
from ddp_probe import colour_ids
from state_dicts import max_difference

from cyclestyle.commands.pack import main as pack_main
from cyclestyle.data.images import load_rgb
from cyclestyle.data.packing import pack
from cyclestyle.data.streams import StreamingUnpairedDataModule, open_stream
from cyclestyle.train import train

STREAM_TINY = [o for o in TINY if not o.startswith("data.persistent_workers")] + ["data.batch_size=2"]


def solid_images(folder: Path, ids, size=(40, 40)) -> None:
    """One PNG per id, red = 10 x id, so every batch tells which images it holds (ddp_probe.colour_ids)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in ids:
        Image.new("RGB", size, (10 * i, 60, 120)).save(folder / f"img_{i:03d}.png")


@pytest.fixture
def domains(tmp_path) -> tuple[Path, Path]:
    """Domain A: 12 images (ids 0-11) packed as a stream; domain B: a folder of 5 (ids 20-24)."""
    solid_images(tmp_path / "A", range(12))
    solid_images(tmp_path / "B", range(20, 25))
    pack(tmp_path / "A", str(tmp_path / "packed_A"), image_format="png", workers=2, progress=False)
    return tmp_path / "packed_A", tmp_path / "B"


def stream_cfg(tmp_path, a, b, *extra):
    overrides = ["data=stream", f"data.a={a}", f"data.b={b}", *STREAM_TINY, f"paths.cache_dir={tmp_path / 'cache'}",
                 "+callbacks.probe._target_=ddp_probe.RecordBatches", f"+callbacks.probe.out_dir={tmp_path / 'probe'}",
                 *extra]
    return compose_config(overrides, tmp_path / "out")


def probe(tmp_path, rank: int, step: int) -> dict[str, dict[str, list]]:
    return json.loads((tmp_path / "probe" / f"rank{rank}-step{step}.json").read_text())


def flat(batches: list[list[int]]) -> list[int]:
    return [i for batch in batches for i in batch]


def test_pack_skips_broken_files_fixes_images_and_refuses_to_overwrite(tmp_path, capsys):
    src = tmp_path / "photos"
    solid_images(src / "nested", range(3), size=(300, 200))
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    rotated = Image.new("L", (60, 30), 128)  # gray, stored sideways with EXIF orientation 6 (rotate 90)
    exif = rotated.getexif()
    exif[0x0112] = 6
    rotated.save(src / "sideways.jpg", exif=exif)
    out = tmp_path / "packed"
    assert pack_main([str(src), str(out), "--max-side", "100", "--workers", "2", "--no-progress"]) == 0
    printed = capsys.readouterr()
    assert f"skipped unreadable image {src / 'broken.jpg'}" in printed.err
    assert "Packed 4 images" in printed.out and "1 unreadable files skipped" in printed.out
    stream = open_stream(str(out), setting="test")
    items = {bytes(stream[i]["name"]).decode(): load_rgb(io.BytesIO(stream[i]["image"])) for i in range(len(stream))}
    assert sorted(items) == ["nested/img_000.png", "nested/img_001.png", "nested/img_002.png", "sideways.jpg"]
    assert items["nested/img_001.png"].shape == (67, 100, 3)  # longer side scaled to 100
    assert items["sideways.jpg"].shape == (60, 30, 3)  # upright, RGB
    assert bytes(stream[0]["image"][:2]) == b"\xff\xd8"  # stored as JPEG
    assert pack_main([str(src), str(out), "--no-progress"]) == 2  # refuses to overwrite ...
    assert "already holds a packed data set; pass --overwrite" in capsys.readouterr().err
    assert pack_main([str(src), str(out), "--overwrite", "--format", "webp", "--no-progress"]) == 0  # ... unless told
    assert bytes(open_stream(str(out), setting="test")[0]["image"][8:12]) == b"WEBP"


def test_two_ranks_with_two_workers_see_every_a_image_once_in_equal_iterations(domains, tmp_path, monkeypatch):
    a, b = domains
    seen, lengths, b_seen = [], [], []
    for rank in (0, 1):  # litdata reads the rank from the environment when a stream is opened
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("GLOBAL_RANK", str(rank))
        module = StreamingUnpairedDataModule(a=str(a), b=str(b), batch_size=2, num_workers=2, load_size=36,
                                             crop_size=32, cache_dir=str(tmp_path / "cache"))
        module.prepare_data()
        module.setup("fit")
        loader = module.train_dataloader()
        iterator = iter(loader)
        batches = [batch for batch, _, _ in iterator]
        lengths.append((len(loader), len(batches)))
        seen += flat(colour_ids(batch["A"]) for batch in batches)
        b_seen.append(flat(colour_ids(batch["B"]) for batch in batches))
    assert lengths == [(3, 3), (3, 3)]  # 12 images / (2 ranks x batch 2): the same number of iterations per rank
    assert sorted(seen) == list(range(12))  # every A image exactly once per epoch
    assert all(set(ids) <= set(range(20, 25)) and len(ids) == 6 for ids in b_seen)  # B cycles (5 images, 6 draws)


def test_mixed_folder_and_stream_train_and_validate_and_a_folder_is_packed_once(domains, tmp_path):
    a, b = domains
    solid_images(tmp_path / "val_A", range(30, 33))
    trainer, _ = train(stream_cfg(tmp_path, b, a, "trainer.max_steps=3", "trainer.val_check_interval=3",
                                  f"data.val_a={tmp_path / 'val_A'}"))  # A: a folder, B: a stream
    assert trainer.global_step == 3
    assert len(list((tmp_path / "cache" / "packed").iterdir())) == 1
    # validation: A from its folder (3 images), B from the first num_val=2 images of its stream
    assert "val/cycle_A" in trainer.callback_metrics and (tmp_path / "out" / "samples" / "iter_0000003.png").is_file()
    val = trainer.datamodule.val_dataloader().dataset
    assert (len(val.a), len(val.b)) == (3, 2)
    recorded = probe(tmp_path, 0, 3)["0"]
    assert set(flat(recorded["A"])) <= set(range(20, 25)) and set(flat(recorded["B"])) <= set(range(12))


@pytest.mark.slow
def test_resume_continues_the_stream_mid_epoch(domains, tmp_path):
    a, b = domains
    train(stream_cfg(tmp_path, a, b, "trainer.max_steps=2"))  # 2 of the epoch's 6 iterations
    trainer, _ = train(stream_cfg(tmp_path, a, b, "trainer.max_steps=12", "ckpt_path=last"))
    assert trainer.global_step == 12
    first, resumed = probe(tmp_path, 0, 2)["0"], probe(tmp_path, 0, 12)
    assert len(resumed["0"]["A"]) == 4  # the epoch's other 4 iterations, not 6
    assert sorted(flat(first["A"]) + flat(resumed["0"]["A"])) == list(range(12))  # nothing replayed or lost
    assert sorted(flat(resumed["1"]["A"])) == list(range(12))  # the next epoch is a full, fresh pass


@pytest.fixture
def textured(tmp_path) -> tuple[Path, Path]:
    """Smooth random images, so crops and flips change them. Domain A: 12 packed as a stream (an
    epoch: 6 iterations at batch 2); domain B: a folder of 8 (a pass: 4), so epoch 0 ends
    halfway through B's second pass."""
    write_images(tmp_path / "tA", 12, seed=1)
    write_images(tmp_path / "tB", 8, seed=2, tint=60)
    pack(tmp_path / "tA", str(tmp_path / "packed_tA"), image_format="png", workers=2, progress=False)
    return tmp_path / "packed_tA", tmp_path / "tB"


def fit(tmp_path, data, name: str, steps: int, ckpt_path: Path | None = None):
    """A tiny run into tmp_path/name with the default augmentation (random crops and flips) and
    2 DataLoader workers; it validates and saves only at its end."""
    a, b = data
    overrides = ["data=stream", f"data.a={a}", f"data.b={b}", *STREAM_TINY, "data.num_workers=2",
                 f"paths.cache_dir={tmp_path / 'cache'}", f"trainer.max_steps={steps}",
                 "trainer.val_check_interval=1000", "callbacks.last_checkpoint.every_n_iterations=1000"]
    if ckpt_path is not None:
        overrides.append(f"ckpt_path={ckpt_path}")
    return train(compose_config(overrides, tmp_path / name))


def test_two_identical_runs_give_identical_weights(textured, tmp_path):
    children = set(multiprocessing.active_children())
    _, first = fit(tmp_path, textured, "first", 8)
    _, second = fit(tmp_path, textured, "second", 8)
    assert max_difference(first, second) == 0.0  # the old code: ~3e-3 (augmentation never seeded)
    assert set(multiprocessing.active_children()) <= children  # B's stream outlives epochs; teardown ends its workers


@pytest.mark.parametrize("total, cut", [(4, 3), (8, 6), (9, 8)],
                         ids=["inside-epoch-0", "at-the-epoch-boundary", "inside-epoch-1"])
def test_resume_with_workers_is_exact(textured, tmp_path, total, cut):
    _, whole = fit(tmp_path, textured, "whole", total)
    fit(tmp_path, textured, "first", cut)
    trainer, resumed = fit(tmp_path, textured, "second", total, tmp_path / "first" / "checkpoints" / "last.ckpt")
    assert trainer.global_step == total
    assert max_difference(resumed, whole) == 0.0  # the old code: ~2e-3; at the boundary ~8e-4 even unaugmented


def test_b_streams_on_across_epochs_in_whole_passes(tmp_path):
    """Each epoch's iter() continues B's stream, as a resumed run does: no pass is cut short."""
    solid_images(tmp_path / "A", range(12))
    solid_images(tmp_path / "B", range(12, 20))  # red = 10 x id stays below 256
    module = StreamingUnpairedDataModule(a=str(tmp_path / "A"), b=str(tmp_path / "B"), batch_size=2, num_workers=2,
                                         load_size=36, crop_size=32, cache_dir=str(tmp_path / "cache"))
    module.prepare_data()
    module.setup("fit")
    loader = module.train_dataloader()
    drawn = flat(flat(colour_ids(batch["B"]) for batch, _, _ in iter(loader)) for _ in range(2))  # 2 epochs
    module.teardown("fit")
    assert len(drawn) == 2 * 12  # 3 passes of B's 8 images; epoch 0 ended inside the second
    assert all(sorted(drawn[start : start + 8]) == list(range(12, 20)) for start in (0, 8, 16))


def test_augmentation_depends_on_the_pass_and_image_not_on_the_workers(textured, tmp_path):
    def passes(num_workers: int) -> list[list[bytes]]:
        module = StreamingUnpairedDataModule(a=str(textured[0]), b=str(textured[1]), batch_size=2,
                                             num_workers=num_workers, load_size=36, crop_size=32,
                                             cache_dir=str(tmp_path / "cache"))
        module.prepare_data()
        module.setup("fit")
        a = module.train_dataloader().iterables["A"]
        return [sorted(image.numpy().tobytes() for batch in a for image in batch) for _ in range(2)]

    in_process, with_workers = passes(0), passes(2)
    assert in_process == with_workers  # each pass: the same 12 augmented images, in whatever order
    assert in_process[0] != in_process[1]  # a new pass, new crops and flips


def test_a_missing_stream_or_folder_is_named(tmp_path):
    solid_images(tmp_path / "B", range(3))
    (tmp_path / "empty").mkdir()
    for missing, error in ((tmp_path / "nowhere", FileNotFoundError), (tmp_path / "empty", ValueError)):
        module = StreamingUnpairedDataModule(a=str(missing), b=str(tmp_path / "B"), cache_dir=str(tmp_path / "cache"))
        with pytest.raises(error, match=f"data.a.*{missing}"):
            module.prepare_data()
            module.setup("fit")


def test_an_unreadable_chunk_fails_naming_it(domains, tmp_path):
    a, b = domains
    chunk = next(a.glob("chunk-*.bin"))
    chunk.write_bytes(b"\x00" * 64 + os.urandom(chunk.stat().st_size - 64))
    with pytest.raises(OSError, match=f"data.a={a}: reading the packed data set failed: .*{chunk}"):
        train(stream_cfg(tmp_path, a, b, "trainer.max_steps=2"))


@pytest.mark.slow
def test_object_storage_round_trip(s3_bucket, tmp_path):
    """pack to s3://, train from it (mixed with a folder), and a missing prefix is named."""
    solid_images(tmp_path / "A", range(8))
    solid_images(tmp_path / "B", range(20, 23))
    url = f"{s3_bucket}/packed/a"
    assert pack_main([str(tmp_path / "A"), url, "--format", "png", "--workers", "2", "--no-progress"]) == 0
    assert pack_main([str(tmp_path / "A"), url, "--workers", "2", "--no-progress"]) == 2  # no silent overwrite
    trainer, _ = train(stream_cfg(tmp_path, url, tmp_path / "B", "trainer.max_steps=4",
                                  f"data.chunk_cache_dir={tmp_path / 'chunks'}"))
    assert trainer.global_step == 4
    assert sorted(flat(probe(tmp_path, 0, 4)["0"]["A"])) == list(range(8))  # one full pass over the remote set
    missing = f"{s3_bucket}/packed/nothing-here"
    module = StreamingUnpairedDataModule(a=missing, b=str(tmp_path / "B"), cache_dir=str(tmp_path / "cache"),
                                         chunk_cache_dir=str(tmp_path / "chunks"))
    with pytest.raises(FileNotFoundError, match=f"data.a={missing}"):
        module.setup("fit")


@pytest.mark.slow
def test_real_ddp_on_cpu_covers_a_once_with_equal_iterations(domains, tmp_path):
    a, b = domains
    out, recorded = tmp_path / "run", tmp_path / "probe"
    result = cyclestyle("train", "data=stream", f"data.a={a}", f"data.b={b}", *STREAM_TINY, "data.num_workers=2",
                        f"paths.cache_dir={tmp_path / 'cache'}", f"paths.output_dir={out}", "trainer=ddp_cpu",
                        "trainer.accelerator=cpu", "trainer.max_steps=3", "+callbacks.probe._target_=ddp_probe.RecordBatches",
                        f"+callbacks.probe.out_dir={recorded}")
    assert result.returncode == 0, result.stderr[-4000:]
    ranks = [probe(tmp_path, rank, 3)["0"] for rank in (0, 1)]
    assert [len(r["A"]) for r in ranks] == [3, 3]  # 12 images / (2 ranks x batch 2)
    assert sorted(flat(ranks[0]["A"]) + flat(ranks[1]["A"])) == list(range(12))
    assert flat(ranks[0]["B"]) != flat(ranks[1]["B"])  # each rank draws its own B images
