"""Optimisation-based style transfer (Gatys et al.): `cyclestyle.stylize(content, style)` returns
the content photo repainted in the style image's textures, by optimising its pixels against a
frozen VGG-19. No training; any style; slow (seconds at 256 px on a CPU, minutes at 512).

    from cyclestyle.stylize import stylize
    image = stylize("photo.jpg", "starry_night.jpg", size=384, steps=300)  # PIL.Image
    image = stylize(photo, [monet, cezanne], style_weights=[0.7, 0.3])     # (H, W, 3) uint8 arrays too

Command line: `cyclestyle stylize CONTENT... --style STYLE --output DIR` (cyclestyle.commands.stylize).
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..data.images import load_rgb
from ..networks.vgg import VGGFeatures
from .gatys import CONTENT_LAYERS, OPTIMIZERS, STYLE_LAYERS, GatysObjective, gram, optimise, tv_loss

__all__ = ["stylize", "GatysObjective", "gram", "optimise", "tv_loss", "CONTENT_LAYERS", "STYLE_LAYERS",
           "OPTIMIZERS", "INITS"]

ImageLike = Union[str, os.PathLike, np.ndarray]
INITS = ("content", "noise", "style")  # or the path of an image file


def stylize(content: ImageLike, style: ImageLike | Sequence[ImageLike], *, style_weights: Sequence[float] | None = None,
            content_layers: Sequence[str] = CONTENT_LAYERS, style_layers: Sequence[str] = STYLE_LAYERS,
            style_layer_weights: Sequence[float] | None = None, content_weight: float = 5.0,
            style_weight: float = 100.0, tv_weight: float = 0.0, pooling: str = "max", optimizer: str = "adam",
            steps: int = 500, lr: float | None = None, init: str | ImageLike = "content", seed: int = 0,
            size: int | None = 512, weights: str | os.PathLike | None = "auto", device: str | torch.device = "cpu",
            progress: bool | str = False) -> Image.Image:
    """The stylised content image, `size` pixels on its longer side (None: the content's own size).

    content/style: image paths or (H, W, 3) uint8 RGB arrays; `style` may be a list, blended by
    `style_weights` (default equal). Style images are scaled to the same longer side as the
    result, so their textures keep their scale relative to it. `init`: "content", "noise" (uniform,
    from `seed`), "style" (the first style image stretched to the result's size) or an image path.
    `weights` is the VGG-19 (see `cyclestyle.networks.vgg`; "auto" prefers the Caffe weights).
    `progress`: a tqdm bar showing the losses (a string is its label).
    """
    device = torch.device(device)
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    content_t = _tensor(_rgb(content, "content"), size, device)  # (1, 3, H, W)
    style_ts = [_tensor(_rgb(s, "style"), size or max(content_t.shape[-2:]), device) for s in styles]
    vgg = _vgg(tuple(dict.fromkeys((*content_layers, *style_layers))), pooling, weights, str(device))
    objective = GatysObjective(vgg, content_t, style_ts, content_layers=content_layers, style_layers=style_layers,
                               style_layer_weights=style_layer_weights, style_weights=style_weights,
                               content_weight=content_weight, style_weight=style_weight, tv_weight=tv_weight)
    start = _init(init, content_t, style_ts[0], seed)
    torch.manual_seed(seed)  # nothing else draws today; keeps later random parts reproducible too
    bar = tqdm(total=steps, desc=progress if isinstance(progress, str) else "stylize", disable=not progress,
               leave=False, unit="step")

    def report(step: int, losses: dict[str, float]) -> None:
        bar.update(1)
        bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items()}, refresh=False)

    try:
        result = optimise(objective, start, optimizer=optimizer, steps=steps, lr=lr, callback=report)
    finally:
        bar.close()
    pixels = (result[0].permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).clip(0, 255).astype(np.uint8)  # (H, W, 3)
    return Image.fromarray(pixels)


@functools.lru_cache(maxsize=2)
def _vgg(layers: tuple[str, ...], pooling: str, weights, device: str) -> VGGFeatures:
    """One extractor per (layers, pooling, weights): a CLI run over a folder loads the VGG once."""
    return VGGFeatures(layers=layers, pooling=pooling, weights=weights).to(device)


def _rgb(image: ImageLike, role: str) -> np.ndarray:
    """(H, W, 3) uint8 from a path (decoded by the shared loader) or an array (checked)."""
    if isinstance(image, (str, os.PathLike)):
        return load_rgb(Path(image).expanduser())
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
