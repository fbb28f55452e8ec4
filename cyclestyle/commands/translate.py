"""`cyclestyle translate MODEL INPUT... --output DIR`: translate files, folders and glob patterns."""
from __future__ import annotations

import argparse
import sys

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
    from ..devices import PRECISIONS
    from ..inference.files import FORMATS
    from .options import add_style_arguments, add_style_mix_arguments
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
                             "for large images; 0 = always whole images (default: whole images up to 2048 x 2048 "
                             "pixels, 1024 px tiles for larger ones, which would not fit in memory whole)")
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


def options_from(args: argparse.Namespace):
    """The `TranslateOptions` these parsed arguments ask for."""
    from ..inference.api import TranslateOptions
    from .options import style_weights

    return TranslateOptions(
        direction=args.direction, device=args.device, precision=args.precision, calibration=args.calibration,
        compile=args.compile, batch_size=args.batch_size, workers=args.workers, tile=args.tile,
        tile_overlap=args.tile_overlap, format=args.format, quality=args.quality, overwrite=args.overwrite,
        progress=not args.no_progress, video_codec=args.video_codec, video_quality=args.video_quality,
        temporal_smoothing=args.temporal_smoothing, style=args.style, style_weights=style_weights(args.style_weights),
        blend=args.blend, alpha=args.alpha, preserve_color=args.preserve_color, style_size=args.style_size,
        style_index=args.style_index, style_mix=args.style_mix, generator=args.generator, ngf=args.ngf,
        norm=args.norm, dropout=args.dropout)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ..inference.api import translate

    try:
        result = translate(args.model, args.inputs, args.output, options_from(args))
    except (OSError, ValueError, RuntimeError, ImportError) as error:
        print(f"cyclestyle translate: error: {error}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, SystemExit) as stop:  # Ctrl-C, or SIGTERM (raised as SystemExit by the library)
        code = 130 if isinstance(stop, KeyboardInterrupt) else stop.code
        print("cyclestyle translate: interrupted; the outputs written so far are complete, and running the same "
              "command again translates the rest", file=sys.stderr)
        return code if isinstance(code, int) else 1
    for summary in result.summaries:
        for source, reason in summary.failed:
            print(f"failed: {source}: {reason}", file=sys.stderr)
        print(summary.line(result.output))
    return 1 if result.failed else 0
