"""The model-family contract, and the GAN base that adversarial families build on.

Everything outside a family — sample grids, FID/KID, the model card, the checkpoint record that
`translate`, `export`, `import-reference` and fine-tuning read — uses only what
`TranslationModel` declares, never a family's own attributes. A new family is one module here,
its networks in `cyclestyle/networks/`, and `configs/model/<family>.yaml`.

A `GANModel` family writes only its networks and its losses:

    class MyGAN(GANModel):
        family, title = "mygan", "My GAN"
        pooled_domains = ("B",)                             # fakes its discriminator sees via a pool
        def __init__(self, *, ..., lambda_x: float = 1.0, **common):   # common: pool_size, seed, optimizer, ...
            super().__init__(**common)
            check_weights(lambda_x=lambda_x)
            self.g, self.d = ..., ...                       # plain nn.Modules
            self.translators = {"a2b": TranslatorSpec(module="g", builder=..., kwargs=..., size_multiple=4)}
        def generator_parameters(self): ...
        def discriminator_parameters(self): ...
        def losses(self, batch, *, train): ...              # terms (D terms named "D_*"), images
        def sample_grids(self): ...
        def metric_pairs(self): ...
"""
from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import pytorch_lightning as pl
import torch
import torch.nn as nn
from pytorch_lightning.utilities import rank_zero_info
from torch.func import functional_call
from torch.optim.lr_scheduler import LambdaLR

from ..compiling import cache_dir, check_setting, keep_compile_caches, resolve_compile
from ..image_pool import ImagePool
from ..metrics import TranslationMetrics, inception_features
from ..record import RECORD_KEY, TranslatorSpec, describe_directions, make_record
from ..schedules import UNITS, LRMultiplier

@dataclass(frozen=True)
class SampleGrid:
    """One grid of validation samples: a row per image, a column per key of the images that
    `validation_step` returns ((B, 3, H, W) in [-1, 1]; heatmaps made into images likewise)."""

    name: str  # e.g. "A2B": logged as samples/A2B
    columns: tuple[str, ...]  # e.g. ("real_A", "fake_B", "rec_A", "idt_B")


