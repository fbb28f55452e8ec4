"""`cyclestyle export MODEL --format onnx|pt2|torchscript --direction a2b --output FILE`."""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import sys
import warnings
from pathlib import Path

import torch

DESCRIPTION = """\
Write one direction's translator as a standalone file: ONNX (run it with onnxruntime or any ONNX
runtime), pt2 (torch.export: torch.export.load(FILE).module(), no cyclestyle needed) or
TorchScript (torch.jit.load; deprecated in PyTorch, kept for older tools). Batch, height and width
are dynamic; height and width must be multiples of the network's size multiple (4 for ResNet and
U-GAT-IT generators, N for unet_N), which is stored in the file's metadata under "cyclestyle.json".
Networks tied to one input size (full-mode U-GAT-IT) export with that fixed height and width
(metadata "fixed_size"); `cyclestyle translate` then runs them on tiles of that size. `cyclestyle
translate` accepts all three files and pads images for you. Inputs and outputs are float32
(batch, 3, height, width) in [-1, 1]. A multi_style model exports with one style (--style-index K)
or blend (--style-mix W0,W1,...) baked in, or without either with its style weights as a second
input "style_mix" (batch, N), rows summing to 1."""

FORMATS = ("onnx", "pt2", "torchscript")


def build_parser(prog: str = "cyclestyle export") -> argparse.ArgumentParser:
    from .options import add_style_mix_arguments

    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    parser.add_argument("model", help="a cyclestyle checkpoint (.ckpt) or reference generator (.pth)")
    parser.add_argument("--format", choices=FORMATS, default="onnx", help="file format (default: onnx)")
    parser.add_argument("--direction", choices=("a2b", "b2a"), default="a2b", help="which translator (default: a2b)")
    parser.add_argument("-o", "--output", required=True, help="file to write (.onnx, .pt2 or .pt)")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset version (default: 18)")
    add_style_mix_arguments(parser, export=True)
    return parser


def export(model: str | os.PathLike, output: str | os.PathLike, *, fmt: str = "onnx", direction: str = "a2b",
           opset: int = 18, style_index: int | None = None, style_mix: list[float] | None = None) -> Path:
    """Export `model`'s `direction` translator to `output` (written atomically); returns the path.
    multi_style: `style_index` or `style_mix` bakes one style (or blend) in, else the style weights
    are a second input."""
    from ..atomic import atomic_target, remove_stale_temps
    from ..inference.sources import EXPORT_META, Generator, load_generator
    from ..inference.style_mix import style_mix_binding
    from ..networks.transformer import StyleMixed

    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    conditions = []  # the network's TranslatorSpec.condition, as `bind` sees it
    styled = style_mix_binding(index=style_index, mix=style_mix, unbound_ok=True, otherwise=lambda net, _: net)
    generator = load_generator(model, direction=direction, precision="32",
                               bind=lambda net, condition: conditions.append(condition) or styled(net, condition))
    if not isinstance(generator, Generator) or not isinstance(generator.module, torch.nn.Module) \
            or isinstance(generator.module, (torch.jit.ScriptModule, torch.fx.GraphModule)):
        raise ValueError(f"{model}: export needs a checkpoint or state_dict, not an exported file")
    module, multiple, fixed = generator.module.eval(), generator.size_multiple, generator.fixed_size
    example, shapes = _example(multiple, fixed)
    inputs, names, described = (example,), ["image"], {}
    if conditions == ["style_image"]:  # AdaIN: the style image is a second input
        inputs, shapes, names = _with_style(example, shapes)
        described = {"style": "float32 (batch, 3, style height, style width) in [-1, 1], any size >= 16: one "
                              "style image per input image"}
    elif conditions == ["style_mix"] and not isinstance(module, StyleMixed):  # multi_style: the style weights
        mix = torch.full((len(example), module.n_styles), 1 / module.n_styles)  # (B, N)
        inputs, shapes, names = (example, mix), (shapes[0], {0: shapes[0][0]}), ["image", "style_mix"]
        described = {"style_mix": f"float32 (batch, {module.n_styles}) style weights, rows summing to 1 (one-hot: "
                                  f"one style)", "n_styles": module.n_styles}
    meta = json.dumps({"size_multiple": multiple, "fixed_size": fixed, "generator": generator.spec,
                       "direction": direction, "input": "float32 (batch, 3, height, width) in [-1, 1]", **described})
    output = Path(output).expanduser()
    remove_stale_temps(output.parent, recursive=False, target=output.name)  # left by a killed earlier run
    with atomic_target(output) as tmp, warnings.catch_warnings():  # silence the exporters' deprecation notes
        warnings.simplefilter("ignore", (UserWarning, FutureWarning, DeprecationWarning))
        if fmt == "onnx":
            _write_onnx(module, inputs, shapes, names, tmp, opset, {EXPORT_META: meta})
        elif fmt == "pt2":
            with torch.no_grad():
                program = torch.export.export(module, inputs, dynamic_shapes=shapes)
            torch.export.save(program, tmp, extra_files={EXPORT_META: meta})
        else:
            with torch.no_grad():
                traced = torch.jit.trace(module, inputs)
            torch.jit.save(traced, tmp, _extra_files={EXPORT_META: meta})
    return output


