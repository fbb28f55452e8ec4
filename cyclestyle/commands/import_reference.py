"""`cyclestyle import-reference --g-a G_A.pth --g-b G_B.pth [--d-a D_A.pth --d-b D_B.pth] --output model.ckpt`."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

DESCRIPTION = """\
Turn generators (and optionally discriminators) saved by the reference CycleGAN
(junyanz/pytorch-CycleGAN-and-pix2pix: {epoch}_net_G_A.pth, ..._G_B.pth, ..._D_A.pth, ..._D_B.pth)
into one cyclestyle checkpoint. `cyclestyle translate` runs it in both directions and
`cyclestyle train ... ckpt_path=model.ckpt` fine-tunes from it (weights only: optimizers and
schedules start fresh; discriminators are initialised anew when not given). Architectures are
read from the weights."""


def build_parser(prog: str = "cyclestyle import-reference") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    parser.add_argument("--g-a", required=True, help="generator A -> B (reference G_A)")
    parser.add_argument("--g-b", required=True, help="generator B -> A (reference G_B)")
    parser.add_argument("--d-a", help="discriminator of domain B images (reference D_A)")
    parser.add_argument("--d-b", help="discriminator of domain A images (reference D_B)")
    parser.add_argument("-o", "--output", required=True, help="checkpoint to write (.ckpt)")
    return parser


def import_reference(g_a: str, g_b: str, output: str | os.PathLike, *, d_a: str | None = None,
                     d_b: str | None = None) -> Path:
    """Write a weights-only cyclestyle checkpoint from reference files; returns its path."""
    import pytorch_lightning as pl

    from ..atomic import atomic_target, remove_stale_temps
    from ..inference.reference import drop_stale_norm_keys, infer_discriminator
    from ..inference.sources import generator_from_state, safe_load
    from ..networks import build_discriminator

    state_dict, specs = {}, {}
    for prefix, path in (("g_a", g_a), ("g_b", g_b)):
        net, specs[prefix] = generator_from_state(safe_load(path), source=str(path))
        state_dict.update({f"{prefix}.{k}": v for k, v in net.state_dict().items()})
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
    checkpoint = {"state_dict": state_dict, "hyper_parameters": hparams, "epoch": 0, "global_step": 0,
                  "pytorch-lightning_version": pl.__version__,
                  "imported_from": {"g_a": str(g_a), "g_b": str(g_b), "d_a": d_a and str(d_a), "d_b": d_b and str(d_b)}}
    output = Path(output).expanduser()
    remove_stale_temps(output.parent, recursive=False, target=output.name)  # left by a killed earlier run
    with atomic_target(output) as tmp:
        torch.save(checkpoint, tmp)
    return output


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        path = import_reference(args.g_a, args.g_b, args.output, d_a=args.d_a, d_b=args.d_b)
    except (OSError, ValueError, RuntimeError) as error:
        print(f"cyclestyle import-reference: error: {error}", file=sys.stderr)
        return 2
    print(f"Wrote {path}: translate with `cyclestyle translate {path} PHOTOS --output OUT`, "
          f"fine-tune with `cyclestyle train ... ckpt_path={path}`")
    return 0
