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

import torch

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


def import_reference(g_a: str, g_b: str, output: str | os.PathLike, *, d_a: str | None = None,
                     d_b: str | None = None) -> Path:
    """Write a weights-only CycleGAN checkpoint from reference files; returns its path."""
    from ..checkpoints import LEGACY_BUILDER, new_checkpoint
    from ..inference.reference import drop_stale_norm_keys, infer_discriminator
    from ..inference.sources import generator_from_state, safe_load
    from ..models.base import TranslatorSpec
    from ..networks import build_discriminator

    state_dict, specs, translators = {}, {}, {}
    for prefix, path, direction in (("g_a", g_a, "a2b"), ("g_b", g_b, "b2a")):
        net, specs[prefix] = generator_from_state(safe_load(path), source=str(path))
        state_dict.update({f"{prefix}.{k}": v for k, v in net.state_dict().items()})
        translators[direction] = TranslatorSpec(module=prefix, builder=LEGACY_BUILDER, kwargs=specs[prefix],
                                                size_multiple=net.size_multiple)
    if specs["g_a"] != specs["g_b"]:
        raise ValueError(f"G_A ({specs['g_a']}) and G_B ({specs['g_b']}) differ; cyclestyle uses one generator architecture")
    hparams = {"generator": specs["g_a"]}
    if (d_a is None) != (d_b is None):
        raise ValueError("give both --d-a and --d-b, or neither")
    if d_a is not None:
        for prefix, path in (("d_a", d_a), ("d_b", d_b)):
            state = safe_load(path)
            if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
                raise ValueError(f"{path}: not a discriminator state_dict (a dict of named tensors)")
            try:
                spec = infer_discriminator(state)
            except ValueError as error:
                raise ValueError(f"{path}: {error}") from None
            net = build_discriminator(**spec)
            try:
                net.load_state_dict(drop_stale_norm_keys(state, spec["norm"]), strict=True)
            except RuntimeError as error:
                raise ValueError(f"{path}: the weights do not fit a {spec} discriminator: {error}") from None
            state_dict.update({f"{prefix}.{k}": v for k, v in net.state_dict().items()})
            hparams["discriminator"] = spec
    checkpoint = new_checkpoint("cyclegan", translators, state_dict, hparams, imported_from={
        "g_a": str(g_a), "g_b": str(g_b), "d_a": d_a and str(d_a), "d_b": d_b and str(d_b)})
    return _write(checkpoint, output)


def import_ugatit(params: str | os.PathLike, output: str | os.PathLike) -> Path:
    """Write a weights-only U-GAT-IT checkpoint from an official `*_params_*.pt`; returns its path."""
    from ..checkpoints import new_checkpoint
    from ..inference.reference import read_ugatit_params
    from ..inference.sources import safe_load
    from ..models.ugatit import translator_specs

    states, generator, discriminator = read_ugatit_params(safe_load(params), source=str(params))
    state_dict = {f"{module}.{k}": v for module, state in states.items() for k, v in state.items()}
    checkpoint = new_checkpoint("ugatit", translator_specs(generator), state_dict,
                                {"generator": generator, "discriminator": discriminator},
                                imported_from={"ugatit": str(params)})
    return _write(checkpoint, output)


def import_cut(g: str | os.PathLike, output: str | os.PathLike, *, d: str | None = None, f: str | None = None,
               family: str = "cut") -> Path:
    """Write a weights-only CUT/FastCUT checkpoint from official files; returns its path."""
    from ..checkpoints import load_network, new_checkpoint
    from ..inference.sources import safe_load
    from ..models.cut import OFFICIAL_NETWORKS, cut_translators
    from ..networks import PatchHeads, build_discriminator, infer_cut_discriminator, infer_cut_heads
    from ..networks.cut import infer_cut_generator

    state, hparams, loaded = safe_load(g), {}, {}
    try:
        hparams["generator"] = infer_cut_generator(state)
    except ValueError as error:
        raise ValueError(f"{g}: {error}") from None
    translators = cut_translators(hparams["generator"])
    loaded["G"] = load_network(translators["a2b"], state, source=str(g)).state_dict()
    for name, path, infer, build in (("D", d, infer_cut_discriminator, build_discriminator),
                                     ("F", f, infer_cut_heads, PatchHeads)):
        if path is None:
            continue
        state = safe_load(path)
        try:
            settings = infer(state)
            net = build(**settings)
            net.load_state_dict(state, strict=True)
        except (ValueError, RuntimeError) as error:
            raise ValueError(f"{path}: not an official CUT {name} file that fits: {str(error).splitlines()[0]}") from None
        hparams["discriminator" if name == "D" else "heads"] = settings
        loaded[name] = net.state_dict()
    state_dict = {f"{OFFICIAL_NETWORKS[name]}.{k}": v for name, weights in loaded.items() for k, v in weights.items()}
    checkpoint = new_checkpoint(family, translators, state_dict, hparams,
                                imported_from={"G": str(g), "D": d and str(d), "F": f and str(f)})
    return _write(checkpoint, output)


