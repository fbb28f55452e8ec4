"""CycleGAN (Zhu et al. 2017) as a LightningModule with manual optimization.

One iteration (= one batch = one "step" everywhere a user sees steps):
  1. G_A: A -> B and G_B: B -> A translate, reconstruct and (if enabled) map identity.
  2. Generator loss: adversarial (through D_A, D_B with their weights detached, i.e. frozen)
     + cycle L1 * lambda + identity L1 * lambda * lambda_identity.
     Discriminator loss: real vs. pooled, detached fakes.
  3. One backward of both losses, then the generator step, then the discriminator step.
The discriminator loss only reaches D weights and the generator loss only G weights, so this
equals the reference's G-backward, G-step, D-backward, D-step, while every parameter gets its
gradient from a single backward: DDP needs no `find_unused_parameters`.

Naming follows the reference: D_A judges G_A's output (domain B), D_B judges G_B's (domain A).
"""
from __future__ import annotations

from typing import Any, Callable

import pytorch_lightning as pl
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call
from torch.optim.lr_scheduler import LambdaLR

from ..image_pool import ImagePool
from ..losses import AdversarialLoss
from ..metrics import TranslationMetrics, inception_features
from ..networks import build_discriminator, build_generator
from ..schedules import UNITS, LRMultiplier


