"""Feed-forward style transfer: one network per style (Johnson et al., ECCV 2016, "Perceptual Losses
for Real-Time Style Transfer") or several styles in one network through conditional instance norm
(Dumoulin et al., ICLR 2017, "A Learned Representation for Artistic Style").

    cyclestyle train model=fast_style                                           # the demo (recipe/demo_fast_style.yaml)
    cyclestyle train model=fast_style data=content data.content=~/photos model.styles=[~/art/starry.jpg]
    cyclestyle train model=multi_style data=content data.content=~/photos model.styles=[a.jpg,b.jpg,c.jpg]
    cyclestyle translate last.ckpt photos/ --output out/                         # fast_style
    cyclestyle translate last.ckpt photos/ --output out/ --style-index 2         # multi_style: one style
    cyclestyle translate last.ckpt photos/ --output out/ --style-mix 0.7,0.3,0   # multi_style: a blend

One iteration on content photos x (B, 3, H, W) in [-1, 1], y = net(x) (multi_style: net(x, one-hot
style rows), each image with one of `styles_per_batch` styles drawn from (seed, iteration)); a frozen
VGG (the shared `VGGFeatures`) sees both in [0, 1]:
  content  sum over content_layers of mse(F(y), F(x)) / mean(F(x)^2)                 x content_weight
  style    sum over style_layers of mse(G(F(y)), G_s) / mean(G_s^2), per image its style's Grams  x style_weight
  tv       mean squared difference of neighbouring pixels of y                         x tv_weight
Grams divide by C*H*W (`cyclestyle.losses.gram`, shared with Gatys), so a style image of any size serves crops of any
size. Each term is divided by its target's mean square (not in the paper): the weights then mean the
same for VGG-16 or VGG-19, Caffe (0-255) or torchvision preprocessing, where raw feature scales
differ ~50x. Adam at 1e-3, constant, as the paper. No discriminator, no FID (there is no target set).
"""
from __future__ import annotations

from typing import Callable, ClassVar, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..compiling import check_setting
from ..data.paintings import load_style
from ..losses import gram, tv_loss
from ..networks.transformer import TransformerNet
from ..networks.vgg import VGGFeatures
from ..record import TranslatorSpec
from .base import SampleGrid, TranslationModel, builder_defaults, settings

BUILDER = "cyclestyle.networks:TransformerNet"
NETWORK_DEFAULTS = {k: v for k, v in builder_defaults(TransformerNet).items() if k != "n_styles"}  # n_styles: model.styles
CONTENT_LAYERS = ("relu2_2",)
STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


def translator_specs(network: dict) -> dict[str, TranslatorSpec]:
    """The record's translator for a TransformerNet of these keywords (also for imported
    pytorch/examples files); conditioned on a style mix when it holds styles."""
    return {"a2b": TranslatorSpec(module="net", builder=BUILDER, kwargs=dict(network),
                                  size_multiple=TransformerNet.size_multiple,
                                  condition="style_mix" if network.get("n_styles") else None)}


def _images(styles: Sequence[str], size: int | None) -> list[torch.Tensor]:
    """Each style image as (1, 3, h, w) in [0, 1], its shorter side resized to `size` (None: as it is)."""
    out = []
    for i, entry in enumerate(styles):
        rgb = torch.from_numpy(np.ascontiguousarray(load_style(entry, setting=f"model.styles[{i}]")))
        x = rgb.permute(2, 0, 1)[None].float() / 255  # (1, 3, h, w)
        if size is not None:
            scale = size / min(x.shape[2:])
            x = F.interpolate(x, size=[max(1, round(s * scale)) for s in x.shape[2:]], mode="bilinear",
                              antialias=True, align_corners=False).clamp(0, 1)
        out.append(x)
    return out


