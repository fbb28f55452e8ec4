"""Optimisation-based style transfer (Gatys et al.) and its photorealistic variant (Luan et al.):
`cyclestyle.stylize(content, style)` returns the content photo repainted in the style image's
textures, by optimising its pixels against a frozen VGG-19. No training; any style; slow (seconds
at 256 px on a CPU, minutes at 512).

    import cyclestyle
    image = cyclestyle.stylize("photo.jpg", "starry_night.jpg", size=384, steps=300)  # PIL.Image
    image = cyclestyle.stylize(photo, [monet, cezanne], style_weights=[0.7, 0.3])     # (H, W, 3) uint8 arrays too
    image = cyclestyle.stylize("city.jpg", "dusk.jpg", photorealistic=True,           # deep photo style transfer
                               content_mask="city_seg.png", style_masks=["dusk_seg.png"])
    image = cyclestyle.stylize("photo.jpg", "wave.jpg", size=1024, scales=[256, 512], preserve_color="luminance")

Command line: `cyclestyle stylize CONTENT... --style STYLE --output DIR` (cyclestyle.commands.stylize).
"""
from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path
from typing import Callable, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from ..data.images import load_rgb
from ..networks.vgg import VGGFeatures
from .color import PRESERVE_COLOR, grey, matched_colors, matched_luminance, with_chroma
from .gatys import (CONTENT_LAYERS, MATTING_WEIGHT, OPTIMIZERS, STYLE_LAYERS, GatysObjective, gram, optimise,
                    region_grams, tv_loss)
from .masks import TOLERANCE, palette, regions
from .matting import MattingTerm, matting_energy, matting_laplacian

__all__ = ["stylize", "feature_extractor", "GatysObjective", "gram", "region_grams", "optimise", "tv_loss", "matting_laplacian",
           "matting_energy", "MattingTerm", "CONTENT_LAYERS", "STYLE_LAYERS", "OPTIMIZERS", "INITS", "PRESERVE_COLOR",
           "PRECISIONS", "COARSE_START", "COARSE_MIN_SIDE"]

ImageLike = Union[str, os.PathLike, np.ndarray]
INITS = ("content", "noise", "style")  # or the path of an image file
PRECISIONS = ("auto", "fp32", "bf16")  # fp32 is `cyclestyle.inference.devices`' "32"
COARSE_START, COARSE_MIN_SIDE = 10, 128  # steps of the half-size first pass; the smallest side it runs at


