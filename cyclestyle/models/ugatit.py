"""U-GAT-IT (Kim et al., ICLR 2020, arXiv:1907.10830) on the GAN base: two attention generators,
a global and a local discriminator per domain.

    cyclestyle train model=ugatit                                  # the demo (recipe/demo_ugatit.yaml)
    cyclestyle train model=ugatit data=folders data.a=A data.b=B   # the paper's networks at 256 px
    cyclestyle train model=ugatit model.generator.light=true ...   # light: pooled MLP input, any size

Losses as in the paper and the official code (znxlwm/UGATIT-pytorch, `UGATIT.py`); LSGAN throughout:
  generator g_a (A -> B; g_b alike):
    G_A_adv      MSE(d_gb(fake_B), 1) + MSE(d_lb(fake_B), 1)              patch logits   x lambda_adv
    G_A_adv_cam  the same on both discriminators' CAM logits                             x lambda_adv
    G_A_cam      BCE(cam(g_a(A)), 1) + BCE(cam(g_a(B)), 0): its auxiliary classifier   x lambda_cam
    cycle_A      L1(g_b(g_a(A)), A)                                                      x lambda_cycle
    idt_A        L1(g_a(B), B)                                                           x lambda_identity
  discriminators (on detached fakes), patch and CAM logits, not halved (unlike CycleGAN's):
    D_GA, D_LA   MSE(d(A), 1) + MSE(d(fake_A), 0) + the same on CAM logits              x lambda_adv
    D_GB, D_LB   likewise on domain B
The generator's adversarial terms see the discriminators through `frozen` (no gradient into them);
one backward reaches every weight once, and GANModel steps G, then D. The official instead steps D
first (on fakes it makes for that step) and then recomputes the fakes for G's terms through the
updated D. Here G's gradient comes from D before its step, and each iteration runs six generator
passes instead of eight.

Naming follows the official code: d_ga / d_la judge domain-A images (g_b's fakes), d_gb / d_lb
domain B (g_a's); so D_GA's fakes are fake_A. Term names follow CycleGAN's: idt_A is g_a's identity.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..networks.ugatit import GLOBAL_LAYERS, LOCAL_LAYERS, UgatitDiscriminator, UgatitGenerator, clip_rho
from ..pixels import heatmap_image
from ..record import TranslatorSpec
from .base import GANModel, SampleGrid, builder_defaults, check_weights, frozen, settings

TRANSLATOR_BUILDER = "cyclestyle.networks.ugatit:UgatitTranslator"
GENERATOR_DEFAULTS = builder_defaults(UgatitGenerator)
DISCRIMINATOR_DEFAULTS = {"ndf": 64, "global_layers": GLOBAL_LAYERS, "local_layers": LOCAL_LAYERS}


def lsgan(logits: torch.Tensor, target: float) -> torch.Tensor:
    """MSE against a constant label, in fp32 (the official nn.MSELoss with ones_like/zeros_like)."""
    return (logits.float() - target).square().mean()


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    """Binary cross-entropy with logits against a constant label, in fp32."""
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def translator_specs(generator: dict) -> dict[str, TranslatorSpec]:
    """How to rebuild g_a and g_b for translation, from the A->B generator's settings (the model
    and `import-reference --ugatit` share it, so imported checkpoints fine-tune)."""
    g = {**GENERATOR_DEFAULTS, **generator}
    a_to_b = {k: v for k, v in g.items() if not (k == "img_size" and g["light"])}  # light: any size
    b_to_a = {**a_to_b, "in_channels": g["out_channels"], "out_channels": g["in_channels"]}
    fixed = None if g["light"] else g["img_size"]
    return {direction: TranslatorSpec(module=module, builder=TRANSLATOR_BUILDER, kwargs=kwargs,
                                      size_multiple=UgatitGenerator.size_multiple, fixed_size=fixed)
            for direction, module, kwargs in (("a2b", "g_a", a_to_b), ("b2a", "g_b", b_to_a))}


class UGATIT(GANModel):
    family, title = "ugatit", "U-GAT-IT"

    def __init__(self, *, generator: dict | None = None, discriminator: dict | None = None, lambda_adv: float = 1.0,
                 lambda_cycle: float = 10.0, lambda_identity: float = 10.0, lambda_cam: float = 1000.0,
                 **common) -> None:
        """`generator`: UgatitGenerator keyword arguments (ngf, n_blocks, img_size = the training crop,
        light, in/out_channels); `discriminator`: ndf and the global/local depths (official 7 and 5);
        `common` the GANModel settings (optimizer, scheduler, metrics, feature_extractor, compile,
        pool_size, seed): pool_size > 0 trains the discriminators on a history of fakes (the
        official keeps none), those of A for d_ga and d_la, of B for d_gb and d_lb."""
        super().__init__(**common)
        check_weights(lambda_adv=lambda_adv, lambda_cycle=lambda_cycle, lambda_identity=lambda_identity,
                      lambda_cam=lambda_cam)
        self.save_hyperparameters(ignore=["optimizer", "feature_extractor"])
        g = settings("generator", GENERATOR_DEFAULTS, generator, title=self.title)
        d = self.discriminator_settings = settings("discriminator", DISCRIMINATOR_DEFAULTS, discriminator,
                                                   title=self.title)
        self.translators = translator_specs(g)
        a_to_b, b_to_a = self.translators["a2b"].kwargs, self.translators["b2a"].kwargs
        self.g_a, self.g_b = UgatitGenerator(**a_to_b), UgatitGenerator(**b_to_a)  # official genA2B, genB2A
        channels = {"A": g["in_channels"], "B": g["out_channels"]}
        for domain in "AB":  # official disGA, disLA judge domain A; disGB, disLB domain B
            for kind in "GL":
                layers = d["global_layers" if kind == "G" else "local_layers"]
                net = UgatitDiscriminator(in_channels=channels[domain], ndf=d["ndf"], n_layers=layers)
                _check_crop(net, kind, layers, g["img_size"])
                setattr(self, f"d_{kind.lower()}{domain.lower()}", net)
        self.lambda_adv, self.lambda_cycle = lambda_adv, lambda_cycle
        self.lambda_identity, self.lambda_cam = lambda_identity, lambda_cam

    def generator_parameters(self):
        return [*self.g_a.parameters(), *self.g_b.parameters()]

    def discriminator_parameters(self):
        return [p for name in ("d_ga", "d_la", "d_gb", "d_lb") for p in getattr(self, name).parameters()]

    def after_generator_step(self) -> None:
        clip_rho(self.g_a)  # the official RhoClipper(0, 1) after every generator step
        clip_rho(self.g_b)

    def translate_images(self, direction: str, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, self.translators[direction].module)(x)[0]  # the image, not CAM logits/heatmap

    def sample_grids(self) -> list[SampleGrid]:
        """Per direction: the photo, the generator's attention, its translation, the global and local
        discriminators' attention on it, the reconstruction and the other generator's identity map."""
        return [SampleGrid("A2B", ("real_A", "heat_G_fake_B", "fake_B", "heat_DG_fake_B", "heat_DL_fake_B",
                                   "rec_A", "idt_B")),
                SampleGrid("B2A", ("real_B", "heat_G_fake_A", "fake_A", "heat_DG_fake_A", "heat_DL_fake_A",
                                   "rec_B", "idt_A"))]

    def metric_pairs(self) -> dict[str, tuple[str, str]]:
        return {"A2B": ("real_B", "fake_B"), "B2A": ("real_A", "fake_A")}

    def card_lines(self) -> list[str]:
        g, d = self.translators["a2b"].kwargs, self.discriminator_settings
        mode = "light (any input size)" if g["light"] else f"full ({self.translators['a2b'].fixed_size} px inputs only)"
        blocks = f"{g['n_blocks']} residual block{'' if g['n_blocks'] == 1 else 's'}"
        return [f"U-GAT-IT {mode}: generators of {g['ngf']} channels and {blocks}; "
                f"discriminators of {d['ndf']} channels, global {d['global_layers']} / local {d['local_layers']} layers."]

    def losses(self, batch: dict[str, torch.Tensor], *, train: bool = True):
        """(loss terms by name, images by name) for one batch; images (B, 3, H, W), heatmaps as images."""
        real_a, real_b = batch["A"], batch["B"]
        # g_a translates A and maps B to itself (identity): one call on both when they batch.
        (fake_b, cam_ab, heat_ab), (idt_a, cam_bb, _) = self.twice("g_a", real_a, real_b)
        (fake_a, cam_ba, heat_ba), (idt_b, cam_aa, _) = self.twice("g_b", real_b, real_a)
        rec_a, rec_b = self.g_b(fake_b)[0], self.g_a(fake_a)[0]
        seen = {name: frozen(getattr(self, name), fake) for name, fake in
                (("d_gb", fake_b), ("d_lb", fake_b), ("d_ga", fake_a), ("d_la", fake_a))}  # (logits, cam, heatmap)
        w = self.lambda_adv
        terms = {
            "G_A_adv": w * (lsgan(seen["d_gb"][0], 1) + lsgan(seen["d_lb"][0], 1)),
            "G_A_adv_cam": w * (lsgan(seen["d_gb"][1], 1) + lsgan(seen["d_lb"][1], 1)),
            "G_A_cam": self.lambda_cam * (bce(cam_ab, 1) + bce(cam_bb, 0)),
            "cycle_A": self.lambda_cycle * F.l1_loss(rec_a.float(), real_a.float()),
            "idt_A": self.lambda_identity * F.l1_loss(idt_a.float(), real_b.float()),
            "G_B_adv": w * (lsgan(seen["d_ga"][0], 1) + lsgan(seen["d_la"][0], 1)),
            "G_B_adv_cam": w * (lsgan(seen["d_ga"][1], 1) + lsgan(seen["d_la"][1], 1)),
            "G_B_cam": self.lambda_cam * (bce(cam_ba, 1) + bce(cam_aa, 0)),
            "cycle_B": self.lambda_cycle * F.l1_loss(rec_b.float(), real_b.float()),
            "idt_B": self.lambda_identity * F.l1_loss(idt_b.float(), real_a.float()),
        }
        images = {"fake_B": fake_b, "fake_A": fake_a, "rec_A": rec_a, "rec_B": rec_b, "idt_A": idt_a, "idt_B": idt_b}
        if not train:  # attention maps as images, for the sample grids
            size = real_a.shape[-2:]
            images.update(heat_G_fake_B=heatmap_image(heat_ab, size), heat_G_fake_A=heatmap_image(heat_ba, size))
            for name, fake in (("d_gb", "fake_B"), ("d_lb", "fake_B"), ("d_ga", "fake_A"), ("d_la", "fake_A")):
                images[f"heat_D{name[2].upper()}_{fake}"] = heatmap_image(seen[name][2], size)
            return terms, images
        pooled = {"A": self.pools["A"].query(fake_a.detach()), "B": self.pools["B"].query(fake_b.detach())}
        reals = {"A": real_a, "B": real_b}
        for name in ("d_ga", "d_la", "d_gb", "d_lb"):
            domain = name[3].upper()
            (real_logit, real_cam, _), (fake_logit, fake_cam, _) = self.twice(name, reals[domain], pooled[domain])
            terms[f"D_{name[2:].upper()}"] = w * (lsgan(real_logit, 1) + lsgan(fake_logit, 0)
                                                  + lsgan(real_cam, 1) + lsgan(fake_cam, 0))
        return terms, images


def _check_crop(net: UgatitDiscriminator, kind: str, layers: int, img_size: int) -> None:
    """A crop too small for a discriminator fails deep inside a padding layer: say it up front."""
    if img_size < net.min_size:
        setting = "global_layers" if kind == "G" else "local_layers"
        raise ValueError(f"model.discriminator.{setting}={layers} needs crops of at least {net.min_size} px, but "
                         f"model.generator.img_size (the training crop, data.crop_size) is {img_size}: "
                         f"lower {setting} (each layer fewer halves the minimum) or train on larger crops")
