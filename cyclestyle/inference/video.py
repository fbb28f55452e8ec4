"""Stylising videos: every frame goes through the generator exactly as an image does (uint8 RGB ->
[-1, 1] -> `translate_any_size` -> uint8), `batch_size` frames per call, and the result is written
with the input's own frame timestamps, so the frame count and rate (30000/1001, or variable) are
the input's; so are its size, display rotation and colour tags. Audio tracks are copied packet for
packet, or re-encoded (and said so) when the output container cannot hold their codec. PyAV
(FFmpeg's libraries) reads and writes; one thread decodes ahead of the network and another encodes
(and smooths: `smoothing.py`) behind it. Each output is written to a temporary file and renamed
(`cyclestyle.atomic`), so an interrupted run never leaves a partial video.

Outputs are 8-bit yuv420p, the pixel format every player reads; its half-size colour planes need
even sides, so an odd width or height gets one repeated column or row at the right or bottom.
Subtitle and data streams are not copied.

    summary = translate_videos(jobs, generator, batch_size=4, options=VideoOptions(smoothing=0.5))
"""
from __future__ import annotations

import io
import itertools
import queue
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm.auto import tqdm

try:
    import av
    from av.video.reformatter import ColorRange, Colorspace
except ImportError:
    raise ImportError("video inputs need PyAV: pip install 'cyclestyle[video]' (or pip install av)") from None

from ..atomic import atomic_target
from .files import Job
from .jobs import Summary, run_each
from .smoothing import TemporalSmoother
from .tiling import translate_frames

PIX_FMT = "yuv420p"
MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}
FALLBACK_ENCODER = "mpeg4"  # FFmpeg's own MPEG-4 part 2 encoder, in every build: when the usual one is missing
# encoder -> (its quality setting, default): crf (lower = better, larger files) or MPEG-4's qscale (2-31).
QUALITY = {"libx264": ("crf", 18), "libx265": ("crf", 20), "libvpx-vp9": ("crf", 31), "libsvtav1": ("crf", 35),
           "libaom-av1": ("crf", 30), "mpeg4": ("qscale", 3)}
QUALITY_RANGE = {"crf": (0, 63), "qscale": (1, 31)}
FF_QP2LAMBDA = 118  # FFmpeg's qscale -> global_quality factor
# AVColorSpace of the input -> the swscale matrix that turns RGB back into the same YUV.
MATRICES = {1: Colorspace.ITU709, 4: Colorspace.FCC, 5: Colorspace.ITU601, 6: Colorspace.ITU601,
            7: Colorspace.SMPTE240M, 9: Colorspace.BT2020, 10: Colorspace.BT2020}


class VideoError(ValueError):
    """A clip that cannot be stylised (no video stream, size changes, a generator failure...)."""


@dataclass(frozen=True)
class VideoOptions:
    codec: str | None = None  # encoder; None: the container's usual one (H.264 by libx264 for mp4/mov/mkv,
    # VP9 for webm, MPEG-4 for avi), or mpeg4 if this FFmpeg lacks it
    quality: int | None = None  # the encoder's QUALITY setting; None: its default there
    smoothing: float = 0.0  # TemporalSmoother strength; 0: off


def check_options(options: VideoOptions, suffixes: set[str]) -> None:
    """Fail before any work on an encoder this FFmpeg lacks, one a container of `suffixes` (the
    video inputs') cannot hold, or a quality one of the encoders used does not take."""
    if options.codec is not None:
        try:
            codec = av.Codec(options.codec, "w")
        except Exception:  # noqa: BLE001 -- PyAV raises its own error types for unknown names
            codec = None
        if codec is None or codec.type != "video":
            raise ValueError(f"--video-codec {options.codec}: not a video encoder of this FFmpeg build "
                             f"(available here: {', '.join(sorted(c for c in QUALITY if _has_encoder(c)))}, ...)")
    for suffix in sorted(suffixes):
        with av.open(io.BytesIO(), "w", format=MUXERS[suffix]) as container:  # nothing written
            encoder_options(_pick_encoder(container, options.codec), options.quality)
    TemporalSmoother(options.smoothing)  # validates the strength


def _has_encoder(name: str) -> bool:
    try:
        return av.Codec(name, "w").type == "video"
    except Exception:  # noqa: BLE001
        return False


