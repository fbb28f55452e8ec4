"""cyclestyle: unpaired image-to-image translation and style transfer (CycleGAN first)."""
import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations checks PyPI at import otherwise

__version__ = "0.1.0"


def __getattr__(name: str):
    """`cyclestyle.stylize(...)` (Gatys/Luan style transfer, `cyclestyle.neural_style`), imported on
    first use so that `import cyclestyle` stays light (no torch)."""
    if name == "stylize":
        from .neural_style import stylize

        return stylize
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
