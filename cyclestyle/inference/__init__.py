"""Running trained generators: model files of every kind, tiling, batch translation, the library call."""
from .api import TranslateOptions, TranslateResult, Translator, translate
from .jobs import Summary
from .sources import UnsafeCheckpointError, load_generator, safe_load

__all__ = ["Summary", "TranslateOptions", "TranslateResult", "Translator", "UnsafeCheckpointError", "load_generator",
           "safe_load", "translate"]
