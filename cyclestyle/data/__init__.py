"""Data: image folders, the built-in demo task and the Lightning datamodules over them."""
from .datamodule import UnpairedDataModule
from .demo import DemoDataModule, build_demo
from .images import IMAGE_EXTENSIONS, find_images, load_rgb
from .sampling import UnpairedSampler
from .transforms import PREPROCESS_MODES, build_transform

__all__ = [
    "IMAGE_EXTENSIONS", "PREPROCESS_MODES", "DemoDataModule", "UnpairedDataModule", "UnpairedSampler",
    "build_demo", "build_transform", "find_images", "load_rgb",
]
