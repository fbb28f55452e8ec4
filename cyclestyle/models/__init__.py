from .cut import CUT, FastCUT
from .cyclegan import CycleGAN
from .fast_style import FastStyle, MultiStyle
from .ugatit import UGATIT

__all__ = ["CUT", "CycleGAN", "FastCUT", "FastStyle", "MultiStyle", "UGATIT"]
