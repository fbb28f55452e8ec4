"""Test helper: pytorch-AdaIN's normalised VGG-19 as its own net.py builds it (for files in the port's layout)."""
import torch.nn as nn

from cyclestyle.networks import vgg as vgg_module
from cyclestyle.networks.vgg import LAYERS


def adain_vgg_normalised() -> nn.Sequential:
    """pytorch-AdaIN's `vgg_normalised` layout (net.py of naoto0804/pytorch-AdaIN): a 1x1 input conv,
    then per VGG-19 conv a ReflectionPad2d(1) + 3x3 conv without padding, ReLUs, ceil-mode max pools."""
    modules, in_ch = [nn.Conv2d(3, 3, 1)], 3
    for name in LAYERS:
        if name.startswith("conv"):
            out_ch = vgg_module.BLOCKS["vgg19"][int(name[4]) - 1][0]
            modules += [nn.ReflectionPad2d(1), nn.Conv2d(in_ch, out_ch, 3)]
            in_ch = out_ch
        elif name.startswith("relu"):
            modules.append(nn.ReLU())
        else:
            modules.append(nn.MaxPool2d(2, 2, ceil_mode=True))
    return nn.Sequential(*modules)
