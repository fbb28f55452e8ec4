"""CUT and FastCUT (Park et al., ECCV 2020, arXiv:2007.15651) on the GAN base: one generator A -> B,
one PatchGAN discriminator, and PatchNCE between input and output patches instead of a cycle.

    cyclestyle train model=cut                                     # the demo (recipe/demo_cut.yaml)
    cyclestyle train model=fastcut                                 # FastCUT on the demo
    cyclestyle train model=cut data=folders data.a=A data.b=B      # the official networks at 256 px

Losses as in the paper and the official code (taesungp/contrastive-unpaired-translation,
`models/cut_model.py`); one iteration on real_A, real_B:
  G translates real_A and, with nce_idt, real_B (the identity pass) in one call; with
  flip_equivariance both are flipped left-right first on a coin drawn from (seed, iteration).
    G_GAN   lsgan(D(fake_B), 1), D frozen                                              x lambda_gan
    NCE     PatchNCE(heads(enc(fake_B)), heads(enc(real_A))), mean over nce_layers      x lambda_nce
    NCE_Y   PatchNCE(heads(enc(idt_B)), heads(enc(real_B))) (CUT only)                  x lambda_nce
            (with nce_idt NCE and NCE_Y are each halved: the official (NCE + NCE_Y) / 2)
    D_GAN   (lsgan(D(real_B), 1) + lsgan(D(fake_B, detached), 0)) / 2
  enc = the generator's own layers `nce_layers`; per layer `num_patches` locations, drawn from
  (seed, iteration) and shared by the output's and the input's features; the input side carries no
  gradient (the official detaches it) and, unflipped, is read off the translation pass, which runs
  through those layers on the same input anyway (the official runs the encoder on it once more).
  Heads (`f`, official netF) step with the generator (one Adam over both: the same updates as the
  official's two Adams with equal settings).
CUT:     lambda_nce 1, nce_idt, 200 + 200 epochs.   FastCUT: lambda_nce 10, no identity pass, flip
equivariance, 150 + 50 epochs. FastCUT is CUT with those defaults (the official CUTModel with
--CUT_mode FastCUT) under its own family name "fastcut": a checkpoint names the `model=` preset that
resumes it, and resuming a FastCUT run as CUT (same weights, other losses) is refused, not silent.

The official steps D first and computes G's adversarial term through the updated D; here, as in
the other families, G's gradient comes from D before its step (one backward for all terms).
Translation is one way (A -> B): the record holds the "a2b" translator only.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from ..losses import AdversarialLoss
from ..networks import build_discriminator, init_weights
from ..networks.cut import PatchHeads, check_nce_layers, draw_patch_ids, feature_channels, gather_patches, run_layers
from ..networks.resnet import ResnetGenerator
from ..patchnce import patch_nce
from ..record import TranslatorSpec
from .base import GANModel, SampleGrid, builder_defaults, check_weights, frozen, settings

GENERATOR_BUILDER = "cyclestyle.networks:ResnetGenerator"
# The official CUT generator departs from ResnetGenerator's defaults (the reference CycleGAN layout) in
# its anti-aliased sampling and xavier initialisation; init_* are init_weights' keywords.
GENERATOR_DEFAULTS = builder_defaults(ResnetGenerator, antialias=True, antialias_up=True, init_type="xavier",
                                      init_gain=0.02)
OFFICIAL_NETWORKS = {"G": "g", "F": "f", "D": "d"}  # official latest_net_{G,F,D}.pth -> our attributes
_STREAMS = {"flip": 1, "patches": 2, "val_patches": 3}  # independent draws per (seed, iteration)


def translator_specs(generator: dict) -> dict[str, TranslatorSpec]:
    """The record's translators for a CUT generator of these settings (also for imported official
    files): A -> B only, our ResnetGenerator with the architecture keywords."""
    architecture = {k: v for k, v in generator.items() if k not in ("init_type", "init_gain")}
    return {"a2b": TranslatorSpec(module="g", builder=GENERATOR_BUILDER, kwargs=architecture,
                                  size_multiple=ResnetGenerator.size_multiple)}


class CUT(GANModel):
    family, title = "cut", "CUT"
    pooled_domains = ("B",)  # fakes of domain B, for D; the official keeps none (pool_size 0)

    def __init__(self, *, generator: dict | None = None, discriminator: dict | None = None, gan_mode: str = "lsgan",
                 lambda_gan: float = 1.0, lambda_nce: float = 1.0, nce_idt: bool = True,
                 nce_layers=(0, 4, 8, 12, 16), nce_temperature: float = 0.07, num_patches: int = 256,
                 nce_units: int = 256, nce_includes_all_negatives_from_minibatch: bool = False,
                 flip_equivariance: bool = False, **common) -> None:
        """`generator`: ResnetGenerator keywords (ngf, n_blocks, norm, dropout, antialias, antialias_up,
        in/out_channels) plus init_type/init_gain; `discriminator`: build_discriminator keywords;
        `nce_layers` indices into the generator's layer list (a list or "0,4,8"); `common` the
        GANModel settings (optimizer, scheduler, metrics, feature_extractor, compile, pool_size, seed)."""
        super().__init__(**common)
        check_weights(lambda_gan=lambda_gan, lambda_nce=lambda_nce)
        if nce_temperature <= 0 or num_patches < 1 or nce_units < 1:
            raise ValueError(f"model.nce_temperature must be > 0 and model.num_patches, model.nce_units >= 1; got "
                             f"{nce_temperature}, {num_patches}, {nce_units}")
        if isinstance(nce_layers, str):
            nce_layers = [int(i) for i in nce_layers.split(",") if i.strip()]
        self.save_hyperparameters(ignore=["optimizer", "feature_extractor"])
        generator = dict(generator or {})
        if "antialias" in generator:  # the upsampling follows unless set (as configs/model/cut.yaml)
            generator.setdefault("antialias_up", generator["antialias"])
        g = settings("generator", GENERATOR_DEFAULTS, generator, title=self.title)
        init = {"init_type": g["init_type"], "init_gain": g["init_gain"]}
        self.translators = translator_specs(g)
        self.g = init_weights(ResnetGenerator(**self.translators["a2b"].kwargs), **init)  # official netG
        d = {"in_channels": g["out_channels"], "antialias": g["antialias"], "init_type": g["init_type"],
             "init_gain": g["init_gain"], **dict(discriminator or {})}  # official: one --no_antialias for G and D
        self.d = build_discriminator(**d)  # official netD
        self.discriminator_settings = d
        self.nce_layers = check_nce_layers(self.g, nce_layers)
        # official netF, built now (the official builds it at the first forward): DDP and
        # checkpoints see every parameter from the start. Without the NCE term there is nothing to train.
        self.f = (init_weights(PatchHeads(feature_channels(self.g, self.nce_layers), units=nce_units), **init)
                  if lambda_nce > 0 else None)
        self.adversarial = AdversarialLoss(gan_mode)
        self.lambda_gan, self.lambda_nce, self.nce_idt = lambda_gan, lambda_nce, bool(nce_idt)
        self.nce_temperature, self.num_patches = nce_temperature, int(num_patches)
        self.negatives_from_batch = bool(nce_includes_all_negatives_from_minibatch)
        self.flip_equivariance = bool(flip_equivariance)
        self._batchable: bool | None = None  # the generator may run on concatenated batches (no batch norm)

    def generator_parameters(self):
        return [*self.g.parameters(), *(self.f.parameters() if self.f is not None else ())]

    def discriminator_parameters(self):
        return list(self.d.parameters())

    def sample_grids(self) -> list[SampleGrid]:
        return [SampleGrid("A2B", ("real_A", "fake_B", "idt_B") if self.nce_idt else ("real_A", "fake_B"))]

    def metric_pairs(self) -> dict[str, tuple[str, str]]:
        return {"A2B": ("real_B", "fake_B")}

    def card_lines(self) -> list[str]:
        g, d = self.translators["a2b"].kwargs, self.discriminator_settings
        blur = {(True, True): "anti-aliased down- and upsampling", (True, False): "anti-aliased downsampling",
                (False, True): "anti-aliased upsampling", (False, False): "strided convolutions"}
        nce = "no PatchNCE" if self.f is None else (
            f"PatchNCE on generator layers {','.join(map(str, self.nce_layers))}, {self.num_patches} patches, "
            f"temperature {self.nce_temperature}, lambda_NCE {self.lambda_nce}")
        return [f"{self.title}, A→B only: a ResNet generator of {g['ngf']} channels and {g['n_blocks']} blocks with "
                f"{blur[g['antialias'], g['antialias_up']]}; a {d.get('name', 'basic')} discriminator of "
                f"{d.get('ndf', 64)} channels{' (anti-aliased)' if d.get('antialias') else ''}; GAN loss: "
                f"{self.adversarial.mode}.",
                f"{nce}; identity PatchNCE {'on' if self.nce_idt else 'off'}; flip equivariance "
                f"{'on' if self.flip_equivariance else 'off'}."]

    def step_generator(self, stream: str) -> torch.Generator:
        """A CPU generator seeded from (seed, iteration, stream): the flip coin and the patch
        locations of an iteration are the same whenever it is run, so a resumed run is exact."""
        words = np.random.SeedSequence([self.seed % 2**63, int(self.global_step), _STREAMS[stream]]).generate_state(2)
        return torch.Generator().manual_seed(int(words[0]) << 32 | int(words[1]))

    def losses(self, batch: dict[str, torch.Tensor], *, train: bool = True):
        """(loss terms by name, images by name) for one batch; all images (B, 3, H, W)."""
        real_a, real_b = batch["A"], batch["B"]
        sources = [real_a, *([real_b] if self.nce_idt else [])]  # translated, and identity-mapped
        flipped = train and self.flip_equivariance and bool(torch.rand((), generator=self.step_generator("flip")) < 0.5)
        # Unflipped, the translation pass runs through the PatchNCE layers on the sources: their
        # features (the official's second encoder pass, detached) come with it.
        reuse = self.f is not None and not flipped
        outputs, source_feats = self._run([x.flip(3) for x in sources] if flipped else sources,
                                          self.nce_layers if reuse else [], encode_only=False)
        fake_b = outputs[0]
        terms = {"G_GAN": self.adversarial.generator(frozen(self.d, fake_b)) * self.lambda_gan}
        images = {"fake_B": fake_b, **({"idt_B": outputs[1]} if self.nce_idt else {})}
        if self.f is not None:
            if reuse:
                source_feats = [[f.detach() for f in feats] for feats in source_feats]
            else:
                with torch.no_grad():
                    source_feats = self._run(sources, self.nce_layers, encode_only=True)[1]
            rng = self.step_generator("patches" if train else "val_patches")
            weight = self.lambda_nce / len(sources)  # CUT: the official (NCE + NCE_Y) / 2
            nce = self._patch_nce(outputs, source_feats, flipped, rng)
            terms.update({name: weight * loss for name, loss in zip(("NCE", "NCE_Y"), nce)})
        if not train:
            return terms, images
        pooled = self.pools["B"].query(fake_b.detach())
        terms["D_GAN"] = self.adversarial.discriminator(*self.twice("d", real_b, pooled))
        return terms, images

    def _patch_nce(self, outputs: list[torch.Tensor], source_feats: list[list[torch.Tensor]], flipped: bool,
                   rng: torch.Generator) -> list[torch.Tensor]:
        """PatchNCE of each output against its source's (detached) features, averaged over the
        layers. The outputs' features carry gradients to G and the heads; the sources' none."""
        _, queries = self._run(outputs, self.nce_layers, encode_only=True)  # per output, per layer (B, C, H, W)
        if flipped:  # the outputs came from flipped sources: flip their features back into place
            queries = [[f.flip(3) for f in feats] for feats in queries]
        ids = [draw_patch_ids(feats, self.num_patches, rng) for feats in source_feats]  # per pair, per layer (P,)
        q = self._project([[gather_patches(f, i) for f, i in zip(feats, pair)] for feats, pair in zip(queries, ids)])
        with torch.no_grad():
            k = self._project([[gather_patches(f, i) for f, i in zip(feats, pair)]
                               for feats, pair in zip(source_feats, ids)])
        losses = []
        for out, q_pair, k_pair in zip(outputs, q, k):
            per_layer = [patch_nce(ql, kl, images=len(out), temperature=self.nce_temperature,
                                   negatives_from_batch=self.negatives_from_batch) for ql, kl in zip(q_pair, k_pair)]
            losses.append(torch.stack(per_layer).mean())
        return losses

    def _run(self, inputs: list[torch.Tensor], layers: list[int], *, encode_only: bool
             ) -> tuple[list[torch.Tensor] | None, list[list[torch.Tensor]]]:
        """`run_layers` of the generator on each input: (outputs, per input its features at `layers`),
        in one call on the concatenated batch where that gives the same result (see GANModel.twice)."""
        if self._batchable is None:  # batch norm mixes a batch
            self._batchable = not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.g.modules())
        if len(inputs) > 1 and self._batchable and all(x.shape[1:] == inputs[0].shape[1:] for x in inputs):
            sizes = [len(x) for x in inputs]
            out, feats = run_layers(self.g, torch.cat(inputs), layers, encode_only=encode_only)
            split = [f.split(sizes) for f in feats]
            return (None if out is None else list(out.split(sizes)),
                    [[f[j] for f in split] for j in range(len(inputs))])
        runs = [run_layers(self.g, x, layers, encode_only=encode_only) for x in inputs]
        return None if encode_only else [out for out, _ in runs], [feats for _, feats in runs]

    def _project(self, samples: list[list[torch.Tensor]]) -> list[list[torch.Tensor]]:
        """Per pair, per layer (N, C) samples -> unit vectors; one head call per layer for all pairs."""
        layers = range(len(self.nce_layers))
        joined = self.f([torch.cat([s[layer] for s in samples]) for layer in layers])
        parts = [z.split([len(s[layer]) for s in samples]) for layer, z in zip(layers, joined)]
        return [[parts[layer][j] for layer in layers] for j in range(len(samples))]


class FastCUT(CUT):
    """CUT with the official FastCUT defaults: a stronger PatchNCE, no identity pass, flip equivariance."""

    family, title = "fastcut", "FastCUT"

    def __init__(self, *, lambda_nce: float = 10.0, nce_idt: bool = False, flip_equivariance: bool = True,
                 **settings) -> None:
        super().__init__(lambda_nce=lambda_nce, nce_idt=nce_idt, flip_equivariance=flip_equivariance, **settings)
