from .cut import CUT, FastCUT
from .cyclegan import CycleGAN
from .ugatit import UGATIT

__all__ = ["CUT", "CycleGAN", "FastCUT", "UGATIT"]
