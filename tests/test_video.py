"""`cyclestyle translate` on videos (issue 15): frame count, rate, size, audio and rotation survive,
broken clips are listed, nothing half-written is ever left, reruns skip, and temporal smoothing
lowers flicker. Every clip is made here with PyAV: a few frames at 64x48."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

av = pytest.importorskip("av")

from cyclestyle.commands.translate import main as translate_main  # noqa: E402
from cyclestyle.inference.files import VIDEO_EXTENSIONS, Job, plan  # noqa: E402
from cyclestyle.inference.smoothing import TemporalSmoother, flicker  # noqa: E402
from cyclestyle.inference.video import MUXERS, VideoOptions, translate_videos  # noqa: E402

NTSC = Fraction(30000, 1001)
AUDIO = {"mp4": "aac", "mov": "aac", "matroska": "flac", "webm": "libopus", "avi": "libmp3lame"}
VIDEO = {"webm": "libvpx-vp9", "avi": "mpeg4"}  # else libx264


@pytest.fixture(scope="module")
def ckpt(tiny_ckpt) -> Path:
    return tiny_ckpt


def scene(count: int, size: tuple[int, int] = (64, 48), *, noise: float = 0.0,
          seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """(`count` (H, W, 3) uint8 frames: a smooth textured background with a bright square moving
    right 3 px a frame, plus per-frame noise; (H, W) bool mask of the pixels the square never covers)."""
    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    background = np.stack([96 + 60 * np.sin(xx / 5.0 + c) * np.cos(yy / 7.0 - c) for c in range(3)], -1)
    still = np.ones((h, w), bool)
    frames = []
    for i in range(count):
        frame = background.copy()
        left, top = 4 + 3 * i, h // 3
        frame[top : top + 12, left : left + 12] = (235, 220, 40)
        still[max(top - 2, 0) : top + 14, max(left - 2, 0) : left + 14] = False
        frames.append(np.clip(frame + rng.normal(0, noise, frame.shape), 0, 255).astype(np.uint8))
    return frames, still


def make_clip(path: Path, frames: list[np.ndarray], *, rate: Fraction = NTSC, pts: list[int] | None = None,
              audio: bool = True, video_codec: str | None = None, pix_fmt: str = "yuv420p",
              rotation: int = 0, muxer: str | None = None, audio_codec: str | None = None) -> Path:
    """Encode `frames` (with a 440 Hz tone if `audio`) into `path` with PyAV; `pts` in 1/rate units
    by default, else in the stream's time base as given (variable frame rates)."""
    muxer = muxer or MUXERS[path.suffix.lower()]
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", format=muxer) as out:
        video = out.add_stream(video_codec or VIDEO.get(muxer, "libx264"), rate=rate)
        video.width, video.height, video.pix_fmt = w, h, pix_fmt
        if pts is not None:
            video.time_base = video.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            video.set_display_rotation(rotation)
        if audio:
            sound = out.add_stream(audio_codec or AUDIO[muxer], rate=48000)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i if pts is None else pts[i]
            if pts is not None:
                frame.time_base = Fraction(1, 1000)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if audio:
            seconds = len(frames) / rate
            tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(int(48000 * seconds)) / 48000)).astype(np.float32)
            for start in range(0, len(tone), 960):
                chunk = av.AudioFrame.from_ndarray(tone[None, start : start + 960], format="flt", layout="mono")
                chunk.sample_rate, chunk.pts = 48000, start
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
    return path


