"""The Gatys et al. objective and its pixel optimisation (Gatys, Ecker & Bethge, "Image Style
Transfer Using Convolutional Neural Networks", CVPR 2016).

    objective = GatysObjective(vgg, content, [style], content_layers=["conv4_2"], style_layers=[...])
    image = optimise(objective, init, optimizer="lbfgs", steps=500)  # (1, 3, H, W) in [0, 1]

The image matches the content photo's features at a high layer and the style images' feature
correlations (Gram matrices) at several layers. Grams (`cyclestyle.losses.gram`, shared with
fast_style) are divided by C·H·W, so a style weight
means the same at 256 px as at 1024 px, and a style image of any size can serve any content.
Targets (content features, blended style Grams) are computed once; only the image is optimised.
Optional: region-by-region Grams under segmentation masks and the matting-Laplacian photorealism
term of Luan et al. (`matting.py`), both in the same objective.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from ..losses import flat_gram, gram, tv_loss
from ..networks.vgg import VGGFeatures
from .matting import MattingTerm

CONTENT_LAYERS = ("conv4_2",)
STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
OPTIMIZERS = ("lbfgs", "adam")
ADAM_LR = 0.02  # per step on [0, 1] pixels (neural-style's 10 on 0-255 is ~0.04; lower is steadier)
MATTING_WEIGHT = 1e4  # Luan et al.'s lambda, for this objective's scale (the same as theirs)
LBFGS_EVALS = 25  # loss evaluations per L-BFGS step at most: the start point plus its line search


class GatysObjective:
    """weighted content loss + weighted style loss + weighted total variation (+ weighted
    photorealism energy) of an image.

    content: (1, 3, H, W); styles: (1, 3, h_i, w_i) each, any sizes, blended by `style_weights`
    (their Grams averaged with those weights, as in neural-style). Losses are mean squared errors,
    so every term is a per-element average and weights carry over between sizes.

    Masks (`cyclestyle.neural_style.masks`): `content_regions` (1, K, H, W) and one
    `style_regions[i]` (1, K, h_i, w_i) per style split the style loss into K regions: region k
    matches the Gram of the styles' region-k pixels (blended over the styles that have any),
    weighted by its share of the image; a region no style has gets no style loss. Masks are
    area-averaged down to each layer's size.
    `matting`: a `MattingTerm` of the content photo, added with `matting_weight` (Luan et al.).
    `autocast`: run the VGG in this dtype (bf16 where it is native); Grams and losses stay fp32.
    """

    def __init__(self, vgg: VGGFeatures, content: torch.Tensor, styles: Sequence[torch.Tensor], *,
                 content_layers: Sequence[str] = CONTENT_LAYERS, style_layers: Sequence[str] = STYLE_LAYERS,
                 style_layer_weights: Sequence[float] | None = None, style_weights: Sequence[float] | None = None,
                 content_weight: float = 5.0, style_weight: float = 100.0, tv_weight: float = 0.0,
                 content_regions: torch.Tensor | None = None, style_regions: Sequence[torch.Tensor] | None = None,
                 matting: MattingTerm | None = None, matting_weight: float = MATTING_WEIGHT,
                 autocast: torch.dtype | None = None) -> None:
        self.vgg, self.content_layers, self.style_layers = vgg, tuple(content_layers), tuple(style_layers)
        missing = [name for name in (*self.content_layers, *self.style_layers) if name not in vgg.layers]
        if missing:
            raise ValueError(f"the VGG extractor was built without layer(s) {missing}")
        layer_weights = [1.0] * len(self.style_layers) if style_layer_weights is None else list(style_layer_weights)
        if len(layer_weights) != len(self.style_layers):
            raise ValueError(f"{len(layer_weights)} style layer weights for {len(self.style_layers)} style layers")
        blend = _normalised(style_weights, len(styles))
        if (content_regions is None) != (style_regions is None):
            raise ValueError("masks need both a content mask and one mask per style image")
        if style_regions is not None and len(style_regions) != len(styles):
            raise ValueError(f"{len(style_regions)} style masks for {len(styles)} style images")
        self.layer_weights = dict(zip(self.style_layers, layer_weights))
        self.content_weight, self.style_weight, self.tv_weight = content_weight, style_weight, tv_weight
        self.matting, self.matting_weight, self.autocast = matting, matting_weight, autocast
        first = next(vgg.parameters())
        self.channels_last = first.is_contiguous(memory_format=torch.channels_last) and not first.is_contiguous()
        with torch.no_grad():
            feats = self._features(content)
            self.content_targets = {name: feats[name] for name in self.content_layers}  # (1, C, h, w)
            # per layer: the content's region maps at that size (None without masks), region weights
            self.regions = {name: _downsampled(content_regions, feats[name]) for name in self.style_layers}
            grams = {name: [] for name in self.style_layers}  # per layer, per style: (K, C, C) and (K,) presence
            for i, style in enumerate(styles):
                feats = self._features(style)
                for name in self.style_layers:
                    masks = None if style_regions is None else _downsampled(style_regions[i], feats[name])
                    grams[name].append(region_grams(feats[name], masks))
            self.style_targets, self.region_weights = {}, {}
            for name in self.style_layers:
                present = torch.stack([has for _, has in grams[name]])  # (S, K)
                mix = present * torch.tensor(blend, device=present.device)[:, None]  # (S, K)
                covered = mix.sum(0)  # (K,): 0 where no style paints the region
                mix = mix / covered.clamp_min(1e-12)
                self.style_targets[name] = torch.einsum("sk,skij->kij", mix, torch.stack([g for g, _ in grams[name]]))
                share = torch.ones(1, device=present.device) if self.regions[name] is None \
                    else self.regions[name].mean(dim=(0, 2, 3))  # (K,) each region's share of the image
                self.region_weights[name] = share * (covered > 0)

    def _features(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """The VGG features (in fp32) of (1, 3, H, W), under autocast if asked for (and in the
        extractor's memory format)."""
        if self.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        with torch.autocast(image.device.type, dtype=self.autocast or torch.float32, enabled=self.autocast is not None):
            feats = self.vgg(image)
        return {name: value.float() for name, value in feats.items()}  # in the extractor's layout

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """(1, 3, H, W) in [0, 1] -> (total loss with a graph, {"content", "style", "tv", "photo", "total"} floats)."""
        feats = self._features(image)
        content = sum(F.mse_loss(feats[n], t) for n, t in self.content_targets.items())
        style = image.new_zeros(())
        for name, target in self.style_targets.items():
            grams, _ = region_grams(feats[name], self.regions[name])  # (K, C, C)
            per_region = (grams - target).pow(2).mean(dim=(1, 2))  # (K,)
            style = style + self.layer_weights[name] * (self.region_weights[name] * per_region).sum()
        tv = tv_loss(image) if self.tv_weight else image.new_zeros(())
        photo = self.matting(image) if self.matting is not None else image.new_zeros(())
        total = self.content_weight * content + self.style_weight * style + self.tv_weight * tv
        if self.matting is not None:
            total = total + self.matting_weight * photo
        parts = {name: float(value.detach()) for name, value in
                 (("content", content), ("style", style), ("tv", tv), ("photo", photo), ("total", total))}
        return total, parts


def region_grams(features: torch.Tensor, masks: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, C, h, w) features and (1, K, h, w) region maps (None: one region, the whole image) ->
    ((K, C, C) Grams of each region's masked features divided by C·(region area), (K,) bool: the
    region has pixels). With no masks this is `gram`."""
    if masks is None:
        return gram(features), torch.ones(1, dtype=torch.bool, device=features.device)
    _, c, h, w = features.shape
    masked = (features * masks.transpose(0, 1)).reshape(-1, c, h * w)  # (K, C, hw)
    area = masks.sum(dim=(0, 2, 3))  # (K,)
    grams = flat_gram(masked) / (c * area.clamp_min(1e-6))[:, None, None]  # (K, C, C)
    return grams, area > 1e-6


def _downsampled(masks: torch.Tensor | None, features: torch.Tensor) -> torch.Tensor | None:
    """(1, K, H, W) region maps area-averaged to the (h, w) of (1, C, h, w) features."""
    if masks is None:
        return None
    return F.adaptive_avg_pool2d(masks.to(features.device), features.shape[-2:])


def _normalised(weights: Sequence[float] | None, count: int) -> list[float]:
    """Blend weights summing to 1 (equal when None)."""
    if count < 1:
        raise ValueError("at least one style image is needed")
    weights = [1.0] * count if weights is None else [float(w) for w in weights]
    if len(weights) != count or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"style weights {weights}: need {count} non-negative numbers with a positive sum")
    return [w / sum(weights) for w in weights]


def optimise(objective: GatysObjective, init: torch.Tensor, *, optimizer: str = "adam", steps: int = 500,
             lr: float | None = None,
             callback: Callable[[int, dict[str, float], torch.Tensor], None] | None = None) -> torch.Tensor:
    """Optimise the pixels of `init` (1, 3, H, W) in [0, 1] for `steps` steps; returns the image
    (detached, clamped to [0, 1]).

    adam: pixels are clamped to [0, 1] after every step (projected descent: a sigmoid
    parametrisation slows saturated colours down, clamping inside the loss zeroes their gradients).
    lbfgs: one L-BFGS iteration per step with a strong-Wolfe line search (up to LBFGS_EVALS - 1
    evaluations; torch caps the search by `max_eval`, which would otherwise be 1 and freeze it),
    no clamping until the end (clamping moves the image behind L-BFGS's back and spoils its
    curvature pairs, as neural-style knows), and no re-evaluation of the point the line search
    accepted. It stops early once a line search finds no lower loss (converged).
    `callback(step, losses, image)` sees each step's image after it (unclamped for lbfgs; do not
    modify it) and the losses of the image it started from (adam) or reached (lbfgs).
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer={optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    image = init.detach().clone(memory_format=torch.contiguous_format).clamp_(0, 1).requires_grad_(True)  # L-BFGS views grads flat
    if optimizer == "adam":
        opt = torch.optim.Adam([image], lr=lr or ADAM_LR)
        for step in range(steps):
            opt.zero_grad(set_to_none=True)
            total, losses = objective(image)
            total.backward()
            opt.step()
            with torch.no_grad():
                image.clamp_(0, 1)
            if callback is not None:
                callback(step, losses, image.detach())
        return image.detach()
    opt = torch.optim.LBFGS([image], lr=lr or 1.0, max_iter=1, max_eval=LBFGS_EVALS, history_size=100,
                            tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe")
    evaluated: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, float]]] = []  # (image, loss, grad, parts)

    def closure() -> torch.Tensor:
        for seen, total, grad, _ in evaluated:  # each step() starts by evaluating the accepted point again
            if torch.equal(seen, image):
                image.grad = grad.clone()
                return total
        opt.zero_grad(set_to_none=True)
        total, losses = objective(image)
        total.backward()
        evaluated.append((image.detach().clone(), total.detach(), image.grad.clone(), losses))
        return total

    for step in range(steps):
        before = image.detach().clone()
        opt.step(closure)
        accepted = next((entry for entry in evaluated if torch.equal(entry[0], image)), None)
        evaluated[:] = [accepted] if accepted is not None else []
        if accepted is not None and callback is not None:
            callback(step, accepted[3], image.detach())
        if torch.equal(before, image):  # the line search found nothing lower: converged
            break
    return image.detach().clamp_(0, 1)
