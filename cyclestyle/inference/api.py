"""The translation library call every front end uses: `cyclestyle.translate` and `Translator`.

    import cyclestyle
    result = cyclestyle.translate("last.ckpt", ["photos/"], "out/", direction="b2a", tile=512)
    print(result.summaries[0].line(result.output), result.failed)

    from cyclestyle.inference import Translator
    translator = Translator("mosaic.pth")             # loaded once
    painted = translator.image(PIL.Image.open("a.jpg"))  # in memory: PIL image or (H, W, 3) uint8 array

It does what `cyclestyle translate` does (the command is argument parsing plus this call): images,
animated GIF/WebP/PNG, videos, tiles, AdaIN styles and multi_style mixes, every precision incl.
int8, skipping existing outputs, atomic writes, one summary per kind and style.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from ..options import with_changes
from .jobs import Summary


@dataclass(frozen=True)
class TranslateOptions:
    """Every setting of a translation run (`cyclestyle translate --help` says more on each)."""

    direction: str = "a2b"  # a2b | b2a; ignored for single-generator files
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto | 32 | bf16 | 16 | int8 (x86 CPUs, calibrated on the first images)
    calibration: int | None = None  # int8: calibration images (None: 8)
    compile: bool = False  # torch.compile the generator
    batch_size: int | None = None  # None: 8 on a GPU, 1 on the CPU
    workers: int | None = None  # decode processes; None: 2 on a GPU, the cores torch leaves free on the CPU
    tile: int | None = None  # overlapping tile x tile pieces; None: whole up to 2048 x 2048 px, 1024 tiles above; 0: whole
    tile_overlap: int = 32  # pixels shared by neighbouring tiles
    format: str = "png"  # png | jpg | webp | same (the input's)
    quality: int = 95  # jpg/webp quality 1-100
    overwrite: bool = False  # translate again although the output exists
    progress: bool = True  # progress bars on stderr
    video_codec: str | None = None  # None: the container's usual encoder
    video_quality: int | None = None  # the encoder's crf/qscale; None: its default
    temporal_smoothing: float = 0.0  # videos and animations: blend with the flow-warped previous output, [0, 1)
    style: Sequence[str] | None = None  # AdaIN: style images (files, folders, patterns, builtin:NAME)
    style_weights: Sequence[float] | None = None  # AdaIN: blend all styles with these weights
    blend: bool = False  # AdaIN: blend all styles with equal weights
    alpha: float | None = None  # AdaIN: style strength in [0, 1] (None: 1)
    preserve_color: bool = False  # AdaIN: keep the content's colours
    style_size: int = 512  # AdaIN: style images' shorter side (0: as they are)
    style_index: int | None = None  # multi_style: the style to apply
    style_mix: Sequence[float] | None = None  # multi_style: one weight per style
    generator: str | None = None  # reference .pth architecture overrides (None: read from the weights)
    ngf: int | None = None
    norm: str | None = None
    dropout: bool | None = None

    def check(self) -> None:
        """ValueError naming the option for a value out of range (before any work)."""
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.workers is not None and self.workers < 0:
            raise ValueError(f"--workers must be >= 0, got {self.workers}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"--quality must be in 1..100, got {self.quality}")
        if self.tile is not None and self.tile != 0 and self.tile < 16:
            raise ValueError(f"--tile must be 0 (whole images) or >= 16 pixels, got {self.tile}")
        if self.tile and not 0 <= self.tile_overlap < self.tile:
            raise ValueError(f"--tile-overlap must be in [0, --tile), got {self.tile_overlap}")
        if not 0 <= self.temporal_smoothing < 1:
            raise ValueError(f"--temporal-smoothing must be in [0, 1), got {self.temporal_smoothing}")
        if self.calibration is not None and self.precision != "int8":
            raise ValueError("--calibration is for --precision int8")
        if self.style is not None and (self.style_index is not None or self.style_mix is not None):
            raise ValueError("--style (AdaIN) and --style-index/--style-mix (multi_style) do not go together")


@dataclass
class TranslateResult:
    output: Path
    device: str  # where it ran
    precision: str  # what it ran in (e.g. "bf16", "int8", "32 (ONNX)")
    summaries: list[Summary] = field(default_factory=list)  # per style run and kind (images, videos, animations)

    @property
    def failed(self) -> list[tuple[Path, str]]:
        return [entry for summary in self.summaries for entry in summary.failed]


def _options(options: TranslateOptions | None, changes: dict) -> TranslateOptions:
    return with_changes(options, TranslateOptions, changes, call="translate")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


class Translator:
    """A model file opened once for translation: any format `load_generator` reads, with the style
    options bound. `image()` translates in memory; `files()` runs over inputs like the CLI."""

    def __init__(self, model: str | os.PathLike, options: TranslateOptions | None = None, *,
                 notify: Callable[[str], None] = _stderr, sample_images: Sequence[Path] = (), styles=None,
                 **changes) -> None:
        """`sample_images`: int8's calibration images; `styles`: the options' styles if already read."""
        from ..devices import resolve_device, resolve_precision

        self.model, self.options, self.notify = Path(model).expanduser(), _options(options, changes), notify
        o = self.options
        o.check()
        self.styles = styles or read_option_styles(o)
        self.device = resolve_device(o.device)
        precision = resolve_precision(o.precision, self.device)
        self.generator = self._load("32" if precision == "int8" else precision)  # int8: quantised from fp32
        if precision == "int8":
            self.generator = self._int8(list(sample_images))

    def _load(self, precision: str):
        from .sources import load_generator

        o = self.options
        overrides = {"name": o.generator, "ngf": o.ngf, "norm": o.norm, "dropout": o.dropout}
        return load_generator(self.model, direction=o.direction, device=self.device, precision=precision,
                              overrides=overrides, compile=o.compile, bind=style_binding(o, self.styles))

    def _int8(self, images: list[Path]):
        """The quantised generator, or, when its outputs are too far from fp32's on the calibration
        images, the exact one with a warning."""
        from ..devices import resolve_precision
        from .quantize import DEFAULT_CALIBRATION, QualityError, int8_generator

        o = self.options
        if self.styles is not None:
            raise ValueError("--precision int8 does not quantise style models (--style); use 32 or bf16")
        try:
            int8, calibration = int8_generator(self.generator, images, tile=o.tile, overlap=o.tile_overlap,
                                               count=DEFAULT_CALIBRATION if o.calibration is None else o.calibration)
        except QualityError as error:
            exact = resolve_precision("auto", self.device)
            self.notify(f"warning: {error}: translating in precision {exact} instead")
            return self._load(exact)
        self.notify(f"int8: calibrated on {calibration.images} images in {calibration.seconds:.0f} s; outputs "
                    f">= {calibration.psnr:.1f} dB PSNR from fp32 on them")
        return int8

    @property
    def precision(self) -> str:
        """What the generator runs in, as a summary says it ("32 (ONNX)" for onnxruntime)."""
        g = self.generator
        return f"{g.precision} (ONNX)" if g.runtime == "onnxruntime" else g.precision

    def image(self, image: Image.Image | np.ndarray) -> Image.Image | np.ndarray:
        """Translate one image in memory, at its own size: a PIL image (alpha kept; grayscale and
        palette images give RGB) or an (H, W, 3) / (H, W) uint8 array (-> (H, W, 3) uint8). A style
        model uses the first style (or blend) of the options."""
        from .files import decode_image, encode_image
        from .tiling import translate_frames

        array = isinstance(image, np.ndarray)
        if array:
            if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
                raise ValueError(f"expected an (H, W, 3) or (H, W) uint8 array, got {image.dtype} {image.shape}")
            image = Image.fromarray(image)
        rgb, alpha = decode_image(image)
        out = translate_frames(self.generator, [rgb], self.options.tile, self.options.tile_overlap)[0]  # (H, W, 3)
        return out if array else encode_image(out, alpha)

    def files(self, inputs: Sequence[str | os.PathLike], output: str | os.PathLike) -> TranslateResult:
        return _run(self, [str(i) for i in inputs], Path(output).expanduser())


def style_binding(o: TranslateOptions, styles):
    """`load_generator(bind=...)` for the style options: multi_style's style_index/style_mix, or
    AdaIN's style images (`styles`, as `read_styles` gives them)."""
    from .style_mix import style_mix_binding
    from .styles import bind_for

    return style_mix_binding(index=o.style_index, mix=None if o.style_mix is None else list(o.style_mix),
                             otherwise=bind_for(styles))