def stylize(content: ImageLike, style: ImageLike | Sequence[ImageLike], *, style_weights: Sequence[float] | None = None,
            content_layers: Sequence[str] = CONTENT_LAYERS, style_layers: Sequence[str] = STYLE_LAYERS,
            style_layer_weights: Sequence[float] | None = None, content_weight: float = 5.0,
            style_weight: float = 100.0, tv_weight: float = 0.0, pooling: str = "max", optimizer: str = "lbfgs",
            steps: int = 500, lr: float | None = None, init: str | ImageLike = "content", seed: int = 0,
            size: int | None = 512, scales: Sequence[int] | None = None, coarse_start: int = COARSE_START,
            style_scale: float = 1.0,
            preserve_color: str | None = None, content_mask: ImageLike | None = None,
            style_masks: Sequence[ImageLike] | None = None, photorealistic: bool = False,
            photo_weight: float = MATTING_WEIGHT, weights: str | os.PathLike | None = "auto",
            device: str | torch.device = "auto", precision: str = "auto", progress: bool | str = False,
            save_every: int = 0, on_snapshot: Callable[[Image.Image, int, int], None] | None = None) -> Image.Image:
    """The stylised content image, `size` pixels on its longer side (None: the content's own size).

    content/style: image paths or (H, W, 3) uint8 RGB arrays; `style` may be a list, blended by
    `style_weights` (default equal). Style images are scaled to `style_scale` times the result's
    longer side, so their textures keep their scale relative to it. `init`: "content", "noise"
    (uniform, from `seed`), "style" (the first style image stretched to the result's size) or an
    image path. `steps` per scale (the coarse start has its own).
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
    device: auto | cpu | cuda[:N]; precision: auto (bf16 where it is native) | fp32 | bf16.
    `progress`: a tqdm bar showing the losses (a string is its label). Every `save_every` steps
    `on_snapshot(image, side, step)` gets the current result (a PIL image `side` px long).
    """
    from ..inference.devices import bf16_trap, resolve_device, resolve_precision

    device = resolve_device(str(device))
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: choose one of {', '.join(PRECISIONS)}")
    precision = resolve_precision("32" if precision == "fp32" else precision, device)
    trap = bf16_trap(precision, device, setting="precision", better="fp32")
    if trap:
        warnings.warn(trap, stacklevel=2)
    if preserve_color not in (None, *PRESERVE_COLOR):
        raise ValueError(f"preserve_color={preserve_color!r}: choose {' or '.join(PRESERVE_COLOR)} (or None)")
    if save_every < 0:
        raise ValueError(f"save_every must be >= 0, got {save_every}")
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    content_rgb = _rgb(content, "content")
    style_rgbs = [_rgb(s, "style") for s in styles]
    masks = _masks(content_mask, style_masks, len(styles))
    sides = _sides(size, scales, content_rgb)
    if coarse_start < 0:
        raise ValueError(f"coarse_start must be >= 0, got {coarse_start}")
    passes = [(side, steps) for side in sides]  # (longer side, steps)
    from_image = not (isinstance(init, str) and init in INITS)  # an init image is refined at full size
    if coarse_start and steps and sides[0] >= 2 * COARSE_MIN_SIDE and not from_image:
        passes.insert(0, (sides[0] // 2, coarse_start))
    autocast = torch.bfloat16 if precision == "bf16" else None
    vgg = feature_extractor(tuple(dict.fromkeys((*content_layers, *style_layers))), pooling, weights, str(device),
                            autocast or torch.float32)
    torch.manual_seed(seed)  # nothing else draws today; keeps later random parts reproducible too
    bar = tqdm(total=sum(n for _, n in passes), desc=progress if isinstance(progress, str) else "stylize",
               disable=not progress, leave=False, unit="step")
    hidden = {name for name, used in (("tv", tv_weight), ("photo", photorealistic)) if not used}
    result = None
    try:
        for side, side_steps in passes:
            content_t = _tensor(content_rgb, side, device)  # (1, 3, H, W)
            style_side = max(16, round(style_scale * max(content_t.shape[-2:])))
            style_ts = [_tensor(s, style_side, device) for s in style_rgbs]
            target = content_t
            if preserve_color == "histogram":
                style_ts = [matched_colors(s, content_t) for s in style_ts]
            elif preserve_color == "luminance":
                target, style_ts = grey(content_t), [matched_luminance(s, content_t) for s in style_ts]
            regions_kw = {}
            if masks is not None:
                colours, content_mask_rgb, style_mask_rgbs = masks
                regions_kw = {"content_regions": regions(content_mask_rgb, colours, content_t.shape[-2:]).to(device),
                              "style_regions": [regions(m, colours, s.shape[-2:], tolerance=TOLERANCE).to(device)
                                                for m, s in zip(style_mask_rgbs, style_ts)]}
            matting = None
            if photorealistic:
                matting = MattingTerm(matting_laplacian(content_t[0].permute(1, 2, 0).cpu().numpy()), device)
            objective = GatysObjective(vgg, target, style_ts, content_layers=content_layers, style_layers=style_layers,
                                       style_layer_weights=style_layer_weights, style_weights=style_weights,
                                       content_weight=content_weight, style_weight=style_weight, tv_weight=tv_weight,
                                       matting=matting, matting_weight=photo_weight, autocast=autocast, **regions_kw)
            if result is None:
                start = _init(init, target, style_ts[0], seed)
            else:  # coarse to fine: the previous scale's result, upsampled
                start = F.interpolate(result, size=tuple(content_t.shape[-2:]), mode="bicubic", align_corners=False)
            if preserve_color == "luminance":
                start = grey(start)

            def finish(image: torch.Tensor, content_t=content_t) -> Image.Image:
                image = image.clamp(0, 1)
                return _pil(with_chroma(image, content_t) if preserve_color == "luminance" else image)

            def report(step: int, losses: dict[str, float], image: torch.Tensor, side=side, finish=finish) -> None:
                shown = [k for k in ("content", "style", "tv", "photo", "total") if k in losses and k not in hidden]
                bar.set_postfix({"px": side, **{k: f"{losses[k]:.3g}" for k in shown}}, refresh=False)
                bar.update(1)
                if save_every and on_snapshot is not None and (step + 1) % save_every == 0:
                    on_snapshot(finish(image), side, step + 1)

            result = optimise(objective, start, optimizer=optimizer, steps=side_steps, lr=lr, callback=report)
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
