"""Running trained generators: model files of every kind, tiling, batch translation, export."""
from .sources import UnsafeCheckpointError, load_generator, safe_load

__all__ = ["UnsafeCheckpointError", "load_generator", "safe_load"]
