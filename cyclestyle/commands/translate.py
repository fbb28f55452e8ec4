"""`cyclestyle translate MODEL INPUT... --output DIR`: translate files, folders and glob patterns."""
from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from pathlib import Path

DESCRIPTION = """\
Translate images and videos with a trained model. MODEL is a cyclestyle checkpoint (.ckpt) of any family
(CycleGAN, U-GAT-IT, CUT, FastCUT, fast_style, multi_style, AdaIN), a file written by `cyclestyle export` (.onnx, .pt2, .pt), a
reference CycleGAN generator (.pth, e.g. the zoo's latest_net_G.pth), an official CUT generator
(latest_net_G.pth), an official U-GAT-IT checkpoint (*_params_*.pt) or a pytorch/examples
fast_neural_style model (candy.pth, mosaic.pth, ...); architectures are read from the weights.
multi_style checkpoints need --style-index or --style-mix, AdaIN ones --style images (every content x
style, `<content>__<style>.png`, or their blend). Networks tied to one input size (full-mode U-GAT-IT) run on tiles of that size. INPUTs are image and video files,
folders (searched recursively) and glob patterns (quote them); the output folder mirrors their
relative paths. Every image keeps its size: it is padded to the multiple the network needs and
cropped back. Alpha channels are kept (png, webp, tif outputs); grayscale inputs give RGB outputs.
Existing outputs are skipped (--overwrite redoes them) and every file is written atomically, so
an interrupted run can simply be started again. Unreadable inputs are listed and skipped; the
exit status is 1 if any input failed.

Videos (.mp4 .m4v .mov .mkv .webm .avi, alone or in folders and patterns beside images) are
stylised frame by frame, --batch-size frames at a time, into the same container (H.264 for mp4,
mov and mkv, VP9 for webm, MPEG-4 for avi; --video-codec, --video-quality) with the input's frame
timestamps (same frame count and rate), size and display rotation; audio tracks are copied (or
re-encoded where the container cannot hold them, which is printed). --format does not apply to
them. Odd widths/heights get one repeated column/row (yuv420p needs even sides). A killed run
(Ctrl-C, SIGTERM) leaves no partial video. Animated GIFs, WebPs and PNGs are translated frame by frame
likewise into the same format, with their frame durations and loop count (--temporal-smoothing
applies; transparency is not kept); still ones are images."""

EXAMPLES = """\
examples:
  cyclestyle translate outputs/train/runs/DATE/checkpoints/last.ckpt ~/Pictures/holiday --output ~/holiday_monet
  cyclestyle translate model.ckpt photos/ --output out/ --direction b2a --batch-size 8 --precision bf16
  cyclestyle translate latest_net_G.pth big_photos/ --output out/ --tile 512
  cyclestyle translate monet.onnx 'shots/**/*.jpg' --output out/ --format jpg --quality 90
  cyclestyle translate model.ckpt holiday.mp4 clips/ --output out/ --batch-size 4 --temporal-smoothing
  cyclestyle translate multi_style.ckpt photos/ --output out/ --style-mix 0.7,0.3
  cyclestyle translate mosaic.pth photos/ --output out/   # a pytorch/examples fast_neural_style model
"""