class FastStyle(TranslationModel):
    """One style image, one TransformerNet (A -> stylised). The "a2b" translator is the network."""

    family, title = "fast_style", "Fast style transfer"
    conditional: ClassVar[bool] = False  # plain instance norm: net(x); multi_style: net(x, mix)

    def __init__(
        self,
        *,
        styles: Sequence[str],
        network: dict | None = None,
        vgg: dict | None = None,
        content_layers: Sequence[str] = CONTENT_LAYERS,
        style_layers: Sequence[str] = STYLE_LAYERS,
        content_weight: float = 1.0,
        style_weight: float = 1.0,
        tv_weight: float = 10.0,
        style_size: int | None = 256,
        styles_per_batch: int = 1,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        seed: int = 0,
        compile: bool | str = False,
    ) -> None:
        """`styles`: style image files or `builtin:NAME` paintings (read once, here); `network`:
        TransformerNet `channels`, `n_blocks`, `pixels`; `vgg`: VGGFeatures keywords (weights, pooling, ...) of the
        loss network; `style_size`: the style images' shorter side before their Grams are taken;
        `styles_per_batch` (multi_style): styles drawn per iteration; `optimizer` a partial optimizer."""
        super().__init__()
        styles = [styles] if isinstance(styles, str) else list(styles or [])
        if not self.conditional and len(styles) > 1:
            raise ValueError(f"model.styles: fast_style learns one style, got {len(styles)} images "
                             f"(model=multi_style learns several in one network)")
        self._check(styles, content_weight, style_weight, tv_weight, styles_per_batch, style_size)
        self.save_hyperparameters(ignore=["optimizer"])
        kwargs = {**settings("network", NETWORK_DEFAULTS, network, title=self.title),
                  "n_styles": len(styles) if self.conditional else 0}
        self.translators = translator_specs(kwargs)
        self.net = TransformerNet(**kwargs)
        self.styles, self.n_styles = styles, len(styles)
        self.content_layers, self.style_layers = tuple(content_layers), tuple(style_layers)
        self.content_weight, self.style_weight, self.tv_weight = float(content_weight), float(style_weight), float(tv_weight)
        self.styles_per_batch, self.seed = min(int(styles_per_batch), len(styles)), int(seed)
        self.optimizer = optimizer or (lambda params: torch.optim.Adam(params, lr=1e-3))
        self.compile_networks = check_setting(compile)
        try:
            loss_net = VGGFeatures(layers=[*self.content_layers, *self.style_layers], **dict(vgg or {}))
        except TypeError as error:  # an unknown keyword
            raise ValueError(f"model.vgg: {error}") from None
        self._vgg = [loss_net]  # in a list: not a submodule, so never in checkpoints nor seen by DDP
        with torch.no_grad():
            targets = [loss_net(image) for image in _images(styles, style_size)]
        for layer in self.style_layers:  # (N, C, C) per layer, and their mean squares (N,)
            grams = torch.cat([gram(t[layer].float()) for t in targets])
            self.register_buffer(f"gram_{layer}", grams, persistent=False)
            self.register_buffer(f"gram_scale_{layer}", grams.pow(2).mean((1, 2)), persistent=False)

    @staticmethod
    def _check(styles, content_weight, style_weight, tv_weight, styles_per_batch, style_size) -> None:
        if not styles:
            raise ValueError("model.styles: give at least one style image (a file or builtin:NAME)")
        for name, value in (("content_weight", content_weight), ("style_weight", style_weight),
                            ("tv_weight", tv_weight)):
            if value < 0:
                raise ValueError(f"model.{name} must be >= 0, got {value}")
        if styles_per_batch < 1:
            raise ValueError(f"model.styles_per_batch must be >= 1, got {styles_per_batch}")
        if style_size is not None and style_size < 16:
            raise ValueError(f"model.style_size must be >= 16 pixels (or null: as they are), got {style_size}")

    # --- the contract -------------------------------------------------------------------------
    def sample_grids(self) -> list[SampleGrid]:
        return [SampleGrid("stylised", ("real_A", "stylised"))]

    def metric_pairs(self) -> dict[str, tuple[str, str]]:
        return {}  # no target image set: no FID/KID

    def card_lines(self) -> list[str]:
        k = self.translators["a2b"].kwargs
        vgg = self._vgg[0]
        return [f"{self.title}: a Johnson et al. transformer network of {k['channels']} channels and "
                f"{k['n_blocks']} residual blocks, instance norm"
                f"{f' conditioned on {self.n_styles} styles' if k['n_styles'] else ''}.",
                f"Style image(s): {', '.join(map(str, self.styles))}. Loss network: VGG ({vgg.preprocessing} "
                f"preprocessing), content {','.join(self.content_layers)} x {self.content_weight}, style Grams "
                f"{','.join(self.style_layers)} x {self.style_weight}, TV x {self.tv_weight}."]

    def stylise(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> stylised; `style` (B, N) weights for multi_style, else unused."""
        return self.net(x, style) if self.conditional else self.net(x)

    # --- training -------------------------------------------------------------------------------
    def configure_optimizers(self):
        return self.optimizer(self.net.parameters())

    def loss_network(self) -> VGGFeatures:
        vgg = self._vgg[0]
        if vgg.scale.device != self.device:
            vgg.to(self.device)
        return vgg

    def draw_styles(self, batch_size: int) -> torch.Tensor:
        """(B,) style index per image: `styles_per_batch` styles drawn from (seed, iteration), round robin."""
        rng = np.random.default_rng([self.seed, int(self.global_step), 11])
        drawn = rng.choice(self.n_styles, self.styles_per_batch, replace=False)
        return torch.as_tensor(np.resize(drawn, batch_size), dtype=torch.long, device=self.device)

    def losses(self, x: torch.Tensor, y: torch.Tensor, styles: torch.Tensor) -> dict[str, torch.Tensor]:
        """Loss terms (unweighted) of outputs y for content x, image i judged against style styles[i]."""
        vgg = self.loss_network()
        feats_y = vgg((y + 1) / 2)  # outputs are not clamped: clamping would stop their gradients
        with torch.no_grad():
            feats_x = vgg((x + 1) / 2)
        content = sum(F.mse_loss(feats_y[n].float(), feats_x[n].float()) / feats_x[n].float().pow(2).mean()
                      for n in self.content_layers)
        style = 0.0
        for n in self.style_layers:
            target, scale = getattr(self, f"gram_{n}")[styles], getattr(self, f"gram_scale_{n}")[styles]  # (B, C, C), (B,)
            style = style + ((gram(feats_y[n].float()) - target).pow(2).mean((1, 2)) / scale).mean()
        return {"content": content, "style": style, "tv": tv_loss((y.float() + 1) / 2)}

    def _weighted(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        return (self.content_weight * terms["content"] + self.style_weight * terms["style"]
                + self.tv_weight * terms["tv"])

    def _one_hot(self, styles: torch.Tensor) -> torch.Tensor | None:
        return F.one_hot(styles, self.n_styles).float() if self.conditional else None

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x = batch["A"]
        styles = self.draw_styles(len(x))
        terms = self.losses(x, self.stylise(x, self._one_hot(styles)), styles)
        total = self._weighted(terms)
        self.log_dict({f"loss/{name}": value.detach() for name, value in terms.items()})
        self.log("loss/total", total.detach(), prog_bar=True)
        return total

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        """Every validation photo in every style: losses averaged over the styles, one column per style."""
        x = batch["A"]
        images, totals = {"real_A": x}, {}
        count = self.n_styles if self.conditional else 1
        for k in range(count):
            styles = torch.full((len(x),), k, dtype=torch.long, device=x.device)
            y = self.stylise(x, self._one_hot(styles))
            images[self.column(k)] = y
            for name, value in self.losses(x, y, styles).items():
                totals[name] = totals.get(name, 0.0) + value / count
        self.log_dict({f"val/{name}": value for name, value in totals.items()}, sync_dist=True, batch_size=len(x))
        return images

    def column(self, k: int) -> str:
        return "stylised"


class MultiStyle(FastStyle):
    """N style images, one TransformerNet with conditional instance norm: net(x, mix), mix (B, N)."""

    family, title = "multi_style", "Multi-style transfer"
    conditional = True

    def sample_grids(self) -> list[SampleGrid]:
        return [SampleGrid("styles", ("real_A", *(self.column(k) for k in range(self.n_styles))))]

    def column(self, k: int) -> str:
        return f"style_{k}"

    def card_lines(self) -> list[str]:
        return [*super().card_lines(), f"Translate with --style-index K (0..{self.n_styles - 1}, in the order above) "
                                       f"or blend with --style-mix W0,...,W{self.n_styles - 1}."]

    def translate_images(self, direction: str, x: torch.Tensor) -> torch.Tensor:
        """The first style (`stylise(x, mix)` for any other, or a blend)."""
        return self.net(x, F.one_hot(torch.zeros(len(x), dtype=torch.long, device=x.device), self.n_styles).to(x.dtype))
