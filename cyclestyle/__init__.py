"""cyclestyle: unpaired image-to-image translation and style transfer (CycleGAN first)."""
import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations checks PyPI at import otherwise

__version__ = "0.1.0"


def __getattr__(name: str):
    """`cyclestyle.translate(...)` (and `Translator`, `TranslateOptions`) and `cyclestyle.stylize(...)`
    (and `StylizeOptions`; Gatys/Luan style transfer, `cyclestyle.neural_style`), imported on first
    use so that `import cyclestyle` stays light (no torch)."""
    if name in ("translate", "Translator", "TranslateOptions"):  # the translation library call (cyclestyle.inference.api)
        from .inference import api

        return getattr(api, name)
    if name in ("stylize", "StylizeOptions"):  # Gatys/Luan style transfer (cyclestyle.neural_style.transfer)
        from .neural_style import transfer

        return getattr(transfer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
