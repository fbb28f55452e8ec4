"""The `cyclestyle` command: one subcommand per job."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMANDS = {
    "train": "train a translation model (model=cyclegan|ugatit|cut|fastcut|fast_style|multi_style|adain); arguments are Hydra overrides (see `cyclestyle train --help`)",
    "translate": "translate image and video files, folders or glob patterns with a trained model (style models: --style, --style-index, --style-mix)",
    "export": "write one direction's translator as ONNX, pt2 (torch.export) or TorchScript",
    "import-reference": "turn reference CycleGAN .pth files, an official U-GAT-IT or CUT checkpoint, a pytorch/examples fast_neural_style model or pytorch-AdaIN's decoder into a cyclestyle checkpoint",
    "pack": "pack an image folder into a streaming data set (local or object storage) for data=stream",
    "stylize": "repaint photos in the style of style images by optimising their pixels (Gatys et al.; --photorealistic: Luan et al.)",
}
MODULES = {"translate": "translate", "export": "export", "import-reference": "import_reference", "pack": "pack", "stylize": "stylize"}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network check at import
    if argv and argv[0] == "train":
        from .train import main as train_main

        return train_main(argv[1:])
    if argv and argv[0] in MODULES:
        module = importlib.import_module(f".commands.{MODULES[argv[0]]}", __package__)
        sys.exit(module.main(argv[1:]))
    parser = argparse.ArgumentParser(
        prog="cyclestyle",
        description="Unpaired image-to-image translation: train CycleGAN, U-GAT-IT, CUT or FastCUT models from two image "
        "folders (or feed-forward style networks from photos and paintings: fast_style, multi_style, adain), translate photo "
        "libraries and videos with them, export them; or stylize photos by optimisation.",
        epilog="Run `cyclestyle COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, text in COMMANDS.items():
        commands.add_parser(name, help=text)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        sys.exit(2)


def _version() -> str:
    from . import __version__

    return __version__
