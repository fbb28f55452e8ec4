"""Command-line options shared by front ends (`translate`, `export`): the style options of
style-conditioned families, parsed into the plain values `cyclestyle.inference` takes."""
from __future__ import annotations

import argparse


def add_style_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("style (AdaIN checkpoints: any style image at translation time)")
    group.add_argument("--style", nargs="+", default=None, metavar="STYLE",
                       help="style images (files, folders, glob patterns or builtin:swirls|mosaic|watercolour): "
                            "every input x every style gives <input>__<style>.<ext>")
    group.add_argument("--style-weights", nargs="+", default=None, metavar="W",
                       help="blend all styles with these weights (one per style image, e.g. 0.7,0.3 or 0.7 0.3; "
                            "normalised to sum 1): one <input>__<s1>+<s2>.<ext> per input")
    group.add_argument("--blend", action="store_true", help="blend all styles with equal weights")
    group.add_argument("--alpha", type=float, default=None,
                       help="style strength in [0, 1]: 0 = the content as the decoder reconstructs it, 1 = full "
                            "style (default: 1)")
    group.add_argument("--preserve-color", action="store_true",
                       help="keep the content's colours: each style is first recoloured to the content's colour "
                            "mean and covariance (then encoded per image, not once per style)")
    group.add_argument("--style-size", type=int, default=512,
                       help="style images are scaled so that their shorter side has this many pixels, as "
                            "pytorch-AdaIN; 0 keeps their size (default: %(default)s)")


def style_weights(values: list[str] | None) -> list[float] | None:
    """--style-weights "0.7,0.3" or "0.7 0.3" -> [0.7, 0.3]."""
    if values is None:
        return None
    try:
        return [float(part) for value in values for part in value.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--style-weights must be numbers, got {' '.join(values)!r}") from None


def parse_style_mix(text: str) -> list[float]:
    """"0.7,0.3" -> [0.7, 0.3] (argparse reports anything else as a usage error)."""
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"give comma-separated numbers, one per style, e.g. 0.7,0.3; got {text!r}") from None


def add_style_mix_arguments(parser: argparse.ArgumentParser, *, export: bool = False) -> None:
    """--style-index and --style-mix; for `export` (without either, the weights become an input)."""
    title = "style mix (multi_style checkpoints: several styles in one network)"
    if export:
        title += "; without these the export takes the style weights as a second input"
    group = parser.add_argument_group(title)
    group.add_argument("--style-index", type=int, default=None, metavar="K",
                       help="the style to apply, 0..N-1 in the order of the training's model.styles")
    group.add_argument("--style-mix", type=parse_style_mix, default=None, metavar="W0,W1,...",
                       help="blend the styles: one non-negative weight per style, normalised to sum 1 (e.g. 0.7,0.3)")