def encoder_options(encoder: str, quality: int | None) -> dict[str, str]:
    """FFmpeg options giving `encoder` the constant quality `quality` (or QUALITY's default)."""
    kind, default = QUALITY.get(encoder, (None, None))
    if kind is None:
        if quality is not None:
            raise ValueError(f"--video-quality: no quality setting known for the {encoder} encoder "
                             f"(known: {', '.join(QUALITY)})")
        return {}
    quality = default if quality is None else quality
    low, high = QUALITY_RANGE[kind]
    if not low <= quality <= high:
        raise ValueError(f"--video-quality for {encoder} is its {kind}, in {low}..{high}; got {quality}")
    if kind == "qscale":
        return {"flags": "+qscale", "global_quality": str(quality * FF_QP2LAMBDA)}
    extra = {"b": "0", "row-mt": "1", "cpu-used": "4"} if encoder == "libvpx-vp9" else {}  # constant quality, faster
    return {"crf": str(quality), **extra}


def _pick_encoder(container: av.container.OutputContainer, requested: str | None) -> str:
    if requested is not None:
        if not {requested, av.Codec(requested, "w").name} & container.supported_codecs:
            raise VideoError(f"the {container.format.name} container cannot hold {requested} video "
                             f"(choose another --video-codec)")
        return av.Codec(requested, "w").name
    usual = container.default_video_codec  # h264 for mp4/mov/matroska, vp9 for webm, mpeg4 for avi
    return av.Codec(usual, "w").name if _has_encoder(usual) else FALLBACK_ENCODER


class _Ahead:
    """An iterator run by a daemon thread up to `depth` items ahead (so decoding overlaps the
    network); an exception it raises is raised where its next item would have been."""

    def __init__(self, items: Iterator, depth: int) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, args=(items,), daemon=True)
        self._thread.start()

    def _put(self, entry: tuple) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _fill(self, items: Iterator) -> None:
        try:
            for item in items:
                if not self._put(("item", item)):
                    return
            self._put(("end", None))
        except Exception as error:  # noqa: BLE001 -- handed to the consumer
            self._put(("error", error))

    def __iter__(self) -> Iterator:
        while True:
            kind, item = self._queue.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _decoded(source: av.container.InputContainer, stream) -> Iterator[tuple[av.VideoFrame, np.ndarray]]:
    """(frame, its (H, W, 3) uint8 RGB pixels) in display order; YUV -> RGB with the frame's own matrix."""
    for frame in source.decode(stream):
        yield frame, frame.to_ndarray(format="rgb24")


