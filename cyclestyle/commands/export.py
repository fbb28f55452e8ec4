"""`cyclestyle export MODEL --format onnx|torchscript --direction a2b --output FILE`."""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from pathlib import Path

import torch

DESCRIPTION = """\
Write one direction's generator as a standalone file: ONNX (run it with onnxruntime or any ONNX
runtime) or TorchScript (torch.jit.load, no cyclestyle needed). Batch, height and width are
dynamic; height and width must be multiples of the network's size multiple (4 for ResNet
generators, N for unet_N), which is stored in the file's metadata under "cyclestyle.json".
`cyclestyle translate` accepts both files and pads images for you. Inputs and outputs are
float32 (batch, 3, height, width) in [-1, 1]."""


def build_parser(prog: str = "cyclestyle export") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    parser.add_argument("model", help="a cyclestyle checkpoint (.ckpt) or reference generator (.pth)")
    parser.add_argument("--format", choices=("onnx", "torchscript"), default="onnx", help="file format (default: onnx)")
    parser.add_argument("--direction", choices=("a2b", "b2a"), default="a2b", help="which generator (default: a2b)")
    parser.add_argument("-o", "--output", required=True, help="file to write (.onnx or .pt)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset version (default: 17)")
    return parser


def export(model: str | os.PathLike, output: str | os.PathLike, *, fmt: str = "onnx", direction: str = "a2b",
           opset: int = 17) -> Path:
    """Export `model`'s `direction` generator to `output` (written atomically); returns the path."""
    from ..atomic import atomic_target, remove_stale_temps
    from ..inference.sources import EXPORT_META, Generator, load_generator

    generator = load_generator(model, direction=direction, precision="32")
    if not isinstance(generator, Generator) or not isinstance(generator.module, torch.nn.Module) \
            or isinstance(generator.module, torch.jit.ScriptModule):
        raise ValueError(f"{model}: export needs a checkpoint or state_dict, not an exported file")
    module, multiple = generator.module.eval(), generator.size_multiple
    side = multiple * math.ceil(64 / multiple)
    example = torch.rand(1, 3, side, side * 2 if side < 128 else side) * 2 - 1  # (1, 3, H, W)
    meta = json.dumps({"size_multiple": multiple, "generator": generator.spec, "direction": direction,
                       "input": "float32 (batch, 3, height, width) in [-1, 1]"})
    output = Path(output).expanduser()
    remove_stale_temps(output.parent, recursive=False, target=output.name)  # left by a killed earlier run
    with atomic_target(output) as tmp, warnings.catch_warnings():  # silence the exporters' deprecation notes
        warnings.simplefilter("ignore", (UserWarning, FutureWarning, DeprecationWarning))
        if fmt == "onnx":
            _write_onnx(module, example, tmp, opset, {EXPORT_META: meta})
        elif fmt == "torchscript":
            with torch.no_grad():
                traced = torch.jit.trace(module, example)
            torch.jit.save(traced, tmp, _extra_files={EXPORT_META: meta})
        else:
            raise ValueError(f"--format must be onnx or torchscript, got {fmt!r}")
    return output


def _write_onnx(module: torch.nn.Module, example: torch.Tensor, path: str, opset: int, metadata: dict) -> None:
    try:
        import onnx
    except ImportError:
        raise ImportError("ONNX export needs the onnx package: pip install 'cyclestyle[onnx]'") from None
    axes = {0: "batch", 2: "height", 3: "width"}
    # The TorchScript-based exporter handles dynamic height/width of these conv nets directly;
    # the dynamo exporter would need onnxscript and explicit shape constraints.
    torch.onnx.export(module, (example,), path, dynamo=False, opset_version=opset, input_names=["image"],
                      output_names=["translated"], dynamic_axes={"image": axes, "translated": axes})
    proto = onnx.load(path)
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, path)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        path = export(args.model, args.output, fmt=args.format, direction=args.direction, opset=args.opset)
    except (OSError, ValueError, RuntimeError, ImportError) as error:
        print(f"cyclestyle export: error: {error}", file=sys.stderr)
        return 2
    print(f"Exported {args.direction} generator of {args.model} as {args.format}: {path}")
    return 0
