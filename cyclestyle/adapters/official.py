"""Official files of the other peers, each read as a cyclestyle checkpoint of its family:
U-GAT-IT (znxlwm/UGATIT-pytorch `*_params_*.pt`), CUT/FastCUT (taesungp/contrastive-unpaired-translation
`latest_net_{G,D,F}.pth`), pytorch/examples fast_neural_style (`mosaic.pth`, ...) and pytorch-AdaIN
(naoto0804 `decoder.pth` with `vgg_normalised.pth`).
"""
from __future__ import annotations

import re

import torch

from ..checkpoints import load_network
from ..models import adain, cut, fast_style, ugatit
from ..networks import PatchHeads, build_discriminator, infer_cut_discriminator, infer_cut_heads
from ..networks.adain import AdaINNet
from ..networks.cut import infer_cut_generator, is_cut_generator
from ..networks.transformer import infer_fast_neural_style, is_fast_neural_style
from ..networks.ugatit import UgatitDiscriminator, UgatitGenerator, infer_ugatit_generator
from ..record import new_checkpoint
from .base import Adapter, File

# The official U-GAT-IT (znxlwm/UGATIT-pytorch) saves one dict per checkpoint; our U-GAT-IT model
# keeps the same networks under these attribute names.
UGATIT_NETWORKS = {"genA2B": "g_a", "genB2A": "g_b", "disGA": "d_ga", "disGB": "d_gb", "disLA": "d_la", "disLB": "d_lb"}


def is_ugatit_params(checkpoint) -> bool:
    """An official U-GAT-IT `<dataset>_params_<step>.pt` / `_params_latest.pt` file."""
    return isinstance(checkpoint, dict) and "genA2B" in checkpoint and "genB2A" in checkpoint


def read_ugatit_params(params: dict, *, source: str) -> tuple[dict[str, dict[str, torch.Tensor]], dict, dict]:
    """(state dict per network attribute, generator A->B settings, discriminator settings) of an
    official U-GAT-IT checkpoint; every network is loaded strictly into ours to check it fits."""
    missing = [name for name in UGATIT_NETWORKS if not isinstance(params.get(name), dict)]
    if missing:
        raise ValueError(f"{source}: not a whole U-GAT-IT checkpoint: {', '.join(missing)} missing "
                         f"(expected {', '.join(UGATIT_NETWORKS)})")
    try:
        generator = infer_ugatit_generator(params["genA2B"])
        ndf = int(params["disGA"]["model.1.weight_orig"].shape[0])  # spectral-normed first conv (ndf, in, 4, 4)
    except (ValueError, KeyError, AttributeError, IndexError) as error:
        raise ValueError(f"{source}: {error}") from None
    layers = {name: 1 + sum(1 for k in params[name] if re.fullmatch(r"model\.\d+\.weight_orig", k))
              for name in ("disGA", "disGB", "disLA", "disLB")}  # n_layers - 1 trunk convs (official: 7 and 5)
    channels = {"A": generator["in_channels"], "B": generator["out_channels"]}
    reverse = {**generator, "in_channels": generator["out_channels"], "out_channels": generator["in_channels"]}
    nets = {"genA2B": UgatitGenerator(**generator), "genB2A": UgatitGenerator(**reverse)}
    nets.update({name: UgatitDiscriminator(in_channels=channels[name[-1]], ndf=ndf, n_layers=depth)
                 for name, depth in layers.items()})
    states = {}
    for name, net in nets.items():
        try:
            net.load_state_dict(params[name], strict=True)
        except RuntimeError as error:
            raise ValueError(f"{source}: {name} does not fit a U-GAT-IT network with {generator}: "
                             f"{str(error).splitlines()[0]}") from None
        states[UGATIT_NETWORKS[name]] = net.state_dict()
    if layers["disGA"] != layers["disGB"] or layers["disLA"] != layers["disLB"]:
        raise ValueError(f"{source}: the two domains' discriminators differ in depth ({layers})")
    return states, generator, {"ndf": ndf, "global_layers": layers["disGA"], "local_layers": layers["disLA"]}


def convert_ugatit(files: dict[str, File]) -> dict:
    """A ugatit checkpoint (both generators, all four discriminators) from one params file."""
    params = files["params"]
    states, generator, discriminator = read_ugatit_params(params.state, source=params.name)
    state_dict = {f"{module}.{k}": v for module, state in states.items() for k, v in state.items()}
    return new_checkpoint("ugatit", ugatit.translator_specs(generator), state_dict,
                          {"generator": generator, "discriminator": discriminator},
                          imported_from={"ugatit": params.name})


