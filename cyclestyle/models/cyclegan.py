"""CycleGAN (Zhu et al. 2017) on the GAN base: two generators, two discriminators.

One iteration:
  1. G_A: A -> B and G_B: B -> A translate, reconstruct and (if enabled) map identity.
  2. Generator loss: adversarial (through D_A, D_B with their weights detached, i.e. frozen)
     + cycle L1 * lambda + identity L1 * lambda * lambda_identity.
     Discriminator loss: real vs. pooled, detached fakes.
  3. One backward of both losses, then the generator step, then the discriminator step (GANModel).
The discriminator loss only reaches D weights and the generator loss only G weights, so this
equals the reference's G-backward, G-step, D-backward, D-step.

Naming follows the reference: D_A judges G_A's output (domain B), D_B judges G_B's (domain A).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import AdversarialLoss
from ..networks import build_discriminator, build_generator
from ..record import CYCLEGAN_BUILDER, TranslatorSpec
from .base import GANModel, SampleGrid, check_weights, frozen


def translator_specs(generator: dict, *, size_multiple: int) -> dict[str, TranslatorSpec]:
    """The record's translators for two generators of these `build_generator` settings (also for
    imported reference files): A -> B under `g_a`, B -> A under `g_b`."""
    architecture = {k: v for k, v in generator.items() if k not in ("init_type", "init_gain")}
    return {direction: TranslatorSpec(module=module, builder=CYCLEGAN_BUILDER, kwargs=architecture,
                                      size_multiple=size_multiple)
            for direction, module in (("a2b", "g_a"), ("b2a", "g_b"))}


class CycleGAN(GANModel):
    family, title = "cyclegan", "CycleGAN"
    default_pool_size = 50  # the reference's history of fakes per discriminator

    def __init__(self, *, generator: dict | None = None, discriminator: dict | None = None, gan_mode: str = "lsgan",
                 lambda_a: float = 10.0, lambda_b: float = 10.0, lambda_identity: float = 0.5, **common) -> None:
        """`generator`/`discriminator` are keyword arguments of `build_generator`/`build_discriminator`;
        `common` the GANModel settings (optimizer, scheduler, metrics, feature_extractor, compile,
        pool_size, seed). Pooled fakes of domain A train D_B, those of B train D_A."""
        super().__init__(**common)
        check_weights(lambda_a=lambda_a, lambda_b=lambda_b, lambda_identity=lambda_identity)
        self.save_hyperparameters(ignore=["optimizer", "feature_extractor"])
        generator, discriminator = dict(generator or {}), dict(discriminator or {})
        self.g_a, self.g_b = build_generator(**generator), build_generator(**generator)  # A -> B, B -> A
        self.d_a, self.d_b = build_discriminator(**discriminator), build_discriminator(**discriminator)
        self.translators = translator_specs(generator, size_multiple=self.g_a.size_multiple)
        self.adversarial = AdversarialLoss(gan_mode)
        self.lambda_a, self.lambda_b, self.lambda_identity = lambda_a, lambda_b, lambda_identity

    def generator_parameters(self):
        return [*self.g_a.parameters(), *self.g_b.parameters()]

    def discriminator_parameters(self):
        return [*self.d_a.parameters(), *self.d_b.parameters()]

    def sample_grids(self) -> list[SampleGrid]:
        return [SampleGrid("A2B", ("real_A", "fake_B", "rec_A", "idt_B")),
                SampleGrid("B2A", ("real_B", "fake_A", "rec_B", "idt_A"))]

    def metric_pairs(self) -> dict[str, tuple[str, str]]:
        return {"A2B": ("real_B", "fake_B"), "B2A": ("real_A", "fake_A")}

    def card_lines(self) -> list[str]:
        return [f"Generators: {self.hparams.generator.get('name', '?')}; "
                f"discriminators: {self.hparams.discriminator.get('name', '?')}; GAN loss: {self.adversarial.mode}."]

    def losses(self, batch: dict[str, torch.Tensor], *, train: bool = True):
        """(loss terms by name, images by name) for one batch; all images (B, 3, H, W)."""
        real_a, real_b = batch["A"], batch["B"]
        identity = self.lambda_identity > 0
        # G_A translates A and (identity) maps B to itself: one call on both when they batch.
        fake_b, idt_a = self.twice("g_a", real_a, real_b if identity else None)
        fake_a, idt_b = self.twice("g_b", real_b, real_a if identity else None)
        rec_a, rec_b = self.g_b(fake_b), self.g_a(fake_a)
        terms = {
            "G_A_adv": self.adversarial.generator(frozen(self.d_a, fake_b)),
            "G_B_adv": self.adversarial.generator(frozen(self.d_b, fake_a)),
            "cycle_A": F.l1_loss(rec_a.float(), real_a.float()) * self.lambda_a,
            "cycle_B": F.l1_loss(rec_b.float(), real_b.float()) * self.lambda_b,
        }
        images = {"fake_B": fake_b, "fake_A": fake_a, "rec_A": rec_a, "rec_B": rec_b}
        if identity:  # G_A should leave B images alone
            terms["idt_A"] = F.l1_loss(idt_a.float(), real_b.float()) * self.lambda_b * self.lambda_identity
            terms["idt_B"] = F.l1_loss(idt_b.float(), real_a.float()) * self.lambda_a * self.lambda_identity
            images.update(idt_A=idt_a, idt_B=idt_b)
        if not train:
            return terms, images
        pooled_b, pooled_a = self.pools["B"].query(fake_b.detach()), self.pools["A"].query(fake_a.detach())
        terms["D_A"] = self.adversarial.discriminator(*self.twice("d_a", real_b, pooled_b))
        terms["D_B"] = self.adversarial.discriminator(*self.twice("d_b", real_a, pooled_a))
        return terms, images