class _Output:
    """The output file being written: the stylised video stream, plus the input's audio tracks
    (read from a second opening of the input) muxed in time order as the video advances."""

    def __init__(self, path: str, muxer: str, source: Path, video_in, first: av.VideoFrame,
                 options: VideoOptions) -> None:
        faststart = {"movflags": "+faststart"} if muxer in ("mp4", "mov") else {}  # index first: plays while loading
        self.container = av.open(path, "w", format=muxer, options=faststart)
        self.audio_in: av.container.InputContainer | None = None
        try:
            self._setup(source, video_in, first, options)
        except BaseException:
            self.abort()
            raise

    def _setup(self, source: Path, video_in, first: av.VideoFrame, options: VideoOptions) -> None:
        self.notes: list[str] = []
        encoder = _pick_encoder(self.container, options.codec)
        rate = video_in.average_rate or video_in.guessed_rate or Fraction(25)
        self.video = self.container.add_stream(encoder, rate=rate, options=encoder_options(encoder, options.quality))
        width, height = first.width + first.width % 2, first.height + first.height % 2
        self.video.width, self.video.height, self.video.pix_fmt = width, height, PIX_FMT
        self.video.time_base = self.time_base = video_in.time_base
        context = self.video.codec_context
        context.time_base = video_in.time_base  # else frame times are rounded to the nominal rate's grid
        context.color_range = ColorRange.MPEG
        self.matrix = MATRICES.get(first.colorspace)
        if self.matrix is not None:  # else: unspecified in and out (players guess alike)
            context.colorspace, context.color_primaries, context.color_trc = (
                first.colorspace, first.color_primaries, first.color_trc)
        if first.rotation:
            self.video.set_display_rotation(first.rotation)
        if (width, height) != (first.width, first.height):
            self.notes.append(f"{first.width}x{first.height} has an odd side: written as {width}x{height} "
                              f"(last column/row repeated; {PIX_FMT} needs even sides)")
        kind, default = QUALITY.get(encoder, (None, None))
        self.notes.append(f"video: {encoder}" + (f" {kind} {default if options.quality is None else options.quality}"
                                                 if kind else ""))
        self.audio: list[tuple[object, object, bool]] = []  # (input stream, output stream, copied?)
        if video_in.container.streams.audio:
            self.audio_in = av.open(str(source))
            for stream in self.audio_in.streams.audio:
                self.audio.append(self._audio_track(stream))
            self._packets = self.audio_in.demux(*self.audio_in.streams.audio)
        self._waiting = None  # an audio packet read ahead of the video
        self.container.start_encoding()

    def _audio_track(self, stream) -> tuple[object, object, bool]:
        name = stream.codec_context.codec.canonical_name  # mp3, not its decoder's name mp3float
        if name in self.container.supported_codecs:
            self.notes.append(f"audio track {stream.index}: {name}, copied")
            return stream, self.container.add_stream_from_template(stream), True
        codec = av.Codec(self.container.default_audio_codec, "w")
        rates = codec.audio_rates
        rate = stream.sample_rate if not rates or stream.sample_rate in rates else max(rates)
        out = self.container.add_stream(codec.name, rate=rate, layout=stream.layout.name)
        self.notes.append(f"audio track {stream.index}: {name} re-encoded to {codec.name} "
                          f"(the {self.container.format.name} container cannot hold {name})")
        return stream, out, False

    def _mux_audio(self, until: float | None) -> None:
        """Mux the audio packets that start before `until` seconds (all of them if None)."""
        if not self.audio:
            return
        tracks = {stream.index: (out, copied) for stream, out, copied in self.audio}
        while True:
            packet = self._waiting if self._waiting is not None else next(self._packets, None)
            if packet is None:
                break
            stamp = packet.pts if packet.pts is not None else packet.dts
            if until is not None and stamp is not None and stamp * packet.time_base > until:
                self._waiting = packet
                return
            self._waiting = None
            if packet.dts is None and packet.size == 0:  # the demuxer's end-of-stream marker
                continue
            out, copied = tracks[packet.stream.index]
            if copied:
                packet.stream = out
                self.container.mux(packet)
            else:
                for frame in packet.decode():
                    frame.pts = None  # the encoder counts samples itself
                    self.container.mux(out.encode(frame))
        if until is None:  # the end: flush the audio encoders
            for _, out, copied in self.audio:
                if not copied:
                    self.container.mux(out.encode(None))

    def write(self, pts: int, rgb: np.ndarray) -> None:
        """One (H, W, 3) uint8 output frame at `pts` (in the input stream's time base)."""
        h, w = rgb.shape[:2]
        if (w, h) != (self.video.width, self.video.height):
            rgb = np.pad(rgb, ((0, self.video.height - h), (0, self.video.width - w), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
            format=PIX_FMT, dst_colorspace=self.matrix, dst_color_range=ColorRange.MPEG)
        frame.pts, frame.time_base = pts, self.time_base
        self._mux_audio(float(pts * self.time_base))
        self.container.mux(self.video.encode(frame))

    def finish(self) -> None:
        self.container.mux(self.video.encode(None))
        self._mux_audio(None)
        self.container.close()
        self._close_audio()

    def abort(self) -> None:
        for close in (self.container.close, self._close_audio):
            try:
                close()
            except Exception:  # noqa: BLE001 -- the file is being thrown away; the first error is what matters
                pass

    def _close_audio(self) -> None:
        if self.audio_in is not None:
            self.audio_in.close()


class _Stamps:
    """Output timestamps: the input's, repaired where a broken file has none or repeats one."""

    def __init__(self, stream) -> None:
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        self.step = max(1, round(1 / (rate * stream.time_base)))  # one frame in time-base units
        self.last: int | None = None

    def __call__(self, pts: int | None) -> int:
        if pts is None:
            pts = 0 if self.last is None else self.last + self.step
        if self.last is not None and pts <= self.last:
            pts = self.last + 1
        self.last = pts
        return pts


def translate_video(job: Job, generator, *, batch_size: int, tile: int | None, tile_overlap: int,
                    options: VideoOptions, bar: tqdm) -> tuple[int, list[str]]:
    """Stylise `job.source` into `job.target` (atomically); returns (frames, notes). Raises
    VideoError or PyAV's errors for a clip that cannot be done; the target is then untouched."""
    with av.open(str(job.source)) as source:
        if not source.streams.video:
            raise VideoError("no video stream in this file")
        stream = source.streams.video[0]
        stream.thread_type = "AUTO"  # FFmpeg's frame/slice threads
        listed = stream.frames
        frames = _Ahead(_decoded(source, stream), depth=2 * batch_size)
        with atomic_target(job.target) as tmp:
            writer = ThreadPoolExecutor(max_workers=1)  # one: frames must reach the encoder in order
            output, pending, count = None, deque(), 0
            smoother = TemporalSmoother(options.smoothing)
            stamps = _Stamps(stream)
            try:
                for batch in _chunks(iter(frames), batch_size):
                    first = batch[0][0]
                    if output is None:
                        output = _Output(tmp, MUXERS[job.target.suffix.lower()], job.source, stream, first, options)
                        size = (first.width, first.height)
                    for frame, _ in batch:
                        if (frame.width, frame.height) != size:
                            raise VideoError(f"frame {count + 1} is {frame.width}x{frame.height}, the first was "
                                             f"{size[0]}x{size[1]}: size changes within a clip are not supported")
                    rgbs = [rgb for _, rgb in batch]
                    try:
                        styled = translate_frames(generator, rgbs, tile, tile_overlap)
                    except Exception as error:  # noqa: BLE001 -- a model file can fail in any way
                        raise VideoError(f"the generator failed on frames {count + 1}-{count + len(batch)} "
                                         f"({size[0]}x{size[1]}): {type(error).__name__}: {error}") from None
                    entries = [(stamps(frame.pts), rgb, out) for (frame, rgb), out in zip(batch, styled)]
                    pending.append(writer.submit(_write, output, smoother, entries))
                    while len(pending) > 2 or (pending and pending[0].done()):
                        pending.popleft().result()
                    count += len(batch)
                    bar.update(len(batch))
                if output is None:
                    raise VideoError("no video frames could be decoded")
                while pending:
                    pending.popleft().result()
                output.finish()
            except BaseException:
                for future in pending:
                    future.cancel()
                writer.shutdown(wait=True)
                if output is not None:
                    output.abort()
                raise
            finally:
                writer.shutdown(wait=True)
                frames.close()
    notes = output.notes
    if listed and count < listed:
        notes.append(f"decoded {count} of the {listed} frames the container lists (damaged near the end?)")
    return count, notes


def _chunks(items: Iterator, size: int) -> Iterator[list]:
    while chunk := list(itertools.islice(items, size)):
        yield chunk


def _write(output: _Output, smoother: TemporalSmoother, entries: list[tuple[int, np.ndarray, np.ndarray]]) -> None:
    """Smooth (if asked) and encode a batch of (pts, input frame, stylised frame); runs in the writer thread."""
    for pts, frame, styled in entries:
        output.write(pts, smoother(frame, styled) if smoother.strength else styled)


def _listed_frames(path: Path) -> int:
    """Frames the container says the clip has (0 if unknown or unreadable: decided when decoding)."""
    try:
        with av.open(str(path)) as container:
            return container.streams.video[0].frames if container.streams.video else 0
    except Exception:  # noqa: BLE001
        return 0


def translate_videos(jobs: list[Job], generator, *, batch_size: int = 1, tile: int | None = None,
                     tile_overlap: int = 32, overwrite: bool = False, options: VideoOptions = VideoOptions(),
                     progress: bool = True) -> Summary:
    """Stylise every job's clip into its target; broken clips are listed in the summary, not fatal."""
    def one(job: Job, bar: tqdm) -> tuple[int, list[str]]:
        return translate_video(job, generator, batch_size=batch_size, tile=tile, tile_overlap=tile_overlap,
                               options=options, bar=bar)

    def total(todo: list[Job]) -> int | None:
        listed = [_listed_frames(job.source) for job in todo]
        return sum(listed) if all(listed) else None

    return run_each(jobs, one, kind="videos", overwrite=overwrite, progress=progress, total=total, reason=_reason)


def _reason(error: Exception) -> str:
    if isinstance(error, VideoError):
        return str(error)
    if isinstance(error, av.error.FFmpegError):
        return f"not a readable video ({error.strerror or error})"
    if isinstance(error, OSError):
        return f"cannot read or write it: {error}"
    return f"{type(error).__name__}: {error}"