def convert_cut(files: dict[str, File], *, family: str = "cut") -> dict:
    """A cut (or fastcut: the files do not say which) checkpoint from G and optionally D and F."""
    g = files["g"]
    try:
        hparams = {"generator": infer_cut_generator(g.state)}
    except ValueError as error:
        raise ValueError(f"{g.name}: {error}") from None
    translators = cut.translator_specs(hparams["generator"])
    loaded = {"G": load_network(translators["a2b"], g.state, source=g.name).state_dict()}
    for name, role, infer, build in (("D", "d", infer_cut_discriminator, build_discriminator),
                                     ("F", "f", infer_cut_heads, PatchHeads)):
        if role not in files:
            continue
        file = files[role]
        try:
            settings = infer(file.state)
            net = build(**settings)
            net.load_state_dict(file.state, strict=True)
        except (ValueError, RuntimeError) as error:
            raise ValueError(f"{file.name}: not an official CUT {name} file that fits: "
                             f"{str(error).splitlines()[0]}") from None
        hparams["discriminator" if name == "D" else "heads"] = settings
        loaded[name] = net.state_dict()
    state_dict = {f"{cut.OFFICIAL_NETWORKS[name]}.{k}": v for name, weights in loaded.items() for k, v in weights.items()}
    return new_checkpoint(family, translators, state_dict, hparams,
                          imported_from={"G": g.name, **{name: files[role].name if role in files else None
                                                         for name, role in (("D", "d"), ("F", "f"))}})


def convert_fast_neural_style(files: dict[str, File]) -> dict:
    """A fast_style checkpoint from a pytorch/examples TransformerNet (instance-norm running
    statistics of old PyTorch files dropped)."""
    pth = files["pth"]
    try:
        network, state = infer_fast_neural_style(pth.state)
    except ValueError as error:
        raise ValueError(f"{pth.name}: {error}") from None
    translators = fast_style.translator_specs({**network, "n_styles": 0})
    weights = load_network(translators["a2b"], state, source=pth.name).state_dict()
    return new_checkpoint("fast_style", translators, {f"net.{k}": v for k, v in weights.items()},
                          {"network": network}, imported_from={"fast_neural_style": pth.name})


def convert_adain(files: dict[str, File]) -> dict:
    """An adain checkpoint from pytorch-AdaIN's decoder.pth and the encoder it was trained with
    (vgg_normalised.pth, or another VGG-19 file the shared VGGFeatures reads)."""
    decoder, vgg = files["decoder"], files["vgg"]
    net = AdaINNet(encoder={"weights": vgg.name})
    try:
        net.decoder.load_state_dict(decoder.state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as error:
        raise ValueError(f"{decoder.name}: not a pytorch-AdaIN decoder.pth (an nn.Sequential state dict with keys "
                         f"1.weight ... 28.bias): {str(error).splitlines()[0]}") from None
    encoder = adain.encoder_record(net)
    return new_checkpoint("adain", adain.translator_specs(encoder), {f"net.{k}": v for k, v in net.state_dict().items()},
                          {"encoder": encoder}, imported_from={"decoder": decoder.name, "vgg": vgg.name})


UGATIT = Adapter(name="ugatit", title="official U-GAT-IT checkpoint (znxlwm/UGATIT-pytorch *_params_*.pt)",
                 roles=("params",), required=("params",), convert=convert_ugatit, recognises=is_ugatit_params)
CUT = Adapter(name="cut", title="official CUT/FastCUT generator (taesungp/contrastive-unpaired-translation latest_net_G.pth)",
              roles=("g", "d", "f"), required=("g",), convert=convert_cut, recognises=is_cut_generator, one_way=True)
FAST_NEURAL_STYLE = Adapter(
    name="fast_neural_style", title="pytorch/examples fast_neural_style model (candy.pth, mosaic.pth, ...)",
    roles=("pth",), required=("pth",), convert=convert_fast_neural_style, recognises=is_fast_neural_style,
    one_way=True)
ADAIN = Adapter(name="adain", title="pytorch-AdaIN decoder.pth with vgg_normalised.pth (naoto0804)",
                roles=("decoder", "vgg"), required=("decoder", "vgg"), convert=convert_adain)