def import_adain(decoder: str | os.PathLike, vgg: str | os.PathLike, output: str | os.PathLike) -> Path:
    """Write a weights-only AdaIN checkpoint from pytorch-AdaIN's decoder.pth and vgg_normalised.pth
    (or another VGG-19 file the shared VGGFeatures reads); returns its path."""
    from ..checkpoints import new_checkpoint
    from ..inference.sources import safe_load
    from ..models.adain import adain_translators, encoder_record
    from ..networks.adain import AdaINNet

    net = AdaINNet(encoder={"weights": str(Path(vgg).expanduser())})
    state = safe_load(decoder)
    try:
        net.decoder.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as error:
        raise ValueError(f"{decoder}: not a pytorch-AdaIN decoder.pth (an nn.Sequential state dict with keys "
                         f"1.weight ... 28.bias): {str(error).splitlines()[0]}") from None
    encoder = encoder_record(net)
    checkpoint = new_checkpoint("adain", adain_translators(encoder), {f"net.{k}": v for k, v in net.state_dict().items()},
                                {"encoder": encoder}, imported_from={"decoder": str(decoder), "vgg": str(vgg)})
    return _write(checkpoint, output)


def import_fast_neural_style(pth: str | os.PathLike, output: str | os.PathLike) -> Path:
    """Write a weights-only fast_style checkpoint from a pytorch/examples saved model (instance-norm
    running statistics of old PyTorch files dropped); returns its path."""
    from ..checkpoints import load_network, new_checkpoint
    from ..inference.sources import safe_load
    from ..models.fast_style import fast_style_translators
    from ..networks import infer_fast_neural_style

    try:
        network, state = infer_fast_neural_style(safe_load(pth))
    except ValueError as error:
        raise ValueError(f"{pth}: {error}") from None
    translators = fast_style_translators({**network, "n_styles": 0})
    weights = load_network(translators["a2b"], state, source=str(pth)).state_dict()
    checkpoint = new_checkpoint("fast_style", translators, {f"net.{k}": v for k, v in weights.items()},
                                {"network": network}, imported_from={"fast_neural_style": str(pth)})
    return _write(checkpoint, output)


def _write(checkpoint: dict, output: str | os.PathLike) -> Path:
    from ..atomic import atomic_target, remove_stale_temps

    output = Path(output).expanduser()
    remove_stale_temps(output.parent, recursive=False, target=output.name)  # left by a killed earlier run
    with atomic_target(output) as tmp:
        torch.save(checkpoint, tmp)
    return output


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    cyclegan = [args.g_a, args.g_b, args.d_a, args.d_b]
    sources = sum(bool(x) for x in (any(cyclegan), args.ugatit, args.cut, args.adain_decoder or args.adain_vgg,
                                          args.fast_neural_style))
    if sources != 1 or (any(cyclegan) and not (args.g_a and args.g_b)):
        parser.error("give one kind of file: --g-a and --g-b (reference CycleGAN), --ugatit (official U-GAT-IT), "
                     "--cut (official CUT/FastCUT), --adain-decoder with --adain-vgg (pytorch-AdaIN) or "
                     "--fast-neural-style (pytorch/examples)")
    if bool(args.adain_decoder) != bool(args.adain_vgg):
        parser.error("--adain-decoder and --adain-vgg go together: a decoder only works with the encoder it was "
                     "trained with (pytorch-AdaIN's vgg_normalised.pth)")
    if (args.cut_d or args.cut_f) and not args.cut:
        parser.error("--cut-d and --cut-f go with --cut")
    try:
        if args.fast_neural_style is not None:
            path = import_fast_neural_style(args.fast_neural_style, args.output)
        elif args.adain_decoder is not None:
            path = import_adain(args.adain_decoder, args.adain_vgg, args.output)
        elif args.cut is not None:
            path = import_cut(args.cut, args.output, d=args.cut_d, f=args.cut_f, family=args.family)
        elif args.ugatit is not None:
            path = import_ugatit(args.ugatit, args.output)
        else:
            path = import_reference(args.g_a, args.g_b, args.output, d_a=args.d_a, d_b=args.d_b)
    except (OSError, ValueError, RuntimeError) as error:
        print(f"cyclestyle import-reference: error: {error}", file=sys.stderr)
        return 2
    print(f"Wrote {path}: translate with `cyclestyle translate {path} PHOTOS --output OUT`, "
          f"fine-tune with `cyclestyle train ... ckpt_path={path}`")
    return 0
