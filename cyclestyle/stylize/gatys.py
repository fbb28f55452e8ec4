"""The Gatys et al. objective and its pixel optimisation (Gatys, Ecker & Bethge, "Image Style
Transfer Using Convolutional Neural Networks", CVPR 2016).

    objective = GatysObjective(vgg, content, [style], content_layers=["conv4_2"], style_layers=[...])
    image = optimise(objective, init, optimizer="lbfgs", steps=500)  # (1, 3, H, W) in [0, 1]

The image matches the content photo's features at a high layer and the style images' feature
correlations (Gram matrices) at several layers. Grams are divided by C·H·W, so a style weight
means the same at 256 px as at 1024 px, and a style image of any size can serve any content.
Targets (content features, blended style Grams) are computed once; only the image is optimised.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from ..networks.vgg import VGGFeatures

CONTENT_LAYERS = ("conv4_2",)
STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
OPTIMIZERS = ("lbfgs", "adam")
ADAM_LR = 0.02  # per step on [0, 1] pixels (neural-style's 10 on 0-255 is ~0.04; lower is steadier)


def gram(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C) feature correlations divided by C·H·W: independent of the image
    size (a 2x2 tiling of a map gives the same Gram) and of the layer's width."""
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)  # (B, C, HW)
    return flat @ flat.transpose(1, 2) / (c * h * w)  # (B, C, C)


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of neighbouring pixels of (B, 3, H, W): penalises high-frequency noise."""
    return (image[..., 1:, :] - image[..., :-1, :]).pow(2).mean() + (image[..., :, 1:] - image[..., :, :-1]).pow(2).mean()


class GatysObjective:
    """weighted content loss + weighted style loss + weighted total variation of an image.

    content: (1, 3, H, W); styles: (1, 3, h_i, w_i) each, any sizes, blended by `style_weights`
    (their Grams averaged with those weights, as in neural-style). Losses are mean squared errors,
    so every term is a per-element average and weights carry over between sizes.
    """

    def __init__(self, vgg: VGGFeatures, content: torch.Tensor, styles: Sequence[torch.Tensor], *,
                 content_layers: Sequence[str] = CONTENT_LAYERS, style_layers: Sequence[str] = STYLE_LAYERS,
                 style_layer_weights: Sequence[float] | None = None, style_weights: Sequence[float] | None = None,
                 content_weight: float = 5.0, style_weight: float = 100.0, tv_weight: float = 0.0) -> None:
        self.vgg, self.content_layers, self.style_layers = vgg, tuple(content_layers), tuple(style_layers)
        missing = [name for name in (*self.content_layers, *self.style_layers) if name not in vgg.layers]
        if missing:
            raise ValueError(f"the VGG extractor was built without layer(s) {missing}")
        layer_weights = [1.0] * len(self.style_layers) if style_layer_weights is None else list(style_layer_weights)
        if len(layer_weights) != len(self.style_layers):
            raise ValueError(f"{len(layer_weights)} style layer weights for {len(self.style_layers)} style layers")
        blend = _normalised(style_weights, len(styles))
        self.layer_weights = dict(zip(self.style_layers, layer_weights))
        self.content_weight, self.style_weight, self.tv_weight = content_weight, style_weight, tv_weight
        with torch.no_grad():
            feats = vgg(content)
            self.content_targets = {name: feats[name] for name in self.content_layers}  # (1, C, h, w)
            self.style_targets = {name: 0.0 for name in self.style_layers}
            for weight, style in zip(blend, styles):
                feats = vgg(style)
                for name in self.style_layers:
                    self.style_targets[name] = self.style_targets[name] + weight * gram(feats[name])  # (1, C, C)

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """(1, 3, H, W) in [0, 1] -> (total loss with a graph, {"content", "style", "tv", "total"} floats)."""
        feats = self.vgg(image)
        content = sum(F.mse_loss(feats[n], t) for n, t in self.content_targets.items())
        style = sum(self.layer_weights[n] * F.mse_loss(gram(feats[n]), t) for n, t in self.style_targets.items())
        tv = tv_loss(image) if self.tv_weight else image.new_zeros(())
        total = self.content_weight * content + self.style_weight * style + self.tv_weight * tv
        parts = {name: float(value.detach()) for name, value in
                 (("content", content), ("style", style), ("tv", tv), ("total", total))}
        return total, parts


def _normalised(weights: Sequence[float] | None, count: int) -> list[float]:
    """Blend weights summing to 1 (equal when None)."""
    if count < 1:
        raise ValueError("at least one style image is needed")
    weights = [1.0] * count if weights is None else [float(w) for w in weights]
    if len(weights) != count or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"style weights {weights}: need {count} non-negative numbers with a positive sum")
    return [w / sum(weights) for w in weights]


def optimise(objective: GatysObjective, init: torch.Tensor, *, optimizer: str = "adam", steps: int = 500,
             lr: float | None = None, callback: Callable[[int, dict[str, float]], None] | None = None) -> torch.Tensor:
    """Optimise the pixels of `init` (1, 3, H, W) in [0, 1] for `steps` loss evaluations; returns
    the image (detached, in [0, 1]).

    Pixels are clamped to [0, 1] after every step (projected descent): a sigmoid parametrisation
    slows saturated colours down, and clamping inside the loss would zero their gradients.
    L-BFGS runs one iteration per `step()` call (its history persists between calls; its line
    search may evaluate the loss a few times within a step).
    `callback(step, losses)` sees each step's losses (before the update).
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer={optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    image = init.detach().clone(memory_format=torch.contiguous_format).clamp_(0, 1).requires_grad_(True)  # L-BFGS views grads flat
    if optimizer == "lbfgs":
        # A strong-Wolfe line search: a fixed step of 1 (neural-style's, for pixels in 0..255) diverges
        # for pixels in [0, 1] and leaves clamped noise; the search picks each step's length itself.
        opt = torch.optim.LBFGS([image], lr=lr or 1.0, max_iter=1, history_size=100, line_search_fn="strong_wolfe")
    else:
        opt = torch.optim.Adam([image], lr=lr or ADAM_LR)
    losses: dict[str, float] = {}

    def closure() -> torch.Tensor:
        nonlocal losses
        opt.zero_grad(set_to_none=True)
        total, losses = objective(image)
        total.backward()
        return total

    for step in range(steps):
        opt.step(closure)
        with torch.no_grad():
            image.clamp_(0, 1)
        if callback is not None:
            callback(step, losses)
    return image.detach()
