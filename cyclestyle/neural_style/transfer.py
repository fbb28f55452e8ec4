"""`stylize(content, style, options)`: the whole Gatys/Luan run from images to a PIL image, with
every setting in one frozen `StylizeOptions` (keyword overrides for convenience).

    from cyclestyle.neural_style import StylizeOptions, stylize
    options = StylizeOptions(size=384, steps=300, preserve_color="luminance")
    image = stylize("photo.jpg", "starry_night.jpg", options)           # PIL.Image
    image = stylize(photo, [monet, cezanne], options, style_weights=[0.7, 0.3])  # arrays; one field changed

Passes: an optional coarse start at half size, each of `scales`, then `size`, each starting from
the previous result upsampled; per pass the targets are computed once (`gatys.GatysObjective`) and
the pixels optimised (`gatys.optimise`).
"""
from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from ..data.images import load_rgb
from ..networks.vgg import VGGFeatures
from ..options import with_changes
from .color import PRESERVE_COLOR, grey, matched_colors, matched_luminance, with_chroma
from .gatys import CONTENT_LAYERS, MATTING_WEIGHT, STYLE_LAYERS, GatysObjective, optimise
from .masks import TOLERANCE, palette, regions
from .matting import MattingTerm, matting_laplacian

ImageLike = Union[str, os.PathLike, np.ndarray]
INITS = ("content", "noise", "style")  # or the path of an image file
PRECISIONS = ("auto", "32", "bf16")  # spelt as `cyclestyle.devices` spells them (translate's --precision)
PRECISION_ALIASES = {"fp32": "32"}  # older spellings, accepted and mapped silently
COARSE_START, COARSE_MIN_SIDE = 10, 128  # steps of the half-size first pass; the smallest side it runs at


def canonical_precision(precision: str) -> str:
    """The precision's one spelling: "fp32" (stylize's old one) -> "32"; every other value as it is."""
    return PRECISION_ALIASES.get(precision, precision)


@dataclass(frozen=True)
class StylizeOptions:
    """Every setting of `stylize` (`cyclestyle stylize --help` says more on each); the defaults are
    the command's. Values are checked when the options are made (ValueError naming the field), and
    the layer, weight and scale sequences are kept as tuples."""

    # objective
    style_weights: Sequence[float] | None = None  # blend weights, one per style image (None: equal)
    content_layers: Sequence[str] = CONTENT_LAYERS  # VGG-19 layers whose features the result keeps
    style_layers: Sequence[str] = STYLE_LAYERS  # layers whose Grams the result matches
    style_layer_weights: Sequence[float] | None = None  # one per style layer (None: all 1)
    content_weight: float = 5.0  # weight of the content loss (a mean squared error of features)
    style_weight: float = 100.0  # weight of the style loss (Grams divided by C·H·W: size-independent)
    tv_weight: float = 0.0  # total-variation smoothing of the result
    pooling: str = "max"  # the VGG's pooling: max | avg (Gatys et al. prefer avg)
    # optimisation
    optimizer: str = "lbfgs"  # lbfgs (strong-Wolfe line search) | adam (pixels clamped every step)
    steps: int = 500  # optimisation steps per pass (the coarse start has its own)
    lr: float | None = None  # None: 1 for lbfgs, gatys.ADAM_LR (0.02) for adam
    init: str | ImageLike = "content"  # content | noise (uniform, from seed) | style (the first, stretched) | an image
    seed: int = 0  # torch's seed and the noise init's
    # resolution
    size: int | None = 512  # the result's longer side in pixels (None: the content's own)
    scales: Sequence[int] | None = None  # coarse to fine: rising longer sides below size, e.g. [256, 512] for 1024
    coarse_start: int = COARSE_START  # steps of a first pass at half the first side (0: none), see `stylize`
    style_scale: float = 1.0  # style images at this times the result's longer side (larger: finer strokes)
    # colour, masks and photorealism
    preserve_color: str | None = None  # None | luminance | histogram (see color.py)
    content_mask: ImageLike | None = None  # colour-coded segmentation of the content (see masks.py)
    style_masks: Sequence[ImageLike] | None = None  # one segmentation per style image, with content_mask
    photorealistic: bool = False  # add Luan et al.'s matting-Laplacian term of the content
    photo_weight: float = MATTING_WEIGHT  # that term's weight
    # runtime
    weights: str | os.PathLike | None = "auto"  # the VGG-19's (cyclestyle.networks.vgg; auto prefers Caffe's)
    device: str | torch.device = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto (bf16 where it is native) | 32 | bf16; "fp32" is read as 32
    progress: bool | str = False  # a tqdm bar showing the losses (a string is its label)
    save_every: int = 0  # call on_snapshot every this many steps (0: never)
    on_snapshot: Callable[[Image.Image, int, int], None] | None = None  # (current result, its side, step)

    def __post_init__(self) -> None:
        precision = canonical_precision(self.precision)
        if precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r}: choose one of {', '.join(PRECISIONS)}")
        object.__setattr__(self, "precision", precision)
        for name in ("style_weights", "content_layers", "style_layers", "style_layer_weights", "scales"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, (str, tuple)):
                object.__setattr__(self, name, tuple(value))
        if self.preserve_color not in (None, *PRESERVE_COLOR):
            raise ValueError(f"preserve_color={self.preserve_color!r}: choose {' or '.join(PRESERVE_COLOR)} (or None)")
        if self.save_every < 0:
            raise ValueError(f"save_every must be >= 0, got {self.save_every}")
        if self.coarse_start < 0:
            raise ValueError(f"coarse_start must be >= 0, got {self.coarse_start}")