def _frozen(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """net(x) with gradients flowing to x but not into net's weights."""
    weights = {name: p.detach() for name, p in net.named_parameters()}
    return functional_call(net, weights, (x,))


class CycleGAN(pl.LightningModule):
    def __init__(
        self,
        *,
        generator: dict | None = None,
        discriminator: dict | None = None,
        gan_mode: str = "lsgan",
        lambda_a: float = 10.0,
        lambda_b: float = 10.0,
        lambda_identity: float = 0.5,
        pool_size: int = 50,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: dict | None = None,
        seed: int = 0,
        metrics: dict | None = None,
        feature_extractor: nn.Module | None = None,
        compile: bool = False,
    ) -> None:
        """`generator`/`discriminator` are keyword arguments of `build_generator`/`build_discriminator`;
        `optimizer` a partial optimizer (default fused Adam lr 2e-4, betas (0.5, 0.999)) used for both
        the generator pair and the discriminator pair; `scheduler` keyword arguments of
        `LRMultiplier` plus `unit` (epoch | iteration). `metrics` = {num_images, kid_subset_size,
        download} turns on FID/KID at validation (num_images 0 turns them off), with InceptionV3
        features unless `feature_extractor` ((B, 3, H, W) in [0, 1] -> (B, D)) is given. `compile`
        runs the four networks through torch.compile (in place: checkpoint keys do not change)."""
        super().__init__()
        for name, value in (("lambda_a", lambda_a), ("lambda_b", lambda_b), ("lambda_identity", lambda_identity)):
            if value < 0:
                raise ValueError(f"model.{name} must be >= 0, got {value}")
        self.save_hyperparameters(ignore=["optimizer", "feature_extractor"])
        self.automatic_optimization = False
        generator, discriminator = dict(generator or {}), dict(discriminator or {})
        self.g_a, self.g_b = build_generator(**generator), build_generator(**generator)  # A -> B, B -> A
        self.d_a, self.d_b = build_discriminator(**discriminator), build_discriminator(**discriminator)
        self._per_sample = {name: not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
                            for name, net in self.named_children()}  # batch norm mixes a batch
        self.adversarial = AdversarialLoss(gan_mode)
        self.lambda_a, self.lambda_b, self.lambda_identity = lambda_a, lambda_b, lambda_identity
        self.pool_a = ImagePool(pool_size, seed=seed)  # fakes of domain A, for D_B
        self.pool_b = ImagePool(pool_size, seed=seed + 1)  # fakes of domain B, for D_A
        self.optimizer = optimizer or (lambda params: torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999), fused=True))
        scheduler = dict(scheduler or {})
        self.schedule_unit = scheduler.pop("unit", "epoch")
        if self.schedule_unit not in UNITS:
            raise ValueError(f"model.scheduler.unit={self.schedule_unit!r} is not known; choose one of {', '.join(UNITS)}")
        self.schedule = LRMultiplier(**scheduler)
        self.metric_settings = {"num_images": 0, "kid_subset_size": 50, "download": True, **(metrics or {})}
        self._features = [feature_extractor]  # in a list: not a submodule, never in checkpoints
        self._metrics: TranslationMetrics | None = None
        self.compile_networks = compile

    def setup(self, stage: str) -> None:
        if self.compile_networks:
            for net in (self.g_a, self.g_b, self.d_a, self.d_b):
                net.compile()

    def forward(self, x: torch.Tensor, direction: str = "a2b") -> torch.Tensor:
        """Translate (B, 3, H, W) images in [-1, 1]; direction a2b uses G_A, b2a G_B."""
        return (self.g_a if direction == "a2b" else self.g_b)(x)

    def configure_optimizers(self):
        opt_g = self.optimizer(list(self.g_a.parameters()) + list(self.g_b.parameters()))
        opt_d = self.optimizer(list(self.d_a.parameters()) + list(self.d_b.parameters()))
        return [opt_g, opt_d], [LambdaLR(opt_g, self.schedule), LambdaLR(opt_d, self.schedule)]

    def losses(
        self, real_a: torch.Tensor, real_b: torch.Tensor, *, train: bool = True
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """(loss terms by name, images by name) for one batch; all images (B, 3, H, W).

        Discriminator terms (which draw from the image pools) only when `train`."""
        identity = self.lambda_identity > 0
        # G_A translates A and (identity) maps B to itself: one call on both when they batch.
        fake_b, idt_a = self._twice("g_a", real_a, real_b if identity else None)
        fake_a, idt_b = self._twice("g_b", real_b, real_a if identity else None)
        rec_a, rec_b = self.g_b(fake_b), self.g_a(fake_a)
        terms = {
            "G_A_adv": self.adversarial.generator(_frozen(self.d_a, fake_b)),
            "G_B_adv": self.adversarial.generator(_frozen(self.d_b, fake_a)),
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
        pooled_b, pooled_a = self.pool_b.query(fake_b.detach()), self.pool_a.query(fake_a.detach())
        terms["D_A"] = self.adversarial.discriminator(*self._twice("d_a", real_b, pooled_b))
        terms["D_B"] = self.adversarial.discriminator(*self._twice("d_b", real_a, pooled_a))
        return terms, images

    def _twice(
        self, name: str, x: torch.Tensor, y: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(net(x), net(y)) for the network called `name`, as one call on the concatenated batch
        where that gives the same result (no batch norm, equal image sizes): one large convolution
        per layer instead of two small ones is ~8 % faster per iteration on CPU and fills a GPU better."""
        net = getattr(self, name)
        if y is None:
            return net(x), None
        if self._per_sample[name] and x.shape[1:] == y.shape[1:]:
            out_x, out_y = net(torch.cat([x, y])).split([len(x), len(y)])
            return out_x, out_y
        return net(x), net(y)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        if self.schedule_unit == "epoch":
            self._follow_epoch_schedule()
        terms, _ = self.losses(batch["A"], batch["B"])
        loss_d = terms["D_A"] + terms["D_B"]
        loss_g = sum(value for name, value in terms.items() if not name.startswith("D_"))
        opt_g.zero_grad(set_to_none=True)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss_g + loss_d)
        self._step_generators(opt_g.optimizer)
        opt_d.step()  # through Lightning: counts the iteration (global_step += 1), updates the AMP scaler
        if self.schedule_unit == "iteration":
            for scheduler in self.lr_schedulers():
                scheduler.step()
        self._log_losses(terms, loss_g, loss_d)

    def _log_losses(self, terms: dict[str, torch.Tensor], loss_g: torch.Tensor, loss_d: torch.Tensor) -> None:
        """Device tensors go to the loggers, which read them every `trainer.log_every_n_steps`.
        Lightning turns progress-bar values into numbers after every batch, and turns a logged
        number into a device tensor, each a device sync; so the bar (on host copies) and the
        learning rates are only updated in iterations whose metrics are written."""
        self.log_dict({f"loss/{name}": value.detach() for name, value in terms.items()})
        self.log_dict({"loss/G": loss_g.detach(), "loss/D": loss_d.detach()})
        if self.trainer._logger_connector.should_update_logs:  # the test Lightning itself uses
            opt_g, opt_d = self.optimizers()
            self.log_dict({"G": loss_g.detach().cpu(), "D": loss_d.detach().cpu()}, prog_bar=True, logger=False)
            self.log_dict({"lr/G": opt_g.param_groups[0]["lr"], "lr/D": opt_d.param_groups[0]["lr"]})

    def _step_generators(self, optimizer: torch.optim.Optimizer) -> None:
        """Step G outside Lightning's step counter, so that one iteration is one global step.

        With 16-bit AMP the shared GradScaler unscales and checks G's gradients here; the
        single `scaler.update()` for both optimizers follows in the discriminator step, as
        PyTorch's AMP recipe for several optimizers prescribes.
        """
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)

    def _follow_epoch_schedule(self) -> None:
        """Epoch schedules track the epoch counter (reference: one step per finished epoch).
        Checked every iteration, because Lightning skips on_train_epoch_start when it resumes."""
        for scheduler in self.lr_schedulers():
            while scheduler.last_epoch < self.current_epoch:
                scheduler.step()

    def on_validation_start(self) -> None:
        """Builds the FID/KID metrics at the first validation (Inception loads only for training)."""
        settings = self.metric_settings
        if self._metrics is None and settings["num_images"] > 0:
            features = self._features[0] or inception_features(download=settings["download"])
            if features is None:
                settings["num_images"] = 0  # warned once; train on without FID/KID
                return
            self._metrics = TranslationMetrics(features, num_images=settings["num_images"],
                                               kid_subset_size=settings["kid_subset_size"])
        if self._metrics is not None:
            self._metrics.to(self.device)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        real_a, real_b = batch["A"], batch["B"]
        terms, images = self.losses(real_a, real_b, train=False)
        self.log_dict({f"val/{name}": value for name, value in terms.items()},
                      sync_dist=True, batch_size=len(real_a))
        if self._metrics is not None:
            self._metrics.update("A2B", real_b, images["fake_B"])
            self._metrics.update("B2A", real_a, images["fake_A"])
        return {"real_A": real_a, "real_B": real_b, **images}

    def on_validation_epoch_end(self) -> None:
        if self._metrics is not None:  # every rank computes: torchmetrics gathers the statistics
            self.log_dict({f"val/{name}": value for name, value in self._metrics.compute().items()})

    # The image pools are training state: keep them in checkpoints for an exact resume.
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["image_pools"] = {"A": self.pool_a.state_dict(), "B": self.pool_b.state_dict()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "image_pools" in checkpoint:
            self.pool_a.load_state_dict(checkpoint["image_pools"]["A"], device=self.device)
            self.pool_b.load_state_dict(checkpoint["image_pools"]["B"], device=self.device)
