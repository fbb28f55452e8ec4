"""Loss terms shared by the families and by `cyclestyle.stylize` (plain torch, no framework).

Adversarial objectives on raw discriminator logits (`AdversarialLoss`):
lsgan:   D -> 1 on real, 0 on fake (MSE)          G: MSE(D(fake), 1)
vanilla: BCE-with-logits with the same targets     G: BCE(D(fake), 1) (non-saturating)
hinge:   D: relu(1 - real) + relu(1 + fake)        G: -D(fake)

Style terms (Gatys et al.; fast_style and the Gatys objective of `cyclestyle.neural_style`):
gram(F)     (B, C, H, W) -> (B, C, C) feature correlations divided by C·H·W (`flat_gram` for
            already flattened (B, C, N) maps with their own scale, e.g. masked regions)
tv_loss(x)  mean squared difference of neighbouring pixels
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

GAN_MODES = ("lsgan", "vanilla", "hinge")


class AdversarialLoss(nn.Module):
    def __init__(self, mode: str = "lsgan") -> None:
        super().__init__()
        if mode not in GAN_MODES:
            raise ValueError(f"model.gan_mode={mode!r} is not known; choose one of {', '.join(GAN_MODES)}")
        self.mode = mode

    def _against(self, logits: torch.Tensor, target: float) -> torch.Tensor:
        """Loss of `logits` against a constant label, without building a label tensor."""
        logits = logits.float()  # losses in fp32 even under autocast
        if self.mode == "lsgan":
            return (logits - target).square().mean()
        # binary cross-entropy with logits: -log sigmoid(x) for label 1, -log(1 - sigmoid(x)) for 0
        return F.softplus(-logits if target == 1.0 else logits).mean()

    def generator(self, fake_logits: torch.Tensor) -> torch.Tensor:
        """Loss for the generator whose output the discriminator scored as `fake_logits`."""
        if self.mode == "hinge":
            return -fake_logits.float().mean()
        return self._against(fake_logits, 1.0)

    def discriminator(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        """Discriminator loss, halved as in the reference so D learns slower than G."""
        if self.mode == "hinge":
            real = F.relu(1.0 - real_logits.float()).mean()
            fake = F.relu(1.0 + fake_logits.float()).mean()
        else:
            real, fake = self._against(real_logits, 1.0), self._against(fake_logits, 0.0)
        return 0.5 * (real + fake)


def gram(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C) feature correlations divided by C·H·W: independent of the image
    size (a 2x2 tiling of a map gives the same Gram) and of the layer's width."""
    b, c, h, w = features.shape
    return flat_gram(features.reshape(b, c, h * w), 1.0 / (c * h * w))  # (B, C, C)


def flat_gram(flat: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """(B, C, N) -> scale · F Fᵀ (B, C, C), with `_Gram`'s one-product backward."""
    return _Gram.apply(flat, scale)


class _Gram(torch.autograd.Function):
    """scale · F Fᵀ of (B, C, N) with the symmetric backward (dG + dGᵀ) F · scale: one matrix
    product instead of autograd's two (one per operand) and the sum of their (B, C, N) results;
    the Grams are a quarter of a Gatys evaluation's time on the CPU. The gradient keeps F's
    layout (channels-last features give a channels-last gradient): the backward adds it to the
    next layer's gradient, and adding tensors of different layouts is ~10x slower. It runs in F's
    dtype also under autocast (which would otherwise make it bf16)."""

    @staticmethod
    def forward(ctx, flat: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(flat)
        ctx.scale = scale
        with torch.autocast(flat.device.type, enabled=False):  # in F's dtype (fp32 here) even under autocast
            return torch.bmm(flat, flat.transpose(1, 2)).mul_(scale)  # (B, C, C)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (flat,) = ctx.saved_tensors
        symmetric = (grad + grad.transpose(1, 2)).to(flat.dtype) * ctx.scale  # (B, C, C)
        if flat.stride(1) == 1:  # channels fastest: compute (B, N, C) and view it as (B, C, N)
            return torch.bmm(flat.transpose(1, 2), symmetric).transpose(1, 2), None
        return torch.bmm(symmetric, flat), None  # (B, C, N)


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of neighbouring pixels of (B, 3, H, W): penalises high-frequency noise."""
    return (image[..., 1:, :] - image[..., :-1, :]).pow(2).mean() + (image[..., :, 1:] - image[..., :, :-1]).pow(2).mean()