def read_option_styles(o: TranslateOptions):
    """The style images the options name, read and scaled (None without `style`)."""
    from .styles import read_styles

    return read_styles(None if o.style is None else list(o.style),
                       weights=None if o.style_weights is None else [float(w) for w in o.style_weights],
                       blend=o.blend, alpha=o.alpha, preserve_color=o.preserve_color, size=o.style_size)


def translate(model: str | os.PathLike, inputs: Sequence[str | os.PathLike] | str | os.PathLike,
              output: str | os.PathLike, options: TranslateOptions | None = None, *,
              notify: Callable[[str], None] = _stderr, **changes) -> TranslateResult:
    """Translate image and video files, folders (recursively) and glob patterns into `output` with
    `model`, exactly as `cyclestyle translate` does; `changes` are `TranslateOptions` fields.
    Raises ValueError/OSError/ImportError (one line naming the file or option) before any work for
    bad settings; inputs that fail later are listed in the result's summaries, not raised."""
    from .files import check_writable

    inputs = [str(inputs)] if isinstance(inputs, (str, os.PathLike)) else [str(i) for i in inputs]
    options = _options(options, changes)
    options.check()
    output = Path(output).expanduser()
    styles = read_option_styles(options)
    plan = _Plan(inputs, output, options, styles)  # every input found before the model loads
    check_writable(output)
    translator = Translator(model, options, notify=notify, sample_images=[job.source for job in plan.images],
                            styles=styles)
    return _run(translator, inputs, output, plan)


