"""AdaIN arbitrary style transfer (Huang & Belongie, ICCV 2017) as a model family: the decoder of
`networks.adain.AdaINNet` trained against the frozen VGG-19 encoder; one network for any style.

    cyclestyle train model=adain                                        # the demo (recipe/demo_adain.yaml)
    cyclestyle train model=adain data=content_style data.content=PHOTOS data.style=PAINTINGS
    cyclestyle translate last.ckpt PHOTOS --style PAINTING.jpg --output OUT   # any style image

Batches are two unpaired domains: A = content photos, B = style images (any two-domain data option).
One iteration, as pytorch-AdaIN's train.py (naoto0804) and the paper:
    t        = adain(enc(content), mean/std of enc(style) at relu4_1)       (no gradient)
    output   = decoder(t)
    content  = mse(enc(output) at relu4_1, t)                                      x lambda_content (1)
    style    = sum over relu1_1, relu2_1, relu3_1, relu4_1 of
               mse(mean(enc(output)), mean(enc(style))) + mse(std(...), std(...))  x lambda_style (10)
Only the decoder trains (Adam 1e-4; learning rate lr / (1 + lr_decay * iteration), lr_decay 5e-5, the
port's decay), with Lightning's automatic optimisation: one optimizer step per iteration.
Translation is content -> stylised content ("a2b"), conditioned on a style image (condition
"style_image"): `translate --style` binds it (`networks.adain.StyledAdaIN`).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch.optim.lr_scheduler import LambdaLR

from ..networks.adain import STYLE_LAYERS, AdaINNet, adain, mean_std
from ..record import TranslatorSpec
from .base import SampleGrid, TranslationModel

BUILDER = "cyclestyle.networks.adain:AdaINNet"


def translator_specs(encoder: dict) -> dict[str, TranslatorSpec]:
    """The record's translator for an AdaINNet whose encoder has these (weight-free) VGGFeatures
    settings; also for networks imported from pytorch-AdaIN's files."""
    return {"a2b": TranslatorSpec(module="net", builder=BUILDER, kwargs={"encoder": encoder},
                                  size_multiple=AdaINNet.size_multiple, condition="style_image")}


def encoder_record(net: AdaINNet) -> dict:
    """The VGGFeatures settings that rebuild `net`'s encoder without its weights file (the state dict
    carries the weights; "none" preprocessing stands for pytorch-AdaIN's normalised-VGG layout)."""
    vgg = net.encoder
    pool = next(m for m in vgg.features if isinstance(m, (torch.nn.MaxPool2d, torch.nn.AvgPool2d)))
    return {"arch": vgg.arch, "pooling": "max" if isinstance(pool, torch.nn.MaxPool2d) else "avg",
            "preprocessing": vgg.preprocessing}


class AdaIN(TranslationModel):
    family, title = "adain", "AdaIN"

    def __init__(
        self,
        *,
        encoder: dict | None = None,
        lambda_content: float = 1.0,
        lambda_style: float = 10.0,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        lr_decay: float = 5e-5,
        metrics: dict | None = None,
    ) -> None:
        """`encoder`: VGGFeatures keywords (weights: "caffe", "torchvision", a file such as
        pytorch-AdaIN's vgg_normalised.pth, or None for random; pooling, preprocessing, download);
        `optimizer` a partial optimizer for the decoder; `metrics` must leave FID/KID off (num_images 0):
        stylised outputs have no single target domain to compare with."""
        super().__init__()
        for name, value in (("lambda_content", lambda_content), ("lambda_style", lambda_style), ("lr_decay", lr_decay)):
            if value < 0:
                raise ValueError(f"model.{name} must be >= 0, got {value}")
        if (metrics or {}).get("num_images", 0):
            raise ValueError("model.metrics.num_images: FID/KID are not computed for AdaIN (set it to 0)")
        self.save_hyperparameters(ignore=["optimizer"])
        self.net = AdaINNet(encoder=encoder)
        self.translators = translator_specs(encoder_record(self.net))
        self.lambda_content, self.lambda_style, self.lr_decay = lambda_content, lambda_style, lr_decay
        self.optimizer = optimizer or (lambda params: torch.optim.Adam(params, lr=1e-4))

    def sample_grids(self) -> list[SampleGrid]:
        return [SampleGrid("stylized", ("content", "style", "output"))]

    def metric_pairs(self) -> dict[str, tuple[str, str]]:
        return {}

    def translate_images(self, direction: str, x: torch.Tensor) -> torch.Tensor:
        raise ValueError("an AdaIN model needs a style: model.net(content, style_images), or `cyclestyle "
                         "translate MODEL PHOTOS --style STYLE`")

    def card_lines(self) -> list[str]:
        return [f"{self.title}, content → stylised content for any style image: a VGG-19 encoder to relu4_1 "
                f"(frozen; preprocessing {self.net.encoder.preprocessing}) and a mirrored decoder; "
                f"lambda_content {self.lambda_content}, lambda_style {self.lambda_style}.",
                "Translate with a style: `cyclestyle translate MODEL PHOTOS --style STYLE... [--alpha A] "
                "[--style-weights W,...] [--preserve-color] --output OUT`."]

    def losses(self, content: torch.Tensor, style: torch.Tensor
               ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """(weighted loss terms, images) for content and style batches (B, 3, H, W) in [-1, 1]."""
        with torch.no_grad():
            if content.shape == style.shape:  # one encoder pass for both
                both = self.net.features(torch.cat([content, style]))
                feats_c = {k: v[: len(content)] for k, v in both.items()}
                feats_s = {k: v[len(content):] for k, v in both.items()}
            else:
                feats_c, feats_s = self.net.features(content), self.net.features(style)
            style_stats = [mean_std(feats_s[layer]) for layer in STYLE_LAYERS]
            target = adain(feats_c[STYLE_LAYERS[-1]], *style_stats[-1])  # (B, 512, H / 8, W / 8)
        output = self.net.decode(target)
        feats_o = self.net.features(output)
        content_loss = F.mse_loss(feats_o[STYLE_LAYERS[-1]].float(), target)
        style_loss = sum(F.mse_loss(m, ms) + F.mse_loss(s, ss)
                         for (m, s), (ms, ss) in zip((mean_std(feats_o[layer]) for layer in STYLE_LAYERS), style_stats))
        terms = {"content": self.lambda_content * content_loss, "style": self.lambda_style * style_loss}
        return terms, {"content": content, "style": style, "output": output}

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        terms, _ = self.losses(batch["A"], batch["B"])
        loss = terms["content"] + terms["style"]
        self.log_dict({f"loss/{name}": value.detach() for name, value in terms.items()})
        self.log("loss/total", loss.detach(), prog_bar=True)
        self.log("lr", self.optimizers().param_groups[0]["lr"])
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        terms, images = self.losses(batch["A"], batch["B"])
        self.log_dict({f"val/{name}": value for name, value in terms.items()}, sync_dist=True,
                      batch_size=len(batch["A"]))
        return {name: image.detach() for name, image in images.items()}

    def configure_optimizers(self):
        optimizer = self.optimizer(self.net.decoder.parameters())
        decay = LambdaLR(optimizer, lambda iteration: 1.0 / (1.0 + self.lr_decay * iteration))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": decay, "interval": "step"}}