def stylize(content: ImageLike, style: ImageLike | Sequence[ImageLike], options: StylizeOptions | None = None,
            **changes) -> Image.Image:
    """The stylised content image, `size` pixels on its longer side (None: the content's own size).

    content/style: image paths or (H, W, 3) uint8 RGB arrays; `style` may be a list, blended by
    `style_weights` (default equal). `options`: a `StylizeOptions` (None: the defaults); keyword
    `changes` replace its fields (`stylize(c, s, options, steps=100)`; TypeError naming unknown ones).
    Style images are scaled to `style_scale` times the result's longer side, so their textures keep
    their scale relative to it. `init`: "content", "noise" (uniform, from `seed`), "style" (the
    first style image stretched to the result's size) or an image path. `steps` per scale (the
    coarse start has its own).
    scales: coarse-to-fine longer sides below `size` (e.g. [256, 512] for size=1024): one pass per
    scale and a last one at `size`, each starting from the previous result upsampled.
    coarse_start: steps of a first pass at half the first side (when that side is >= 256 px,
    steps > 0 and `init` is not an image), upsampled as its start: the large structures settle
    four times cheaper, and the objective at full size falls 2-5x sooner (scripts/bench_stylize.py);
    0 = start at full size.
    preserve_color: None, "luminance" (transfer on luminance, the content's chroma kept) or
    "histogram" (styles recoloured to the content's colour statistics first); see `color.py`.
    content_mask / style_masks: colour-coded segmentations of the content and of each style
    (paths or arrays; see `masks.py`): each colour's region takes the style of the same colour.
    photorealistic: add Luan et al.'s matting-Laplacian term of the content (weight `photo_weight`).
    `weights` is the VGG-19 (see `cyclestyle.networks.vgg`; "auto" prefers the Caffe weights);
    device: auto | cpu | cuda[:N]; precision: auto (bf16 where it is native) | 32 | bf16 ("fp32",
    its old spelling, means 32).
    `progress`: a tqdm bar showing the losses (a string is its label). Every `save_every` steps
    `on_snapshot(image, side, step)` gets the current result (a PIL image `side` px long).
    """
    from ..devices import bf16_trap, resolve_device, resolve_precision

    o = with_changes(options, StylizeOptions, changes, call="stylize")
    device = resolve_device(str(o.device))
    precision = resolve_precision(o.precision, device)
    trap = bf16_trap(precision, device, setting="precision", better='precision="32"')
    if trap:
        warnings.warn(trap, stacklevel=2)
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    content_rgb = _rgb(content, "content")
    style_rgbs = [_rgb(s, "style") for s in styles]
    masks = _masks(o.content_mask, o.style_masks, len(styles))
    sides = _sides(o.size, o.scales, content_rgb)
    passes = [(side, o.steps) for side in sides]  # (longer side, steps)
    from_image = not (isinstance(o.init, str) and o.init in INITS)  # an init image is refined at full size
    if o.coarse_start and o.steps and sides[0] >= 2 * COARSE_MIN_SIDE and not from_image:
        passes.insert(0, (sides[0] // 2, o.coarse_start))
    autocast = torch.bfloat16 if precision == "bf16" else None
    vgg = feature_extractor(tuple(dict.fromkeys((*o.content_layers, *o.style_layers))), o.pooling, o.weights,
                            str(device), autocast or torch.float32)
    torch.manual_seed(o.seed)  # nothing else draws today; keeps later random parts reproducible too
    bar = tqdm(total=sum(n for _, n in passes), desc=o.progress if isinstance(o.progress, str) else "stylize",
               disable=not o.progress, leave=False, unit="step")
    hidden = {name for name, used in (("tv", o.tv_weight), ("photo", o.photorealistic)) if not used}
    result = None
    try:
        for side, side_steps in passes:
            content_t = _tensor(content_rgb, side, device)  # (1, 3, H, W)
            style_side = max(16, round(o.style_scale * max(content_t.shape[-2:])))
            style_ts = [_tensor(s, style_side, device) for s in style_rgbs]
            target = content_t
            if o.preserve_color == "histogram":
                style_ts = [matched_colors(s, content_t) for s in style_ts]
            elif o.preserve_color == "luminance":
                target, style_ts = grey(content_t), [matched_luminance(s, content_t) for s in style_ts]
            regions_kw = {}
            if masks is not None:
                colours, content_mask_rgb, style_mask_rgbs = masks
                regions_kw = {"content_regions": regions(content_mask_rgb, colours, content_t.shape[-2:]).to(device),
                              "style_regions": [regions(m, colours, s.shape[-2:], tolerance=TOLERANCE).to(device)
                                                for m, s in zip(style_mask_rgbs, style_ts)]}
            matting = None
            if o.photorealistic:
                matting = MattingTerm(matting_laplacian(content_t[0].permute(1, 2, 0).cpu().numpy()), device)
            objective = GatysObjective(vgg, target, style_ts, content_layers=o.content_layers,
                                       style_layers=o.style_layers, style_layer_weights=o.style_layer_weights,
                                       style_weights=o.style_weights, content_weight=o.content_weight,
                                       style_weight=o.style_weight, tv_weight=o.tv_weight, matting=matting,
                                       matting_weight=o.photo_weight, autocast=autocast, **regions_kw)
            if result is None:
                start = _init(o.init, target, style_ts[0], o.seed)
            else:  # coarse to fine: the previous scale's result, upsampled
                start = F.interpolate(result, size=tuple(content_t.shape[-2:]), mode="bicubic", align_corners=False)
            if o.preserve_color == "luminance":
                start = grey(start)

            def finish(image: torch.Tensor, content_t=content_t) -> Image.Image:
                image = image.clamp(0, 1)
                return _pil(with_chroma(image, content_t) if o.preserve_color == "luminance" else image)

            def report(step: int, losses: dict[str, float], image: torch.Tensor, side=side, finish=finish) -> None:
                shown = [k for k in ("content", "style", "tv", "photo", "total") if k in losses and k not in hidden]
                bar.set_postfix({"px": side, **{k: f"{losses[k]:.3g}" for k in shown}}, refresh=False)
                bar.update(1)
                if o.save_every and o.on_snapshot is not None and (step + 1) % o.save_every == 0:
                    o.on_snapshot(finish(image), side, step + 1)

            result = optimise(objective, start, optimizer=o.optimizer, steps=side_steps, lr=o.lr, callback=report)
            bar.refresh()  # each scale's final losses, however fast its steps went
    finally:
        bar.close()
    return finish(result)


def _pil(image: torch.Tensor) -> Image.Image:
    """(1, 3, H, W) in [0, 1] -> an RGB PIL image."""
    pixels = (image[0].permute(1, 2, 0).float().cpu().numpy() * 255.0 + 0.5).clip(0, 255).astype(np.uint8)  # (H, W, 3)
    return Image.fromarray(pixels)


def _sides(size: int | None, scales: Sequence[int] | None, content: np.ndarray) -> list[int]:
    """The longer side of every pass: the coarser `scales` (ascending, below the final size), then `size`."""
    final = max(content.shape[:2]) if size is None else int(size)
    passes = [int(s) for s in scales or ()]
    if passes and passes[-1] == final:
        passes = passes[:-1]
    if any(b <= a for a, b in zip(passes, passes[1:])) or any(s >= final for s in passes):
        raise ValueError(f"scales {list(scales)} must rise and stay below the final size {final}")
    sides = [*passes, final]
    if sides[0] < 16:
        raise ValueError(f"size must be >= 16 pixels (VGG pools 4 times), got {sides[0]}")
    return sides


def _masks(content_mask: ImageLike | None, style_masks: Sequence[ImageLike] | None,
           count: int) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]] | None:
    """(region colours, content mask, style masks), decoded once; None without masks."""
    if content_mask is None and not style_masks:
        return None
    if content_mask is None or not style_masks:
        raise ValueError("masks need both a content mask and one style mask per style image")
    if len(style_masks) != count:
        raise ValueError(f"{len(style_masks)} style masks for {count} style images: give one per style image")
    content_mask = _rgb(content_mask, "content mask")
    return palette(content_mask), content_mask, [_rgb(m, "style mask") for m in style_masks]


