"""Adversarial objectives on raw discriminator logits.

lsgan:   D -> 1 on real, 0 on fake (MSE)          G: MSE(D(fake), 1)
vanilla: BCE-with-logits with the same targets     G: BCE(D(fake), 1) (non-saturating)
hinge:   D: relu(1 - real) + relu(1 + fake)        G: -D(fake)
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