def _example(multiple: int, fixed: int | None) -> tuple[torch.Tensor, tuple[dict]]:
    """An example input (batch 2: a batch of 1 would be specialised to 1) and its dynamic
    dimensions for torch.export: batch, and height and width as multiples of `multiple`
    (static for a network tied to `fixed` x `fixed`)."""
    from torch.export import Dim

    batch = Dim("batch", min=1, max=4096)
    if fixed is not None:
        return torch.rand(2, 3, fixed, fixed) * 2 - 1, ({0: batch},)
    side = multiple * math.ceil(64 / multiple)
    example = torch.rand(2, 3, side, side * 2 if side < 128 else side + multiple) * 2 - 1  # (2, 3, H, W)
    height, width = Dim("height", min=1, max=16384 // multiple), Dim("width", min=1, max=16384 // multiple)
    return example, ({0: batch, 2: multiple * height, 3: multiple * width},)


def _with_style(example: torch.Tensor, shapes: tuple[dict]) -> tuple[tuple[torch.Tensor, ...], tuple[dict, ...], list[str]]:
    """(inputs, dynamic dimensions, input names) of a style-image network: the content and a style image
    per content image (same batch), whose height and width are free."""
    from torch.export import Dim

    style = torch.rand(len(example), 3, 48, 40) * 2 - 1  # (B, 3, h, w): sides unlike the content's
    dims = {0: shapes[0][0], 2: Dim("style_height", min=16, max=16384), 3: Dim("style_width", min=16, max=16384)}
    return (example, style), (shapes[0], dims), ["image", "style"]


def _write_onnx(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], shapes: tuple[dict, ...],
                input_names: list[str], path: str, opset: int, metadata: dict) -> None:
    try:
        import onnx
    except ImportError:
        raise ImportError("ONNX export needs the onnx package: pip install 'cyclestyle[onnx]'") from None
    names = dict(input_names=input_names, output_names=["translated"], opset_version=opset)
    try:  # the dynamo-based exporter (torch.export + onnxscript): PyTorch's supported path
        with contextlib.redirect_stdout(io.StringIO()):  # it prints its progress
            torch.onnx.export(module, inputs, path, dynamo=True, dynamic_shapes=shapes, **names)
    except ImportError:
        # Without onnxscript (not installed with cyclestyle[onnx] < 0.2) only the deprecated
        # TorchScript-based exporter is available; it handles these convolutional networks too.
        axes = {0: "batch"} if len(shapes[0]) == 1 else {0: "batch", 2: "height", 3: "width"}
        dynamic = {"image": axes, "translated": axes, "style": {0: "batch", 2: "style_height", 3: "style_width"},
                   "style_mix": {0: "batch"}}
        torch.onnx.export(module, inputs, path, dynamo=False, **names,
                          dynamic_axes={name: dynamic[name] for name in [*input_names, "translated"]})
    proto = onnx.load(path)
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, path)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        path = export(args.model, args.output, fmt=args.format, direction=args.direction, opset=args.opset,
                      style_index=args.style_index, style_mix=args.style_mix)
    except (OSError, ValueError, RuntimeError, ImportError) as error:
        print(f"cyclestyle export: error: {error}", file=sys.stderr)
        return 2
    print(f"Exported {args.direction} translator of {args.model} as {args.format}: {path}")
    return 0
