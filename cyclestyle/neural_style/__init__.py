"""Optimisation-based style transfer (Gatys et al.) and its photorealistic variant (Luan et al.):
`cyclestyle.stylize(content, style)` returns the content photo repainted in the style image's
textures, by optimising its pixels against a frozen VGG-19. No training; any style; slow (seconds
at 256 px on a CPU, minutes at 512).

    import cyclestyle
    image = cyclestyle.stylize("photo.jpg", "starry_night.jpg", size=384, steps=300)  # PIL.Image
    image = cyclestyle.stylize(photo, [monet, cezanne], style_weights=[0.7, 0.3])     # (H, W, 3) uint8 arrays too
    options = cyclestyle.StylizeOptions(photorealistic=True, size=384)                 # deep photo style transfer
    image = cyclestyle.stylize("city.jpg", "dusk.jpg", options, content_mask="city_seg.png",
                               style_masks=["dusk_seg.png"])
    image = cyclestyle.stylize("photo.jpg", "wave.jpg", size=1024, scales=[256, 512], preserve_color="luminance")

`transfer.py`: `stylize` and `StylizeOptions` (every setting, with its default); `gatys.py`: the
objective and the optimisers; `color.py`, `masks.py`, `matting.py`: colour preservation,
segmentation masks, the matting Laplacian. The Gram and TV losses are `cyclestyle.losses`'.
Command line: `cyclestyle stylize CONTENT... --style STYLE --output DIR` (cyclestyle.commands.stylize).
"""
from .color import PRESERVE_COLOR
from .gatys import CONTENT_LAYERS, MATTING_WEIGHT, OPTIMIZERS, STYLE_LAYERS, GatysObjective, optimise, region_grams
from .matting import MattingTerm, matting_energy, matting_laplacian
from .transfer import (COARSE_MIN_SIDE, COARSE_START, INITS, PRECISION_ALIASES, PRECISIONS, StylizeOptions,
                       canonical_precision, feature_extractor, stylize)

__all__ = ["stylize", "StylizeOptions", "feature_extractor", "canonical_precision", "GatysObjective", "region_grams",
           "optimise", "matting_laplacian", "matting_energy", "MattingTerm", "CONTENT_LAYERS", "STYLE_LAYERS",
           "OPTIMIZERS", "INITS", "PRESERVE_COLOR", "PRECISIONS", "PRECISION_ALIASES", "MATTING_WEIGHT",
           "COARSE_START", "COARSE_MIN_SIDE"]