@functools.lru_cache(maxsize=2)
def feature_extractor(layers: tuple[str, ...], pooling: str = "max", weights: str | os.PathLike | None = "auto",
                      device: str = "cpu", dtype: torch.dtype = torch.float32) -> VGGFeatures:
    """The frozen VGG-19 `stylize` uses, one per (layers, pooling, weights, device, dtype), so a
    CLI run over a folder loads it once; truncated after the deepest layer, weights in
    channels-last order (about 10% faster convolutions on the CPU, and what GPUs prefer). With
    dtype bf16 (for bf16 autocast) the convolutions' weights are stored in bf16, so autocast does
    not cast them again on every evaluation; the preprocessing constants stay fp32."""
    extractor = VGGFeatures(layers=layers, pooling=pooling, weights=weights).to(device, memory_format=torch.channels_last)
    extractor.features.to(dtype)
    return extractor


def _rgb(image: ImageLike, role: str) -> np.ndarray:
    """(H, W, 3) uint8 from a path (decoded by the shared loader) or an array (checked)."""
    if isinstance(image, (str, os.PathLike)):
        try:
            return load_rgb(Path(image).expanduser())
        except (OSError, ValueError) as error:
            raise ValueError(f"cannot read the {role} image: {error}") from None
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(f"{role}: expected an (H, W, 3) uint8 RGB array, got {array.dtype} {array.shape}")
    return array


