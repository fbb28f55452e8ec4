"""U-GAT-IT networks (Kim et al., "U-GAT-IT", ICLR 2020, arXiv:1907.10830).

Module and parameter names are those of the official PyTorch code (znxlwm/UGATIT-pytorch,
`networks.py`), so its checkpoints load strictly with no key renaming::

    params = torch.load("selfie2anime_params_latest.pt", map_location="cpu")  # keys: OFFICIAL_NETS
    g = UgatitGenerator(**infer_ugatit_generator(params["genA2B"]))          # ngf 64, 4 blocks, 256 px, full
    g.load_state_dict(params["genA2B"], strict=True)
    translator = UgatitTranslator(**infer_ugatit_generator(params["genA2B"]))  # image only: translate, export
    translator.load_state_dict(params["genA2B"], strict=True)                  # the same keys
    d_global = UgatitDiscriminator(n_layers=GLOBAL_LAYERS)                    # disGA / disGB
    d_local = UgatitDiscriminator(n_layers=LOCAL_LAYERS)                      # disLA / disLB

As in the official code the weights keep PyTorch's default initialisation (no `init_weights`);
only the norms' rho, gamma and beta start at set values. Call `clip_rho` after every generator
step, as the official training loop does. The norm statistics follow the official (fixed)
formula: unbiased `torch.var` over (H, W) for instance norm and (C, H, W) for layer norm.
Checkpoints trained before that fix (before late August 2019, issue #30 of the official repo)
load too, but were trained with a different variance, so their outputs differ somewhat.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import ReflectionPad2d

OFFICIAL_NETS = ("genA2B", "genB2A", "disGA", "disGB", "disLA", "disLB")
GLOBAL_LAYERS, LOCAL_LAYERS = 7, 5  # the official disG* and disL* depths

__all__ = [
    "GLOBAL_LAYERS", "LOCAL_LAYERS", "OFFICIAL_NETS", "AdaLIN", "LayerInstanceNorm", "UgatitDiscriminator",
    "UgatitGenerator", "UgatitTranslator", "clip_rho", "infer_ugatit_generator",
]


def _mix_norm(x: torch.Tensor, rho: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-(B, C) scale and shift with x * scale + shift == rho * IN(x) + (1 - rho) * LN(x).

    Folding both normalisations into one affine map touches the big tensor once instead of
    six times. Statistics are taken in float32 so bf16 activations under autocast keep them
    accurate; float32 inputs are not copied."""
    xf = x.float()
    in_var, in_mean = torch.var_mean(xf, dim=(2, 3), keepdim=True)  # (B, C, 1, 1), unbiased
    ln_var, ln_mean = torch.var_mean(xf, dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1), unbiased
    rho = rho.float()  # (1, C, 1, 1)
    a_in = rho / torch.sqrt(in_var + eps)
    a_ln = (1 - rho) / torch.sqrt(ln_var + eps)
    return a_in + a_ln, -(a_in * in_mean + a_ln * ln_mean)  # (B, C, 1, 1) each


class LayerInstanceNorm(nn.Module):
    """The official `ILN`: a learned per-channel mix of instance and layer norm, then a learned affine.

    rho starts at 0 (pure layer norm), gamma at 1, beta at 0; all of shape (1, C, 1, 1)."""

    def __init__(self, channels: int, *, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.rho = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, shift = _mix_norm(x, self.rho, self.eps)  # (B, C, 1, 1)
        return torch.addcmul(shift * self.gamma + self.beta, x, scale * self.gamma).to(x.dtype)


class AdaLIN(nn.Module):
    """The official `adaILN` (AdaLIN): the same mix, with gamma and beta given per image.

    rho starts at 0.9, leaning to instance norm; gamma and beta come from the generator's MLP."""

    def __init__(self, channels: int, *, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.rho = nn.Parameter(torch.full((1, channels, 1, 1), 0.9))

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        gamma, beta = gamma[:, :, None, None], beta[:, :, None, None]  # (B, C) -> (B, C, 1, 1)
        scale, shift = _mix_norm(x, self.rho, self.eps)
        return torch.addcmul(shift * gamma + beta, x, scale * gamma).to(x.dtype)


def _conv3x3(channels: int) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, 3, padding=0, bias=False)


class ResidualBlock(nn.Module):
    """Encoder block: x + (pad, conv, IN, ReLU, pad, conv, IN), names as `conv_block.{1,5}`."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            ReflectionPad2d(1), _conv3x3(channels), nn.InstanceNorm2d(channels), nn.ReLU(True),
            ReflectionPad2d(1), _conv3x3(channels), nn.InstanceNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class AdaLINResidualBlock(nn.Module):
    """Decoder block: the residual block with AdaLIN in place of instance norm."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.pad1, self.conv1 = ReflectionPad2d(1), _conv3x3(channels)
        self.norm1, self.relu1 = AdaLIN(channels), nn.ReLU(True)
        self.pad2, self.conv2, self.norm2 = ReflectionPad2d(1), _conv3x3(channels), AdaLIN(channels)

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.norm1(self.conv1(self.pad1(x)), gamma, beta))
        return x + self.norm2(self.conv2(self.pad2(out)), gamma, beta)


