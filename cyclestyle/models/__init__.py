from .cyclegan import CycleGAN
from .ugatit import UGATIT

__all__ = ["CycleGAN", "UGATIT"]
