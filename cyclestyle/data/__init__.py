"""Data: image folders (two domains, or one of content photos), the built-in demo task and the Lightning datamodules over them."""
from .content import ContentDataModule
from .datamodule import UnpairedDataModule
from .demo import DemoDataModule, build_demo
from .images import IMAGE_EXTENSIONS, find_images, load_rgb
from .sampling import UnpairedSampler
from .transforms import PREPROCESS_MODES, build_transform

__all__ = [
    "IMAGE_EXTENSIONS", "PREPROCESS_MODES", "ContentDataModule", "DemoDataModule", "UnpairedDataModule", "UnpairedSampler",
    "build_demo", "build_transform", "find_images", "load_rgb",
]