def probe(path: Path) -> dict:
    """What a video file holds: its frames' timestamps, sizes, codecs, rotation, audio packets."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = list(container.decode(video))
        info = {"pts": [f.pts for f in frames], "time_base": video.time_base, "rate": video.average_rate,
                "size": (video.codec_context.width, video.codec_context.height), "codec": video.codec_context.name,
                "rotation": frames[0].rotation, "frames": [f.to_ndarray(format="rgb24") for f in frames],
                "audio": [s.codec_context.codec.canonical_name for s in container.streams.audio]}
    with av.open(str(path)) as container:
        info["audio_packets"] = [bytes(p) for p in container.demux(audio=0) if p.size] if info["audio"] else []
    return info


def seconds(info: dict) -> list[float]:
    return [float(p * info["time_base"]) for p in info["pts"]]


def translate(*args) -> int:
    return translate_main([*map(str, args), "--no-progress", "--precision", "32"])


class Fake:
    """A generator with the `load_generator` interface: `fn` over (B, 3, H, W) in [-1, 1]."""

    size_multiple, fixed_size, device = 4, None, torch.device("cpu")

    def __init__(self, fn) -> None:
        self.fn, self.frames = fn, 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.frames += len(x)
        return self.fn(x, self.frames)


def no_temps(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp")] if folder.exists() else True


# -- containers, rates, sizes, audio ------------------------------------------------------------------

@pytest.mark.parametrize("suffix, codec, audio", [(".mp4", "h264", "aac"), (".webm", "vp9", "opus"),
                                                  (".avi", "mpeg4", "mp3"), (".mkv", "h264", "flac")])
def test_a_clip_keeps_its_container_frames_rate_size_and_audio(ckpt, tmp_path, capfd, suffix, codec, audio):
    frames, _ = scene(7)
    clip = make_clip(tmp_path / f"clip{suffix}", frames)
    assert translate(ckpt, clip, "--output", tmp_path / "out", "--batch-size", "3") == 0
    out, err = capfd.readouterr()
    assert "Translated 1 videos (7 frames" in out
    source, result = probe(clip), probe(tmp_path / "out" / clip.name)
    assert result["codec"] == codec and result["size"] == (64, 48) and len(result["frames"]) == 7
    assert seconds(result) == pytest.approx(seconds(source), abs=1e-3)  # every frame at its time: 30000/1001
    if suffix != ".avi":  # avi stores no time base finer than the frame rate, nor an average rate of its own
        assert result["rate"] == NTSC
    assert result["audio"] == [audio]
    assert result["audio_packets"] == source["audio_packets"]  # copied packet for packet, not re-encoded
    assert f"audio track 1: {audio}, copied" in err
    assert not np.array_equal(result["frames"][0], source["frames"][0])  # translated, not copied


def test_variable_frame_rate_and_rotation_survive(ckpt, tmp_path):
    frames, _ = scene(6)
    stamps = [0, 33, 50, 120, 130, 300]  # ms: irregular gaps
    clip = make_clip(tmp_path / "phone.mp4", frames, pts=stamps, rotation=90, audio=False)
    assert translate(ckpt, clip, "--output", tmp_path / "out") == 0
    result = probe(tmp_path / "out" / "phone.mp4")
    assert seconds(result) == pytest.approx([s / 1000 for s in stamps], abs=1e-3)
    assert result["rotation"] == 90 and result["size"] == (64, 48) and result["audio"] == []


def test_frames_take_the_image_path_in_order_and_keep_their_colours(tmp_path):
    """A negating generator: each output frame is the negative of its own input frame (a frame
    shifted by one would differ by the moving square), with the input's BT.709 colour matrix."""
    frames, _ = scene(9)
    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as out:  # tagged BT.709, as HD footage is
        video = out.add_stream("libx264", rate=25, options={"crf": "0"})
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.codec_context.colorspace = 1
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p", dst_colorspace=1)
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    negate = Fake(lambda x, _: -x)
    summary = translate_videos([Job(clip, tmp_path / "out" / "clip.mp4")], negate, batch_size=4,
                               options=VideoOptions(quality=0), progress=False)
    assert summary.translated == 1 and summary.frames == 9 and negate.frames == 9 and not summary.failed
    source, result = probe(clip), probe(tmp_path / "out" / "clip.mp4")
    with av.open(str(tmp_path / "out" / "clip.mp4")) as container:
        assert container.streams.video[0].codec_context.colorspace == 1
    for before, after in zip(source["frames"], result["frames"]):
        assert np.abs(after.astype(int) - (255 - before.astype(int))).mean() < 3


def test_odd_sizes_get_one_repeated_column_and_row(ckpt, tmp_path, capfd):
    frames, _ = scene(3, size=(63, 47))
    clip = make_clip(tmp_path / "odd.mov", frames, video_codec="png", pix_fmt="rgb24", audio=False)  # lossless RGB
    assert translate(ckpt, clip, "--output", tmp_path / "out", "--video-quality", "0") == 0  # lossless luma
    assert "63x47 has an odd side: written as 64x48" in capfd.readouterr().err
    result = probe(tmp_path / "out" / "odd.mov")
    assert result["size"] == (64, 48) and len(result["frames"]) == 3
    first = result["frames"][0].astype(int)
    assert np.abs(first[:, 63] - first[:, 62]).mean() < 1 and np.abs(first[47] - first[46]).mean() < 1
    assert np.abs(first[:, 62] - first[:, 61]).mean() > 3  # while real neighbours differ


def test_audio_the_container_cannot_hold_is_reencoded_and_said_so(ckpt, tmp_path, capfd):
    """Matroska content named .webm (FFmpeg reads what a file holds, whatever its name) with AAC
    audio: a real WebM cannot hold AAC, so the audio becomes Opus."""
    frames, _ = scene(5)
    clip = make_clip(tmp_path / "mislabelled.webm", frames, muxer="matroska", audio_codec="aac", video_codec="libx264")
    assert translate(ckpt, clip, "--output", tmp_path / "out") == 0
    assert "aac re-encoded to libopus (the webm container cannot hold aac)" in capfd.readouterr().err
    result = probe(tmp_path / "out" / "mislabelled.webm")
    assert result["codec"] == "vp9" and result["audio"] == ["opus"] and len(result["frames"]) == 5