def _class_activation(x: torch.Tensor, gap_fc: nn.Module, gmp_fc: nn.Module, gap_weight: torch.Tensor,
                      gmp_weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """CAM: logits from avg- and max-pooled features, and the features re-weighted by each fc's weights.

    Returns cam_logit (B, 2) and the two re-weighted copies concatenated (B, 2C, h, w)."""
    gap_logit = gap_fc(F.adaptive_avg_pool2d(x, 1).flatten(1))  # (B, 1)
    gmp_logit = gmp_fc(F.adaptive_max_pool2d(x, 1).flatten(1))  # (B, 1)
    gap_w = gap_weight.to(x.dtype)[:, :, None, None]  # (1, C) -> (1, C, 1, 1)
    gmp_w = gmp_weight.to(x.dtype)[:, :, None, None]
    return torch.cat([gap_logit, gmp_logit], 1), torch.cat([x * gap_w, x * gmp_w], 1)


class UgatitGenerator(nn.Module):
    """Encoder, CAM attention, an MLP giving AdaLIN's gamma/beta, AdaLIN decoder; returns (image, cam_logit, heatmap).

    Full mode (`light=False`) feeds the whole flattened bottleneck to the MLP, so its first Linear has
    (img_size/4)^2 * 4ngf inputs (268M weights at 256 px) and only img_size x img_size inputs work;
    light mode average-pools first and takes any multiple of 4.
    """

    size_multiple = 4  # two stride-2 downsamplings

    def __init__(self, *, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, n_blocks: int = 4,
                 img_size: int = 256, light: bool = False) -> None:
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
        if not light and (img_size <= 0 or img_size % self.size_multiple):
            raise ValueError(f"full U-GAT-IT (light=False) needs img_size a positive multiple of 4, got {img_size}")
        self.n_blocks, self.img_size, self.light = n_blocks, img_size, light
        self.fixed_size = None if light else img_size
        c = ngf * 4  # bottleneck channels
        # Registered in the official order, so parameters() and state_dict() list the same sequence.
        self.gap_fc = nn.Linear(c, 1, bias=False)
        self.gmp_fc = nn.Linear(c, 1, bias=False)
        self.conv1x1 = nn.Conv2d(2 * c, c, 1, bias=True)
        self.relu = nn.ReLU(True)
        self.gamma = nn.Linear(c, c, bias=False)
        self.beta = nn.Linear(c, c, bias=False)
        for i in range(1, n_blocks + 1):
            setattr(self, f"UpBlock1_{i}", AdaLINResidualBlock(c))

        down: list[nn.Module] = [ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, bias=False), nn.InstanceNorm2d(ngf),
                                 nn.ReLU(True)]
        for ch in (ngf, 2 * ngf):
            down += [ReflectionPad2d(1), nn.Conv2d(ch, 2 * ch, 3, stride=2, bias=False), nn.InstanceNorm2d(2 * ch),
                     nn.ReLU(True)]
        down += [ResidualBlock(c) for _ in range(n_blocks)]
        self.DownBlock = nn.Sequential(*down)

        mlp_in = c if light else (img_size // 4) ** 2 * c
        self.FC = nn.Sequential(nn.Linear(mlp_in, c, bias=False), nn.ReLU(True),
                                nn.Linear(c, c, bias=False), nn.ReLU(True))

        up: list[nn.Module] = []
        for ch in (c, c // 2):
            up += [nn.Upsample(scale_factor=2, mode="nearest"), ReflectionPad2d(1),
                   nn.Conv2d(ch, ch // 2, 3, bias=False), LayerInstanceNorm(ch // 2), nn.ReLU(True)]
        up += [ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7, bias=False), nn.Tanh()]
        self.UpBlock2 = nn.Sequential(*up)
        self._up_names = tuple(f"UpBlock1_{i}" for i in range(1, n_blocks + 1))

    def _check_size(self, x: torch.Tensor) -> None:
        if torch.jit.is_tracing():
            return
        h, w = x.shape[-2:]
        if self.fixed_size is not None and (h != self.fixed_size or w != self.fixed_size):
            raise ValueError(f"this full U-GAT-IT generator (light=False, img_size={self.fixed_size}) takes only "
                             f"{self.fixed_size}x{self.fixed_size} inputs, got {h}x{w}: "
                             "resize the input or use light=True")
        if h % self.size_multiple or w % self.size_multiple:
            raise ValueError(f"U-GAT-IT input height and width must be multiples of {self.size_multiple}, got {h}x{w}")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        self._check_size(x)
        x = self.DownBlock(x)  # (B, 4ngf, H/4, W/4)
        cam_logit, x = _class_activation(x, self.gap_fc, self.gmp_fc, self.gap_fc.weight, self.gmp_fc.weight)
        x = self.relu(self.conv1x1(x))  # (B, 2*4ngf, h, w) -> (B, 4ngf, h, w)
        heatmap = x.sum(1, keepdim=True)  # (B, 1, h, w)
        style = F.adaptive_avg_pool2d(x, 1).flatten(1) if self.light else x.flatten(1)  # (B, 4ngf) | (B, 4ngf*h*w)
        style = self.FC(style)  # (B, 4ngf)
        gamma, beta = self.gamma(style), self.beta(style)  # (B, 4ngf) each
        for name in self._up_names:
            x = getattr(self, name)(x, gamma, beta)
        return self.UpBlock2(x), cam_logit, heatmap  # (B, out, H, W) in [-1, 1], (B, 2), (B, 1, h, w)


class UgatitDiscriminator(nn.Module):
    """Spectral-normed PatchGAN with its own CAM; returns (patch logits, cam_logit (B, 2), heatmap).

    `n_layers - 2` stride-2 4x4 convs and one stride-1; the official pairs a global (7, disG*) with a
    local (5, disL*) one: a 256 px input gives 6x6 and 30x30 logits (receptive fields 286 and 70 px).
    Inputs must be at least `min_size` px (96 for the global one).
    Spectral norm is the classic `torch.nn.utils.spectral_norm` hook, whose `weight_orig`/`weight_u`/
    `weight_v` keys the official checkpoints hold.
    """

    def __init__(self, *, in_channels: int = 3, ndf: int = 64, n_layers: int = LOCAL_LAYERS) -> None:
        super().__init__()
        if n_layers < 3:
            raise ValueError(f"n_layers must be >= 3, got {n_layers}")
        sn = nn.utils.spectral_norm
        c = ndf * 2 ** (n_layers - 2)  # channels at the CAM
        # Smallest input side: n_layers - 2 halvings must leave the 2x2 map the head's reflection pad needs.
        self.min_size = 3 * 2 ** (n_layers - 2)  # 96 px for the global (7), 24 px for the local (5)
        # Official registration order: the CAM and head first, the trunk `model` last.
        self.gap_fc = sn(nn.Linear(c, 1, bias=False))
        self.gmp_fc = sn(nn.Linear(c, 1, bias=False))
        self.conv1x1 = nn.Conv2d(2 * c, c, 1, bias=True)
        self.leaky_relu = nn.LeakyReLU(0.2, True)
        self.pad = ReflectionPad2d(1)
        self.conv = sn(nn.Conv2d(c, 1, 4, bias=False))

        layers: list[nn.Module] = [ReflectionPad2d(1), sn(nn.Conv2d(in_channels, ndf, 4, stride=2, bias=True)),
                                   nn.LeakyReLU(0.2, True)]
        ch = ndf
        for stride in [2] * (n_layers - 3) + [1]:
            layers += [ReflectionPad2d(1), sn(nn.Conv2d(ch, 2 * ch, 4, stride=stride, bias=True)),
                       nn.LeakyReLU(0.2, True)]
            ch *= 2
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.model(x)  # (B, C, h, w)
        # Like the official code: logits use the spectral-normed weights, the re-weighting the raw weight_orig.
        cam_logit, x = _class_activation(x, self.gap_fc, self.gmp_fc, self.gap_fc.weight_orig, self.gmp_fc.weight_orig)
        x = self.leaky_relu(self.conv1x1(x))  # (B, C, h, w)
        heatmap = x.sum(1, keepdim=True)  # (B, 1, h, w)
        return self.conv(self.pad(x)), cam_logit, heatmap  # (B, 1, h-1, w-1) logits


@torch.no_grad()
def clip_rho(module: nn.Module) -> None:
    """Clamp every ILN/AdaLIN rho inside `module` to [0, 1] in place (the official RhoClipper(0, 1))."""
    for m in module.modules():
        if isinstance(m, (LayerInstanceNorm, AdaLIN)):
            m.rho.clamp_(0.0, 1.0)


class UgatitTranslator(UgatitGenerator):
    """The generator for translation and export: same constructor and state-dict keys, image only.

    Training needs the CAM logits and heatmap; `translate`, ONNX and `torch.export` want one
    tensor out. Being the generator itself (not a wrapper) keeps the keys official, so a
    checkpoint's `g_a.*` weights and an official genA2B state dict load into it strictly."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)[0]  # (B, out, H, W) in [-1, 1]


# First conv (ngf, in, 7, 7), MLP input layer, AdaLIN gamma, last conv (out, ngf, 7, 7): UpBlock2 is two
# (upsample, pad, conv, ILN, ReLU) stages, then pad, conv, tanh.
_REQUIRED = ("DownBlock.1.weight", "FC.0.weight", "gamma.weight", "UpBlock2.11.weight")


def infer_ugatit_generator(state: dict) -> dict:
    """UgatitGenerator keyword arguments read off an official genA2B/genB2A state dict.

    ngf and in_channels from the first conv, out_channels from the last, n_blocks from the
    AdaLIN blocks; light vs full from FC.0.weight's input size (4ngf pooled features, or the
    whole (img_size/4)^2 x 4ngf map), and img_size from it in full mode (light mode omits it:
    any size works)."""
    if not isinstance(state, dict) or not all(isinstance(state.get(k), torch.Tensor) for k in _REQUIRED):
        hint = ""
        if isinstance(state, dict) and set(OFFICIAL_NETS) <= set(state):
            hint = " (this is a whole official checkpoint: pass one of its state dicts, e.g. params['genA2B'])"
        raise ValueError("not a U-GAT-IT generator state dict: it needs the official ResnetGenerator keys "
                         f"{', '.join(_REQUIRED)}{hint}")
    ngf, in_channels = state["DownBlock.1.weight"].shape[:2]  # (ngf, in, 7, 7)
    c = 4 * ngf
    n_blocks = sum(1 for k in state if k.startswith("UpBlock1_") and k.endswith(".conv1.weight"))
    fc_out, fc_in = state["FC.0.weight"].shape  # (4ngf, mlp inputs)
    if fc_out != c or state["gamma.weight"].shape != (c, c):
        raise ValueError(f"not a U-GAT-IT generator state dict: FC.0.weight {tuple(state['FC.0.weight'].shape)} and "
                         f"gamma.weight {tuple(state['gamma.weight'].shape)} do not fit ngf={ngf} (4ngf={c})")
    kwargs = {"in_channels": int(in_channels), "out_channels": int(state["UpBlock2.11.weight"].shape[0]), "ngf": int(ngf),
              "n_blocks": n_blocks, "light": fc_in == c}
    if fc_in != c:  # full mode: fc_in = (img_size / 4)^2 * 4ngf
        side = math.isqrt(fc_in // c)
        if fc_in % c or side * side * c != fc_in:
            raise ValueError(f"not a U-GAT-IT generator state dict: FC.0.weight takes {fc_in} inputs, neither 4ngf={c} "
                             f"(light) nor (img_size/4)^2 * {c} (full)")
        kwargs["img_size"] = 4 * side
    return kwargs