def _tensor(rgb: np.ndarray, size: int | None, device: torch.device, *, exact: tuple[int, int] | None = None) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, h, w) float in [0, 1], resized to `size` on the longer side
    (or to exactly `exact` = (h, w)), with Lanczos filtering."""
    image = Image.fromarray(rgb)
    if exact is not None:
        image = image.resize((exact[1], exact[0]), Image.LANCZOS)
    elif size is not None:
        if size < 16:
            raise ValueError(f"size must be >= 16 pixels (VGG pools 4 times), got {size}")
        scale = size / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.LANCZOS)
    array = np.asarray(image, dtype=np.float32) / 255.0  # (h, w, 3)
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).to(device)


def _init(init: str | ImageLike, content: torch.Tensor, style: torch.Tensor, seed: int) -> torch.Tensor:
    """The starting image, (1, 3, H, W) like `content`."""
    if isinstance(init, str) and init == "content":
        return content.clone()
    if isinstance(init, str) and init == "noise":
        generator = torch.Generator().manual_seed(seed)
        return torch.rand(content.shape, generator=generator).to(content.device)
    hw = tuple(content.shape[-2:])
    if isinstance(init, str) and init == "style":
        return torch.nn.functional.interpolate(style, size=hw, mode="bilinear", align_corners=False, antialias=True)
    if isinstance(init, str) and not Path(init).expanduser().is_file():
        raise ValueError(f"init={init!r}: choose {', '.join(INITS)} or an image file")
    return _tensor(_rgb(init, "init"), None, content.device, exact=hw)