# -- inputs, broken clips, reruns -----------------------------------------------------------------------

def test_folders_give_images_and_videos_and_videos_keep_their_container(tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    for name in ("a.png", "b.mp4", "sub/c.MOV", ".hidden.mp4", "notes.txt", "sub/d.webm"):
        (src / name).write_bytes(b"")
    targets = lambda jobs: sorted(str(job.target.relative_to(tmp_path / "out")) for job in jobs)  # noqa: E731
    assert targets(plan([str(src)], tmp_path / "out", "jpg")) == ["a.jpg", "b.mp4", "sub/c.MOV", "sub/d.webm"]
    assert targets(plan([str(src / "**" / "*.webm")], tmp_path / "out")) == ["sub/d.webm"]
    assert targets(plan([str(src / "sub")], tmp_path / "out")) == ["c.MOV", "d.webm"]  # videos only: fine
    assert set(MUXERS) == set(VIDEO_EXTENSIONS)


def test_a_corrupt_clip_is_listed_and_the_run_goes_on(ckpt, tmp_path, capfd):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    frames, _ = scene(4)
    make_clip(src / "good.mp4", frames)
    whole = make_clip(tmp_path / "whole.mp4", frames).read_bytes()
    (src / "truncated.mp4").write_bytes(whole[: len(whole) // 2])
    (src / "garbage.mkv").write_bytes(os.urandom(3000))
    (src / "empty.mp4").write_bytes(b"")
    from PIL import Image

    Image.fromarray(frames[0]).save(src / "still.png")
    assert translate(ckpt, src, "--output", out) == 1
    stdout, err = capfd.readouterr()
    failed = sorted(line for line in err.splitlines() if line.startswith("failed:"))
    assert len(failed) == 3 and "Traceback" not in err
    assert all("not a readable video" in line for line in failed)
    assert [Path(line.split(": ")[1]).name for line in failed] == ["empty.mp4", "garbage.mkv", "truncated.mp4"]
    assert sorted(p.name for p in out.iterdir()) == ["good.mp4", "still.png"]
    assert "Translated 1 images" in stdout and "Translated 1 videos" in stdout and "3 failed" in stdout


def test_a_rerun_skips_finished_clips_and_overwrite_redoes_them(ckpt, tmp_path, capfd):
    frames, _ = scene(3)
    clip = make_clip(tmp_path / "clip.mp4", frames)
    assert translate(ckpt, clip, "--output", tmp_path / "out") == 0
    target = tmp_path / "out" / "clip.mp4"
    first = target.stat().st_mtime_ns
    capfd.readouterr()
    assert translate(ckpt, clip, "--output", tmp_path / "out") == 0
    rerun = capfd.readouterr().out
    assert "Translated 0 videos" in rerun and "1 already there" in rerun
    assert target.stat().st_mtime_ns == first
    assert translate(ckpt, clip, "--output", tmp_path / "out", "--overwrite") == 0
    assert target.stat().st_mtime_ns != first and len(probe(target)["frames"]) == 3


# -- never a half-written file ---------------------------------------------------------------------------

@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_an_interruption_mid_clip_leaves_no_file(tmp_path, error):
    """A generator that fails (listed, the run goes on) or is interrupted (Ctrl-C: raised) after
    4 of 8 frames, with frames already encoded: neither the output nor a temporary file is left."""
    frames, _ = scene(8)
    clip = make_clip(tmp_path / "clip.mp4", frames)

    def stop_at_five(x, seen):
        if seen > 4:
            raise error("boom")
        return x

    jobs = [Job(clip, tmp_path / "out" / "clip.mp4")]
    if error is KeyboardInterrupt:
        with pytest.raises(KeyboardInterrupt):
            translate_videos(jobs, Fake(stop_at_five), batch_size=2, progress=False)
    else:
        summary = translate_videos(jobs, Fake(stop_at_five), batch_size=2, progress=False)
        ((source, reason),) = summary.failed
        assert source == clip and "the generator failed on frames 5-6" in reason and "boom" in reason
    assert not (tmp_path / "out" / "clip.mp4").exists() and no_temps(tmp_path / "out")


SLOW_RUN = textwrap.dedent("""
    import sys, time
    import cyclestyle.inference.video as video
    from cyclestyle.commands.translate import main

    run = video.translate_frames
    def slow(*args):
        print("frame", flush=True)
        time.sleep(0.3)
        return run(*args)
    video.translate_frames = slow
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.slow
def test_sigterm_mid_clip_leaves_no_file(ckpt, tmp_path):
    frames, _ = scene(30)
    clip = make_clip(tmp_path / "clip.mp4", frames)
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-c", SLOW_RUN, str(ckpt), str(clip), "--output", str(out),
                                "--no-progress", "--precision", "32"], stdout=subprocess.PIPE, text=True)
    for _ in range(3):  # a few batches encoded: the temporary file holds data
        assert process.stdout.readline().strip() == "frame"
    assert [p for p in out.iterdir() if p.name.endswith(".tmp")]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 128 + signal.SIGTERM
    assert list(out.iterdir()) == []


def test_temporary_videos_of_killed_runs_are_removed(ckpt, tmp_path):
    out = tmp_path / "out"
    killed = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import os, signal
        from cyclestyle.atomic import atomic_target
        with atomic_target({str(out / 'clip.mp4')!r}) as tmp:
            open(tmp, "wb").write(b"half a video")
            print(tmp, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
    """)], capture_output=True, text=True)
    stale = Path(killed.stdout.strip())
    assert stale.exists()
    then = time.time() - 120
    os.utime(stale, (then, then))
    frames, _ = scene(2)
    make_clip(tmp_path / "other.mp4", frames)
    assert translate(ckpt, tmp_path / "other.mp4", "--output", out) == 0
    assert sorted(p.name for p in out.iterdir()) == ["other.mp4"]


@pytest.mark.parametrize("suffix, flags, message", [
    (".mp4", ["--video-codec", "nonsense"], "--video-codec nonsense"),
    (".mp4", ["--video-codec", "libopus"], "not a video encoder"),
    (".webm", ["--video-codec", "libx264"], "the webm container cannot hold libx264"),
    (".mp4", ["--video-quality", "99"], "--video-quality for libx264 is its crf"),
    (".avi", ["--video-quality", "40"], "--video-quality for mpeg4 is its qscale, in 1..31"),
    (".mp4", ["--temporal-smoothing", "1.5"], "--temporal-smoothing")])
def test_bad_video_options_fail_before_any_work(ckpt, tmp_path, capfd, suffix, flags, message):
    frames, _ = scene(2)
    clip = make_clip(tmp_path / f"clip{suffix}", frames, audio=False)
    assert translate(ckpt, clip, "--output", tmp_path / "out", *flags) == 2
    assert message in capfd.readouterr().err
    assert not (tmp_path / "out" / clip.name).exists()


# -- temporal smoothing ------------------------------------------------------------------------------------

def test_smoothing_lowers_flicker_of_still_regions_and_follows_motion():
    """Stylised frames = the clean frames plus fresh noise each frame (flicker). Smoothing must
    calm the still background, and the moving square must stay where it is now (no ghost trail)."""
    frames, still = scene(12)
    rng = np.random.default_rng(1)
    styled = [np.clip(f + rng.normal(0, 12, f.shape), 0, 255).astype(np.uint8) for f in frames]
    smoother = TemporalSmoother(0.7)
    smoothed = [smoother(f, s) for f, s in zip(frames, styled)]
    assert flicker(smoothed, still) < 0.6 * flicker(styled, still)
    moving = np.zeros(still.shape, bool)
    moving[16:28, 4 + 3 * 11 - 3 : 16 + 3 * 11] = True  # the last frame's square and the strip it just left
    error = np.abs(smoothed[-1].astype(int) - frames[-1].astype(int))[moving].mean()
    assert error < np.abs(styled[-1].astype(int) - frames[-1].astype(int))[moving].mean()  # blending without
    # the flow would leave a trail of earlier squares here: ~5x the error


def test_smoothing_lets_a_scene_cut_through_and_zero_strength_changes_nothing():
    frames, _ = scene(2)
    cut = np.ascontiguousarray(255 - frames[0][::-1])  # a different picture
    smoother = TemporalSmoother(0.9)
    smoother(frames[0], frames[0])
    assert np.abs(smoother(cut, cut).astype(int) - cut.astype(int)).mean() < 1
    off = TemporalSmoother(0.0)
    assert all(np.array_equal(off(f, f[::-1].copy()), f[::-1]) for f in frames)


def test_temporal_smoothing_lowers_flicker_of_a_translated_clip(ckpt, tmp_path):
    """A still scene with sensor noise: the network paints each frame's noise differently."""
    frames, still = scene(8, noise=6.0)
    still[:] = True
    still[12:36, :] = False  # only rows the square never crosses
    clip = make_clip(tmp_path / "noisy.mp4", frames, audio=False)
    for name, flags in (("plain", []), ("smooth", ["--temporal-smoothing", "0.7"])):
        assert translate(ckpt, clip, "--output", tmp_path / name, "--video-quality", "0", *flags) == 0
    plain = flicker(probe(tmp_path / "plain" / "noisy.mp4")["frames"], still)
    smooth = flicker(probe(tmp_path / "smooth" / "noisy.mp4")["frames"], still)
    assert smooth < 0.7 * plain  # measured: 0.45
