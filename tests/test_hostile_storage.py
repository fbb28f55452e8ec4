"""Object storage and shared targets under faults (issue 23.3, 23.4): the store going away during
`pack` and during `data=stream` training, and two packs racing into one target. The store is moto's
S3 server in this process (conftest.S3Server), stopped and started again on the same port."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cli_runs import cyclestyle, env
from conftest import TINY, write_images

from cyclestyle.commands.pack import main as pack_main
from cyclestyle.data.object_store import StorageError
from cyclestyle.data.packing import pack
from cyclestyle.data.streams import open_stream

URL = "s3://photos/packed/a"


def packed_names(uri: str, cache: Path) -> list[str]:
    """The source names a packed data set holds, read back through litdata."""
    stream = open_stream(uri, setting="test", cache_dir=str(cache))
    return sorted(os.fsdecode(bytes(stream[i]["name"])) for i in range(len(stream)))


def test_a_store_dying_mid_pack_publishes_nothing_and_a_rerun_packs_it_whole(s3_server, tmp_path, monkeypatch):
    """Before: `pack` hung for good when the store died during the upload."""
    import obstore

    write_images(tmp_path / "A", 6)
    real_put, puts = obstore.put, []

    def put_then_die(store, path, *args, **kwargs):  # the store dies right after the first chunk arrives
        result = real_put(store, path, *args, **kwargs)
        puts.append(path)
        if len(puts) == 1:
            s3_server.stop()
        return result

    monkeypatch.setattr(obstore, "put", put_then_die)
    started = time.monotonic()
    with pytest.raises(StorageError, match=rf"{URL}: uploading the packed data set failed .*nothing was published"):
        pack(tmp_path / "A", URL, image_format="png", workers=1, progress=False)
    assert time.monotonic() - started < 120  # bounded retries, no hang
    monkeypatch.setattr(obstore, "put", real_put)
    s3_server.start()
    assert "packed/a/index.json" not in s3_server.keys("photos")  # no data set appeared
    assert pack_main([str(tmp_path / "A"), URL, "--format", "png", "--workers", "1", "--no-progress"]) == 0
    assert packed_names(URL, tmp_path / "cache") == [f"img_{i:03d}.png" for i in range(6)]
    # What is at the target is the set and nothing else: the dead pack's chunk was cleared away.
    chunks = [f"packed/a/{c['filename']}" for c in json.loads(s3_server.read("photos", "packed/a/index.json"))["chunks"]]
    assert s3_server.keys("photos") == sorted(["packed/a/index.json", *chunks])


def _start_pack(folder: Path, target: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cyclestyle", "pack", str(folder), target, "--format", "png",
                             "--workers", "1", "--no-progress"], env=env(), cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
@pytest.mark.parametrize("where", ["local", "s3"])
def test_two_packs_into_one_target_leave_one_whole_set_and_refuse_the_other(where, request, tmp_path):
    """Before: both wrote litdata's chunk-0-0.bin and index.json into the same place and both
    'succeeded', leaving an index of one folder over the chunks of either."""
    target = URL if where == "s3" else str(tmp_path / "packed")
    if where == "s3":
        request.getfixturevalue("s3_server")
    folders = {"A": write_images(tmp_path / "A", 8, seed=1), "B": write_images(tmp_path / "B", 5, seed=2)}
    runs = {name: _start_pack(tmp_path / name, target, tmp_path) for name in folders}
    results = {name: (run.wait(timeout=300), run.stderr.read()) for name, run in runs.items()}
    codes = sorted(code for code, _ in results.values())
    assert codes == [0, 2], results
    winner = next(name for name, (code, _) in results.items() if code == 0)
    loser_error = next(error for code, error in results.values() if code == 2)
    assert "already holds a packed data set" in loser_error
    assert packed_names(target, tmp_path / "cache") == sorted(p.name for p in folders[winner])
    if where == "local":
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".cyclestyle-pack-")]  # no staging left


@pytest.mark.slow
def test_a_store_dying_mid_training_stops_with_one_line_and_the_run_resumes_once_it_is_back(s3_server, tmp_path):
    write_images(tmp_path / "A", 8, seed=1)
    write_images(tmp_path / "B", 6, seed=2, tint=60)
    pack(tmp_path / "A", URL, image_format="png", workers=1, progress=False)
    out = tmp_path / "run"
    settings = [o for o in TINY if not o.startswith(("data.num_workers", "data.persistent_workers"))]
    args = ["train", "data=stream", f"data.a={URL}", f"data.b={tmp_path / 'B'}", *settings, "data.num_workers=1", "trainer.max_epochs=30",
            f"paths.output_dir={out}", f"paths.cache_dir={tmp_path / 'cache'}", f"data.chunk_cache_dir={tmp_path / 'chunks'}",
            "data.max_cache_size=1KB",  # less than the chunk: it is dropped once read, every epoch fetches it again
            "trainer.val_check_interval=1000", "callbacks.last_checkpoint.every_n_iterations=1"]
    process = subprocess.Popen([sys.executable, "-m", "cyclestyle", *args, "trainer.max_steps=100000"], env=env(),
                               cwd=tmp_path, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    last, deadline = out / "checkpoints" / "last.ckpt", time.monotonic() + 300
    while not last.exists():
        assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()[-3000:]
        time.sleep(0.2)
    s3_server.stop()
    started = time.monotonic()
    output, _ = process.communicate(timeout=300)
    assert time.monotonic() - started < 240  # bounded retries, no hang
    assert process.returncode == 1, output[-6000:]
    errors = [line for line in output.splitlines() if "cyclestyle train: error" in line]
    assert len(errors) == 1, output[-3000:]
    assert f"data.a={URL}: reading the packed data set failed" in errors[0] and "ckpt_path=last" in errors[0]
    saved = torch.load(last, weights_only=True)["global_step"]
    s3_server.start()
    resumed = cyclestyle(*args, f"trainer.max_steps={saved + 2}", "ckpt_path=last", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert torch.load(last, weights_only=True)["global_step"] == saved + 2