def build_parser(prog: str = "cyclestyle translate") -> argparse.ArgumentParser:
    from ..inference.devices import PRECISIONS
    from ..inference.files import FORMATS
    from ..inference.style_mix import add_style_mix_arguments
    from ..inference.styles import add_style_arguments
    from ..networks import GENERATORS, NORMS

    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="model file: .ckpt, .onnx, .pt2 (torch.export), .pt (TorchScript), reference .pth or U-GAT-IT .pt")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image or video files, folders or glob patterns")
    parser.add_argument("-o", "--output", required=True, help="output folder (created; must be outside the input folders)")
    parser.add_argument("--direction", choices=("a2b", "b2a"), default="a2b",
                        help="a2b translates domain A -> B, b2a B -> A (a model without that direction, e.g. CUT's b2a, is an error); "
                             "ignored for single-generator files (default: a2b)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="images (or frames of a video) per batch; only images of one size share a batch "
                             "(default: 8 on a GPU, 1 on the CPU, where larger batches are no faster)")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes decoding inputs and threads encoding outputs; 0 = all in the main process "
                             "(default: 2 on a GPU; on the CPU only cores torch leaves free, 0 when it uses them all, "
                             "as decoding would slow the generator)")
    parser.add_argument("--device", default="auto", help="auto (a CUDA GPU if present, else the CPU) | cpu | cuda | cuda:N (default: auto)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="auto = bf16 where the hardware runs it natively (CPUs with AVX512-BF16/AMX, Ampere+ GPUs), "
                             "else 32; int8 = quantised on x86 CPUs, calibrated on your first images (see "
                             "--calibration); ONNX models always run in 32 (default: auto)")
    parser.add_argument("--calibration", type=int, default=None, metavar="N",
                        help="--precision int8: calibrate on the first N input images, and check on them that the "
                             "output stays >= 35 dB PSNR from fp32, else translate in the exact precision instead "
                             "(default: 8; x86 CPUs; needs the int8 extra: pip install 'cyclestyle[int8]')")
    parser.add_argument("--compile", action="store_true",
                        help="run the generator through torch.compile: faster for large folders (about 1.6x in bf16 "
                             "on this project's CPU benchmark), after a warm-up per new image size (about a minute the "
                             "first time, seconds once cached); not for .onnx/.pt files")
    parser.add_argument("--tile", type=int, default=None,
                        help="run the generator on overlapping TILE x TILE pieces blended without seams; bounds memory "
                             "for large images (default: whole images)")
    parser.add_argument("--tile-overlap", type=int, default=32, help="pixels shared by neighbouring tiles (default: 32)")
    parser.add_argument("--format", choices=(*FORMATS, "same"), default="png",
                        help="output format; same = the input's own (default: png)")
    parser.add_argument("--quality", type=int, default=95, help="jpg/webp quality 1-100 (default: 95)")
    parser.add_argument("--overwrite", action="store_true", help="translate again even if the output exists")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (the summary line is still printed)")
    video = parser.add_argument_group("videos (and animated GIF/WebP/PNG: --temporal-smoothing)")
    video.add_argument("--video-codec", default=None,
                       help="encoder, e.g. libx264, libx265, libvpx-vp9, libsvtav1, mpeg4 (default: the container's "
                            "usual one: libx264 for mp4/mov/mkv, libvpx-vp9 for webm, mpeg4 for avi; mpeg4 if missing)")
    video.add_argument("--video-quality", type=int, default=None,
                       help="constant quality: the crf of libx264/libx265/libvpx-vp9/libsvtav1/libaom-av1 (lower = "
                            "better and larger; defaults 18/20/31/35/30), the qscale 1-31 of mpeg4 (default 3)")
    video.add_argument("--temporal-smoothing", type=float, nargs="?", const=0.5, default=0.0, metavar="STRENGTH",
                       help="less flicker: blend each output frame with the previous one warped along the input's "
                            "optical flow (Farneback) where the flow is consistent; STRENGTH in [0, 1) (0.5 if "
                            "given alone); costs two flow fields per frame on the CPU (default: off)")
    add_style_arguments(parser)
    add_style_mix_arguments(parser)
    arch = parser.add_argument_group("architecture of a reference .pth (normally read from the weights)")
    arch.add_argument("--generator", choices=GENERATORS, default=None, help="generator name")
    arch.add_argument("--ngf", type=int, default=None, help="filters in the first layer")
    arch.add_argument("--norm", choices=NORMS, default=None, help="normalisation (reference default: instance)")
    arch.add_argument("--dropout", action="store_true", default=None, help="ResNet blocks with dropout")
    return parser


def _validate(args: argparse.Namespace) -> None:
    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.workers is not None and args.workers < 0:
        raise ValueError(f"--workers must be >= 0, got {args.workers}")
    if not 1 <= args.quality <= 100:
        raise ValueError(f"--quality must be in 1..100, got {args.quality}")
    if args.tile is not None and args.tile < 16:
        raise ValueError(f"--tile must be >= 16 pixels, got {args.tile}")
    if args.tile is not None and not 0 <= args.tile_overlap < args.tile:
        raise ValueError(f"--tile-overlap must be in [0, --tile), got {args.tile_overlap}")
    if not 0 <= args.temporal_smoothing < 1:
        raise ValueError(f"--temporal-smoothing must be in [0, 1), got {args.temporal_smoothing}")
    if args.calibration is not None and args.precision != "int8":
        raise ValueError("--calibration is for --precision int8")


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


def style_binding(args: argparse.Namespace, styles):
    """`load_generator(bind=...)` for the style options: multi_style's --style-index/--style-mix, or
    AdaIN's --style images (`styles`, from `read_styles`)."""
    from ..inference.style_mix import style_mix_binding
    from ..inference.styles import bind_for

    if styles is not None and (args.style_index is not None or args.style_mix is not None):
        raise ValueError("--style (AdaIN) and --style-index/--style-mix (multi_style) do not go together")
    return style_mix_binding(index=args.style_index, mix=args.style_mix, otherwise=bind_for(styles))


def _int8(generator, args: argparse.Namespace, styles, sources: list, device, reload):
    """(generator, precision) for --precision int8: the quantised generator, or, when its outputs
    are too far from fp32's on the calibration images, the exact one (`reload(precision)`) with a warning."""
    from ..inference.devices import resolve_precision
    from ..inference.quantize import DEFAULT_CALIBRATION, QualityError, int8_generator

    if styles is not None:
        raise ValueError("--precision int8 does not quantise style models (--style); use 32 or bf16")
    try:
        int8, calibration = int8_generator(generator, sources, count=DEFAULT_CALIBRATION if args.calibration is None else args.calibration,
                                           tile=args.tile, overlap=args.tile_overlap)
    except QualityError as error:
        exact = resolve_precision("auto", device)
        print(f"warning: {error}: translating in precision {exact} instead", file=sys.stderr)
        return reload(exact), exact
    print(f"int8: calibrated on {calibration.images} images in {calibration.seconds:.0f} s; outputs "
          f">= {calibration.psnr:.1f} dB PSNR from fp32 on them", file=sys.stderr)
    return int8, "int8"


