"""`cyclestyle import-reference --g-a G_A.pth --g-b G_B.pth [--d-a D_A.pth --d-b D_B.pth] --output model.ckpt`,
`cyclestyle import-reference --ugatit DATASET_params_latest.pt --output model.ckpt` or
`cyclestyle import-reference --cut latest_net_G.pth [--cut-d latest_net_D.pth --cut-f latest_net_F.pth] --output model.ckpt`
or `cyclestyle import-reference --adain-decoder decoder.pth --adain-vgg vgg_normalised.pth --output model.ckpt`
or `cyclestyle import-reference --fast-neural-style mosaic.pth --output model.ckpt`."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


DESCRIPTION = """\
Turn files of the reference implementations into one cyclestyle checkpoint: the reference
CycleGAN's generators (and optionally discriminators; junyanz/pytorch-CycleGAN-and-pix2pix:
{epoch}_net_G_A.pth, ..._G_B.pth, ..._D_A.pth, ..._D_B.pth), or an official U-GAT-IT checkpoint
(znxlwm/UGATIT-pytorch: DATASET_params_0100000.pt or DATASET_params_latest.pt, which holds both
generators and all four discriminators), or an official CUT/FastCUT generator
(taesungp/contrastive-unpaired-translation: latest_net_G.pth, optionally latest_net_D.pth and the
PatchNCE heads latest_net_F.pth), or pytorch-AdaIN's (naoto0804) decoder.pth with the encoder it was
trained with, vgg_normalised.pth (translate it with --style), or a pytorch/examples fast_neural_style
saved model (candy.pth, mosaic.pth, rain_princess.pth, udnie.pth or your own; fine-tune it with
model=fast_style model.network.pixels=0-255). `cyclestyle translate` runs the result (both directions, or
A->B for CUT and AdaIN) and `cyclestyle train model=cyclegan|ugatit|cut|fastcut ... ckpt_path=model.ckpt`
fine-tunes from it (weights only: optimizers and schedules start fresh; networks not given are
initialised anew). Architectures are read from the weights."""


def build_parser(prog: str = "cyclestyle import-reference") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    parser.add_argument("--g-a", help="CycleGAN generator A -> B (reference G_A)")
    parser.add_argument("--g-b", help="CycleGAN generator B -> A (reference G_B)")
    parser.add_argument("--d-a", help="CycleGAN discriminator of domain B images (reference D_A)")
    parser.add_argument("--d-b", help="CycleGAN discriminator of domain A images (reference D_B)")
    parser.add_argument("--ugatit", metavar="PARAMS_PT", help="an official U-GAT-IT *_params_*.pt file (instead of --g-a ...)")
    parser.add_argument("--cut", metavar="G_PTH", help="an official CUT/FastCUT generator latest_net_G.pth (instead of --g-a ...)")
    parser.add_argument("--cut-d", metavar="D_PTH", help="with --cut: its discriminator latest_net_D.pth")
    parser.add_argument("--cut-f", metavar="F_PTH", help="with --cut: its PatchNCE heads latest_net_F.pth")
    parser.add_argument("--adain-decoder", metavar="DECODER_PTH",
                        help="pytorch-AdaIN's decoder.pth (naoto0804; with --adain-vgg) (instead of --g-a ...)")
    parser.add_argument("--adain-vgg", metavar="VGG_PTH",
                        help="with --adain-decoder: the encoder it was trained with, pytorch-AdaIN's vgg_normalised.pth")
    parser.add_argument("--fast-neural-style", metavar="PTH",
                        help="a pytorch/examples fast_neural_style saved model, e.g. mosaic.pth (instead of --g-a ...)")
    parser.add_argument("--family", choices=("cut", "fastcut"), default="cut",
                        help="with --cut: the model= it fine-tunes as (the weights do not say; default: cut)")
    parser.add_argument("-o", "--output", required=True, help="checkpoint to write (.ckpt)")
    return parser


# Which adapter (cyclestyle.adapters) and role each file flag feeds.
FLAG_ROLES = {"g_a": ("cyclegan", "g_a"), "g_b": ("cyclegan", "g_b"), "d_a": ("cyclegan", "d_a"),
              "d_b": ("cyclegan", "d_b"), "ugatit": ("ugatit", "params"), "cut": ("cut", "g"), "cut_d": ("cut", "d"),
              "cut_f": ("cut", "f"), "adain_decoder": ("adain", "decoder"), "adain_vgg": ("adain", "vgg"),
              "fast_neural_style": ("fast_neural_style", "pth")}


def import_files(format: str, files: dict[str, str | os.PathLike], output: str | os.PathLike, **options) -> Path:
    """Convert a peer's files ({role: path}, see `cyclestyle.adapters.ADAPTERS[format].roles`) into a
    weights-only cyclestyle checkpoint at `output` (written atomically); returns its path."""
    from ..adapters import ADAPTERS, File

    adapter = ADAPTERS[format]
    checkpoint = adapter.convert({role: File(path) for role, path in files.items()}, **options)
    return _write(checkpoint, output)


def _write(checkpoint: dict, output: str | os.PathLike) -> Path:
    import torch

    from ..atomic import atomic_target, remove_stale_temps

    output = Path(output).expanduser()
    remove_stale_temps(output.parent, recursive=False, target=output.name)  # left by a killed earlier run
    with atomic_target(output) as tmp:  # a full disk: DiskFullError, no partial file
        torch.save(checkpoint, tmp)
    return output


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from ..adapters import ADAPTERS

    given = {flag: value for flag, value in vars(args).items() if flag in FLAG_ROLES and value is not None}
    formats = {FLAG_ROLES[flag][0] for flag in given}
    if len(formats) != 1:
        parser.error("give one kind of file: --g-a and --g-b (reference CycleGAN), --ugatit (official U-GAT-IT), "
                     "--cut (official CUT/FastCUT), --adain-decoder with --adain-vgg (pytorch-AdaIN) or "
                     "--fast-neural-style (pytorch/examples)")
    format = formats.pop()
    roles = {FLAG_ROLES[flag][1]: value for flag, value in given.items()}
    missing = [role for role in ADAPTERS[format].required if role not in roles]
    if missing:
        flags = {role: "--" + flag.replace("_", "-") for flag, (fmt, role) in FLAG_ROLES.items() if fmt == format}
        parser.error(f"{', '.join(flags[role] for role in roles)} need{'s' if len(roles) == 1 else ''} "
                     f"{' and '.join(flags[role] for role in missing)} ({ADAPTERS[format].title})")
    options = {"family": args.family} if format == "cut" else {}
    try:
        path = import_files(format, roles, args.output, **options)
    except (OSError, ValueError, RuntimeError) as error:
        print(f"cyclestyle import-reference: error: {error}", file=sys.stderr)
        return 2
    print(f"Wrote {path}: translate with `cyclestyle translate {path} PHOTOS --output OUT`, "
          f"fine-tune with `cyclestyle train ... ckpt_path={path}`")
    return 0