class _Plan:
    """The jobs of a run, by kind: images, videos (in their container), animations (in their format)."""

    def __init__(self, inputs: list[str], output: Path, options: TranslateOptions, styles) -> None:
        from .animation import as_animation, is_animation
        from .files import is_video, plan, plan_styled

        self.jobs = (plan(inputs, output, options.format) if styles is None else
                     plan_styled(inputs, output, styles.names, blend=styles.blend, fmt=options.format))
        self.animated = {source for source in {job.source for job in self.jobs} if is_animation(source)}
        self.jobs = [as_animation(job) if job.source in self.animated else job for job in self.jobs]
        self.videos = [job for job in self.jobs if is_video(job.source)]
        self.animations = [job for job in self.jobs if job.source in self.animated]
        self.images = [job for job in self.jobs if not is_video(job.source) and job.source not in self.animated]
        if self.videos:
            from .video import VideoOptions, check_options

            self.video_options = VideoOptions(options.video_codec, options.video_quality, options.temporal_smoothing)
            check_options(self.video_options, {job.source.suffix.lower() for job in self.videos})

    def of(self, jobs: list) -> tuple[list, list, list]:
        """(images, videos, animations) among `jobs`, in their order."""
        chosen = set(map(id, jobs))
        return tuple([job for job in kind if id(job) in chosen] for kind in (self.images, self.videos, self.animations))


def _run(translator: Translator, inputs: list[str], output: Path, plan: _Plan | None = None) -> TranslateResult:
    from ..atomic import remove_stale_temps
    from ..data.images import IMAGE_EXTENSIONS
    from ..devices import bf16_trap
    from .batch import default_workers, translate_files
    from .styles import runs

    o, notify, generator = translator.options, translator.notify, translator.generator
    if plan is None:
        from .files import check_writable

        plan = _Plan(inputs, output, o, translator.styles)
        check_writable(output)
    style_runs = [(g, *plan.of(chosen)) for g, chosen in
                  runs(generator, translator.styles, plan.jobs, precision=generator.precision, compile=o.compile)]
    stale = remove_stale_temps(output, legacy_suffixes=IMAGE_EXTENSIONS)  # left by killed runs (never a live run's)
    if stale:
        notify(f"Removed {len(stale)} temporary file(s) left in {output} by interrupted runs")
    trap = generator.runtime == "torch" and bf16_trap(generator.precision, translator.device, setting="--precision",
                                                       better="--precision 32")
    if trap:
        notify(f"warning: {trap}")
    counts = (f"{len(plan.images)} images" + (f", {len(plan.videos)} videos" if plan.videos else "")
              + (f", {len(plan.animations)} animations" if plan.animations else ""))
    notify(f"{counts}; device {translator.device}, precision {translator.precision} "
           f"(override with --device/--precision)")
    batch_size = o.batch_size or (8 if generator.device.type == "cuda" else 1)
    workers = default_workers(generator.device) if o.workers is None else o.workers
    shared = dict(batch_size=batch_size, tile=o.tile, tile_overlap=o.tile_overlap, overwrite=o.overwrite,
                  progress=o.progress)
    result = TranslateResult(output=output, device=str(translator.device), precision=translator.precision)
    with _sigterm_unwinds():
        for generator, images, videos, animations in style_runs:  # one run per style (or blend) of a style model
            if images or not (videos or animations):
                result.summaries.append(translate_files(images, generator, workers=workers, quality=o.quality, **shared))
            if videos:
                from .video import translate_videos

                result.summaries.append(translate_videos(videos, generator, options=plan.video_options, **shared))
                for note in result.summaries[-1].notes:
                    notify(note)
            if animations:
                from .animation import translate_animations

                result.summaries.append(translate_animations(animations, generator, smoothing=o.temporal_smoothing,
                                                             quality=o.quality, **shared))
    return result


@contextlib.contextmanager
def _sigterm_unwinds():
    """SIGTERM raises SystemExit (as Ctrl-C raises KeyboardInterrupt), so temporary files are
    removed on the way out instead of being left for the next run to clean."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
