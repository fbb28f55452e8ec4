"""`cyclestyle translate MODEL INPUT... --output DIR`: translate files, folders and glob patterns."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DESCRIPTION = """\
Translate images with a trained model. MODEL is a cyclestyle checkpoint (.ckpt) of any family
(CycleGAN, U-GAT-IT, CUT, FastCUT), a file written by `cyclestyle export` (.onnx, .pt2, .pt), a
reference CycleGAN generator (.pth, e.g. the zoo's latest_net_G.pth), an official CUT generator
(latest_net_G.pth) or an official U-GAT-IT checkpoint (*_params_*.pt); architectures are read
from the weights. Networks tied to one input size (full-mode U-GAT-IT) run on tiles of that size. INPUTs are image files,
folders (searched recursively) and glob patterns (quote them); the output folder mirrors their
relative paths. Every image keeps its size: it is padded to the multiple the network needs and
cropped back. Alpha channels are kept (png, webp, tif outputs); grayscale inputs give RGB outputs.
Existing outputs are skipped (--overwrite redoes them) and every file is written atomically, so
an interrupted run can simply be started again. Unreadable inputs are listed and skipped; the
exit status is 1 if any input failed."""

EXAMPLES = """\
examples:
  cyclestyle translate outputs/train/runs/DATE/checkpoints/last.ckpt ~/Pictures/holiday --output ~/holiday_monet
  cyclestyle translate model.ckpt photos/ --output out/ --direction b2a --batch-size 8 --precision bf16
  cyclestyle translate latest_net_G.pth big_photos/ --output out/ --tile 512
  cyclestyle translate monet.onnx 'shots/**/*.jpg' --output out/ --format jpg --quality 90
"""


def build_parser(prog: str = "cyclestyle translate") -> argparse.ArgumentParser:
    from ..inference.devices import PRECISIONS
    from ..inference.files import FORMATS
    from ..networks import GENERATORS, NORMS

    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="model file: .ckpt, .onnx, .pt2 (torch.export), .pt (TorchScript), reference .pth or U-GAT-IT .pt")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    parser.add_argument("-o", "--output", required=True, help="output folder (created; must be outside the input folders)")
    parser.add_argument("--direction", choices=("a2b", "b2a"), default="a2b",
                        help="a2b translates domain A -> B, b2a B -> A (a model without that direction, e.g. CUT's b2a, is an error); "
                             "ignored for single-generator files (default: a2b)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="images per batch; only images of one size share a batch (default: 8 on a GPU, 1 on the "
                             "CPU, where larger batches are no faster)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="processes decoding inputs and threads encoding outputs; 0 = all in the main process (default: %(default)s)")
    parser.add_argument("--device", default="auto", help="auto (a CUDA GPU if present, else the CPU) | cpu | cuda | cuda:N (default: auto)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="auto = bf16 where the hardware runs it natively (CPUs with AVX512-BF16/AMX, Ampere+ GPUs), "
                             "else 32; ONNX models always run in 32 (default: auto)")
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
    arch = parser.add_argument_group("architecture of a reference .pth (normally read from the weights)")
    arch.add_argument("--generator", choices=GENERATORS, default=None, help="generator name")
    arch.add_argument("--ngf", type=int, default=None, help="filters in the first layer")
    arch.add_argument("--norm", choices=NORMS, default=None, help="normalisation (reference default: instance)")
    arch.add_argument("--dropout", action="store_true", default=None, help="ResNet blocks with dropout")
    return parser


def _validate(args: argparse.Namespace) -> None:
    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.workers < 0:
        raise ValueError(f"--workers must be >= 0, got {args.workers}")
    if not 1 <= args.quality <= 100:
        raise ValueError(f"--quality must be in 1..100, got {args.quality}")
    if args.tile is not None and args.tile < 16:
        raise ValueError(f"--tile must be >= 16 pixels, got {args.tile}")
    if args.tile is not None and not 0 <= args.tile_overlap < args.tile:
        raise ValueError(f"--tile-overlap must be in [0, --tile), got {args.tile_overlap}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ..atomic import remove_stale_temps
    from ..data.images import IMAGE_EXTENSIONS
    from ..inference.batch import translate_files
    from ..inference.devices import bf16_trap, resolve_device, resolve_precision
    from ..inference.files import check_writable, plan
    from ..inference.sources import load_generator

    try:
        _validate(args)
        output = Path(args.output).expanduser()
        jobs = plan(args.inputs, output, args.format)
        check_writable(output)
        device = resolve_device(args.device)
        precision = resolve_precision(args.precision, device)
        overrides = {"name": args.generator, "ngf": args.ngf, "norm": args.norm, "dropout": args.dropout}
        generator = load_generator(args.model, direction=args.direction, device=device, precision=precision,
                                   overrides=overrides, compile=args.compile)
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
    print(f"{len(jobs)} images; device {device}, precision {precision_note} (override with --device/--precision)",
          file=sys.stderr)
    batch_size = args.batch_size or (8 if generator.device.type == "cuda" else 1)
    summary = translate_files(jobs, generator, batch_size=batch_size, workers=args.workers, tile=args.tile,
                              tile_overlap=args.tile_overlap, overwrite=args.overwrite, quality=args.quality,
                              progress=not args.no_progress)
    for source, reason in summary.failed:
        print(f"failed: {source}: {reason}", file=sys.stderr)
    print(summary.line(output))
    return 1 if summary.failed else 0