class TranslationModel(pl.LightningModule):
    """What every trainable translation model exposes to the rest of cyclestyle."""

    family: ClassVar[str]  # the record's name of the family, e.g. "cyclegan"
    title: ClassVar[str]  # how people write it, e.g. "CycleGAN"
    translators: dict[str, TranslatorSpec]  # by direction: "a2b" and/or "b2a"

    def sample_grids(self) -> list[SampleGrid]:
        raise NotImplementedError

    def metric_pairs(self) -> dict[str, tuple[str, str]]:
        """FID/KID name (e.g. "A2B") -> (key of the real target-domain images, key of the fakes)."""
        raise NotImplementedError

    def translate_images(self, direction: str, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> translated; `direction` is known to be one of `translators`."""
        return getattr(self, self.translators[direction].module)(x)

    def forward(self, x: torch.Tensor, direction: str = "a2b") -> torch.Tensor:
        """Translate (B, 3, H, W) images in [-1, 1]; an unknown direction is an error."""
        return self.translate_images(self.check_direction(direction), x)

    def check_direction(self, direction: str) -> str:
        if direction not in self.translators:
            raise ValueError(f"a {self.title} model translates {describe_directions(self.translators)} only, "
                             f"not {direction!r}")
        return direction

    def card_lines(self) -> list[str]:
        """Extra model-card lines about the architecture (family-specific)."""
        return []

    # `model.compile`: true, false or auto (`cyclestyle.compiling`); a family sets it with `check_setting`.
    compile_networks: bool | str = False

    def setup(self, stage: str) -> None:
        if self.compile_networks is True:
            self._compile_networks()

    def on_train_start(self) -> None:
        """`auto` decides here, when the fit loop knows how many iterations remain. Asking Lightning
        earlier (in `setup`) builds the training DataLoader before a resumed run has restored the
        sampler's position, and the resume is no longer exact."""
        if self.compile_networks != "auto":
            return
        try:  # max_steps, or max_epochs x batches per epoch; inf for unbounded runs
            iterations = float(self.trainer.estimated_stepping_batches) - self.global_step
        except Exception:  # noqa: BLE001 -- e.g. a loader without a length: unknown, not compiled
            iterations = None
        chosen, why = resolve_compile("auto", iterations=iterations, device=self.trainer.strategy.root_device)
        rank_zero_info(why + (f"; compiled graphs are cached in {cache_dir()}" if chosen else ""))
        if chosen:
            self._compile_networks()

    def _compile_networks(self) -> None:
        """torch.compile every network in place (checkpoint keys do not change), caches kept on disk."""
        keep_compile_caches()
        for net in self.children():
            if any(True for _ in net.parameters()):
                net.compile()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Every checkpoint carries the record `translate`, `export` and fine-tuning read."""
        checkpoint[RECORD_KEY] = make_record(self.family, self.translators)


def builder_defaults(builder: Callable, **departures) -> dict:
    """A network group's defaults: the builder's keyword defaults, with the family's departures from
    them (e.g. CUT's anti-aliasing). Defaults live in the builder; a family states only how it differs."""
    parameters = inspect.signature(builder).parameters
    defaults = {name: p.default for name, p in parameters.items() if p.default is not p.empty}
    return {**defaults, **departures}


def settings(group: str, defaults: dict, given: dict | None, *, title: str) -> dict:
    """`defaults` updated with `given` (a config group such as model.generator); an unknown key is an
    error naming the group and the family."""
    given = dict(given or {})
    unknown = sorted(map(str, set(given) - set(defaults)))
    if unknown:
        raise ValueError(f"model.{group}: unknown setting(s) {', '.join(unknown)} for {title} "
                         f"(known: {', '.join(defaults)})")
    return {**defaults, **given}


def check_weights(**weights: float) -> None:
    """Loss weights are >= 0; a negative one is an error naming its setting."""
    for name, value in weights.items():
        if value < 0:
            raise ValueError(f"model.{name} must be >= 0, got {value}")


def frozen(net: nn.Module, *inputs: torch.Tensor):
    """net(*inputs) with gradients flowing to the inputs but not into net's weights: the
    generator's adversarial loss must not train the discriminator."""
    weights = {name: p.detach() for name, p in net.named_parameters()}
    return functional_call(net, weights, inputs)


class GANModel(TranslationModel):
    """Manual optimisation of a generator group against a discriminator group.

    One iteration (= one batch = one "step" everywhere a user sees steps): the family's
    `losses` builds the generator terms (through frozen discriminators) and the discriminator
    terms (on detached fakes); one backward of their sum reaches every parameter once (DDP needs
    no `find_unused_parameters`); the generator steps outside Lightning's step counter, then the
    discriminator through it, so `global_step` counts iterations, not optimizer steps.
    Losses are logged as device tensors (no host sync per iteration); image pools are kept in
    checkpoints; epoch schedules catch up with the epoch counter (also after a resume)."""

    default_optimizer: ClassVar[Callable[..., torch.optim.Optimizer]] = staticmethod(
        lambda params: torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999), fused=True))
    # Domains whose fakes the discriminators see through an image pool, and the pool's default size
    # (the reference CycleGAN keeps 50; U-GAT-IT and CUT keep none).
    pooled_domains: ClassVar[tuple[str, ...]] = ("A", "B")
    default_pool_size: ClassVar[int] = 0

    def __init__(
        self,
        *,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: dict | None = None,
        metrics: dict | None = None,
        feature_extractor: nn.Module | None = None,
        compile: bool | str = False,
        pool_size: int | None = None,
        seed: int = 0,
    ) -> None:
        """`pool_size` past fakes per pooled domain train the discriminators (None: the family's
        default), drawn from `seed`; `optimizer` is a partial optimizer used for both groups; `scheduler` keyword arguments
        of `LRMultiplier` plus `unit` (epoch | iteration); `metrics` = {num_images, kid_subset_size,
        download} turns on FID/KID (num_images 0: off), with InceptionV3 features unless
        `feature_extractor` ((B, 3, H, W) in [0, 1] -> (B, D)) is given; `compile` runs the
        networks through torch.compile in place (checkpoint keys do not change): true, false, or
        auto = when the run is long enough to repay it (`cyclestyle.compiling`)."""
        super().__init__()
        self.automatic_optimization = False
        self.optimizer = optimizer or self.default_optimizer
        scheduler = dict(scheduler or {})
        self.schedule_unit = scheduler.pop("unit", "epoch")
        if self.schedule_unit not in UNITS:
            raise ValueError(f"model.scheduler.unit={self.schedule_unit!r} is not known; choose one of {', '.join(UNITS)}")
        self.schedule = LRMultiplier(**scheduler)
        self.metric_settings = {"num_images": 0, "kid_subset_size": 50, "download": True, **(metrics or {})}
        self._features = [feature_extractor]  # in a list: not a submodule, never in checkpoints
        self._metrics: TranslationMetrics | None = None
        self.compile_networks = check_setting(compile)
        self.seed = int(seed)
        size = self.default_pool_size if pool_size is None else pool_size
        self.pools = {domain: ImagePool(size, seed=self.seed + i)  # fakes of `domain`, checkpointed by name
                      for i, domain in enumerate(self.pooled_domains)}
        self._per_sample: dict[str, bool] = {}

    # --- what a family provides -------------------------------------------------------------
    def generator_parameters(self) -> list[nn.Parameter]:
        raise NotImplementedError

    def discriminator_parameters(self) -> list[nn.Parameter]:
        raise NotImplementedError

    def losses(self, batch: dict[str, torch.Tensor], *, train: bool = True
               ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """(loss terms by name, images by name); discriminator terms are named "D_*" and only
        computed when `train` (they may draw from the image pools)."""
        raise NotImplementedError

    def after_generator_step(self) -> None:
        """Runs after every generator update (e.g. clipping U-GAT-IT's ρ)."""

    # --- plumbing ---------------------------------------------------------------------------
    def configure_optimizers(self):
        opt_g = self.optimizer(self.generator_parameters())
        opt_d = self.optimizer(self.discriminator_parameters())
        return [opt_g, opt_d], [LambdaLR(opt_g, self.schedule), LambdaLR(opt_d, self.schedule)]

    def twice(self, name: str, x: torch.Tensor, y: torch.Tensor | None):
        """(net(x), net(y)) for the network called `name`, as one call on the concatenated batch
        where that gives the same result (no batch norm, equal image sizes): one large convolution
        per layer instead of two small ones is ~8 % faster per iteration on CPU and fills a GPU
        better. Networks with several outputs get each output split."""
        net = getattr(self, name)
        if y is None:
            return net(x), None
        if name not in self._per_sample:  # batch norm mixes a batch
            self._per_sample[name] = not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
        if not (self._per_sample[name] and x.shape[1:] == y.shape[1:]):
            return net(x), net(y)
        out = net(torch.cat([x, y]))
        if isinstance(out, tuple):
            parts = [o.split([len(x), len(y)]) for o in out]
            return tuple(p[0] for p in parts), tuple(p[1] for p in parts)
        out_x, out_y = out.split([len(x), len(y)])
        return out_x, out_y

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        if self.schedule_unit == "epoch":
            self._follow_epoch_schedule()
        terms, _ = self.losses(batch)
        loss_d = sum(value for name, value in terms.items() if name.startswith("D_"))
        loss_g = sum(value for name, value in terms.items() if not name.startswith("D_"))
        opt_g.zero_grad(set_to_none=True)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss_g + loss_d)
        self._step_generators(opt_g.optimizer)
        self.after_generator_step()
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
        PyTorch's AMP recipe for several optimizers prescribes."""
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)

    def _follow_epoch_schedule(self) -> None:
        """Epoch schedules track the epoch counter (reference: one step per finished epoch).
        Checked every iteration, because Lightning skips on_train_epoch_start when it resumes.
        A run resumed at an epoch's end catches up before this process's first optimizer step,
        which PyTorch warns about; the rate is computed from the epoch count, so nothing is skipped."""
        for scheduler in self.lr_schedulers():
            while scheduler.last_epoch < self.current_epoch:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
                    scheduler.step()

    def on_validation_start(self) -> None:
        """Builds the FID/KID metrics at the first validation (Inception loads only for training)."""
        settings = self.metric_settings
        if self._metrics is None and settings["num_images"] > 0:
            features = self._features[0] or inception_features(download=settings["download"])
            if features is None:
                settings["num_images"] = 0  # warned once; train on without FID/KID
                return
            self._metrics = TranslationMetrics(features, directions=tuple(self.metric_pairs()),
                                               num_images=settings["num_images"],
                                               kid_subset_size=settings["kid_subset_size"])
        if self._metrics is not None:
            self._metrics.to(self.device)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        terms, images = self.losses(batch, train=False)
        images = {"real_A": batch["A"], "real_B": batch["B"], **images}
        self.log_dict({f"val/{name}": value for name, value in terms.items()},
                      sync_dist=True, batch_size=len(batch["A"]))
        if self._metrics is not None:
            for name, (real, fake) in self.metric_pairs().items():
                self._metrics.update(name, images[real], images[fake])
        return images

    def on_validation_epoch_end(self) -> None:
        if self._metrics is not None:  # every rank computes: torchmetrics gathers the statistics
            self.log_dict({f"val/{name}": value for name, value in self._metrics.compute().items()})

    # The image pools are training state: keep them in checkpoints for an exact resume.
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["image_pools"] = {name: pool.state_dict() for name, pool in self.pools.items()}
        super().on_save_checkpoint(checkpoint)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        for name, state in checkpoint.get("image_pools", {}).items():
            if name in self.pools:
                self.pools[name].load_state_dict(state, device=self.device)
