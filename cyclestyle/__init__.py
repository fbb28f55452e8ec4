"""cyclestyle: unpaired image-to-image translation and style transfer (CycleGAN first)."""
import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations checks PyPI at import otherwise

__version__ = "0.1.0"