def _by_kind(jobs: list, animated: set) -> tuple[list, list, list]:
    """(image jobs, video jobs, animation jobs), each in the given order; `animated`: the sources
    that are animated GIFs/WebPs/PNGs."""
    from ..inference.files import is_video

    videos = [job for job in jobs if is_video(job.source)]
    animations = [job for job in jobs if job.source in animated]
    images = [job for job in jobs if not is_video(job.source) and job.source not in animated]
    return images, videos, animations


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ..atomic import remove_stale_temps
    from ..data.images import IMAGE_EXTENSIONS
    from ..inference.batch import default_workers, translate_files
    from ..inference.devices import bf16_trap, resolve_device, resolve_precision
    from ..inference.animation import as_animation, is_animation, translate_animations
    from ..inference.files import check_writable, plan, plan_styled
    from ..inference.styles import read_styles, runs
    from ..inference.sources import load_generator

    try:
        _validate(args)
        output = Path(args.output).expanduser()
        styles = read_styles(args)
        planned = (plan(args.inputs, output, args.format) if styles is None else
                   plan_styled(args.inputs, output, styles.names, blend=styles.blend, fmt=args.format))
        animated = {source for source in {job.source for job in planned} if is_animation(source)}  # kept animated
        planned = [as_animation(job) if job.source in animated else job for job in planned]
        jobs, videos, animations = _by_kind(planned, animated)
        if videos:
            from ..inference.video import VideoOptions, check_options, translate_videos

            video_options = VideoOptions(args.video_codec, args.video_quality, args.temporal_smoothing)
            check_options(video_options, {job.source.suffix.lower() for job in videos})
        check_writable(output)
        device = resolve_device(args.device)
        precision = resolve_precision(args.precision, device)
        overrides = {"name": args.generator, "ngf": args.ngf, "norm": args.norm, "dropout": args.dropout}
        def load(precision: str):
            return load_generator(args.model, direction=args.direction, device=device, precision=precision,
                                  overrides=overrides, compile=args.compile, bind=style_binding(args, styles))

        generator = load("32" if precision == "int8" else precision)  # int8: quantised from fp32, compiled
        if precision == "int8":
            generator, precision = _int8(generator, args, styles, [job.source for job in jobs], device, load)
        style_runs = [(g, *_by_kind(chosen, animated))
                      for g, chosen in runs(generator, styles, planned, precision=precision, compile=args.compile)]
    except (OSError, ValueError, RuntimeError, ImportError) as error:
        print(f"cyclestyle translate: error: {error}", file=sys.stderr)
        return 2
    stale = remove_stale_temps(output, legacy_suffixes=IMAGE_EXTENSIONS)  # left by killed runs (never a live run's)
    if stale:
        print(f"Removed {len(stale)} temporary file(s) left in {output} by interrupted runs", file=sys.stderr)
    precision_note = "32 (ONNX)" if type(generator).__name__ == "OnnxGenerator" else precision
    trap = precision_note == precision and bf16_trap(precision, device, setting="--precision", better="--precision 32")
    if trap:
        print(f"warning: {trap}", file=sys.stderr)
    counts = (f"{len(jobs)} images" + (f", {len(videos)} videos" if videos else "")
              + (f", {len(animations)} animations" if animations else ""))
    print(f"{counts}; device {device}, precision {precision_note} (override with --device/--precision)",
          file=sys.stderr)
    batch_size = args.batch_size or (8 if generator.device.type == "cuda" else 1)
    workers = default_workers(generator.device) if args.workers is None else args.workers
    summaries = []
    with _sigterm_unwinds():
        for generator, jobs, videos, animations in style_runs:  # one run per style (or blend) of a style model
            if jobs or not (videos or animations):
                summaries.append(translate_files(jobs, generator, batch_size=batch_size, workers=workers,
                                                 tile=args.tile, tile_overlap=args.tile_overlap, overwrite=args.overwrite,
                                                 quality=args.quality, progress=not args.no_progress))
            if videos:
                summaries.append(translate_videos(videos, generator, batch_size=batch_size, tile=args.tile,
                                                  tile_overlap=args.tile_overlap, overwrite=args.overwrite,
                                                  options=video_options, progress=not args.no_progress))
                for note in summaries[-1].notes:
                    print(note, file=sys.stderr)
            if animations:
                summaries.append(translate_animations(animations, generator, batch_size=batch_size, tile=args.tile,
                                                      tile_overlap=args.tile_overlap, overwrite=args.overwrite,
                                                      smoothing=args.temporal_smoothing, quality=args.quality,
                                                      progress=not args.no_progress))
    for summary in summaries:
        for source, reason in summary.failed:
            print(f"failed: {source}: {reason}", file=sys.stderr)
        print(summary.line(output))
    return 1 if any(summary.failed for summary in summaries) else 0
