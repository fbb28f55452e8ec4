"""`translate --precision int8`: post-training static quantisation of a generator for x86 CPUs.

PT2E (torchao's `prepare_pt2e`/`convert_pt2e`) with the x86 Inductor quantiser: int8 weights per
output channel, uint8 activations calibrated on the user's own first images, lowered by Inductor to oneDNN int8 convolutions (VNNI/AMX where the CPU has them). Only the
residual trunk is quantised: the same-width, stride-1 convolutions (in a ResNet-9, 18 of its 24
convolutions and ~85 % of its FLOPs). The stem, the down- and upsampling convolutions, the output
layer and every norm stay fp32: measured on the reference ResNet-9, quantising the first
downsampling alone costs more quality than the whole trunk, and all of it gives ~33 dB instead
of ~36 dB. Activation ranges are the calibration images' min/max, not the quantiser's default
histogram observer: the histograms clip what the calibration images rarely reach, which other
images do reach (ResNet-9, 128 px, 3 calibration photos: an unseen photo 32.4 dB with histograms,
35.9 dB with min/max; the calibrated ones 38-39 dB and 37.5-38 dB). The result is checked against fp32 on the calibration images; below `MIN_PSNR` it is
refused (QualityError naming the measured dB) and translate falls back to the exact path.

Activation ranges are learned from the calibration images: images unlike them (another kind of
photo, other sizes) may quantise worse than the check says.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..pixels import psnr, to_uint8
from .tiling import translate_any_size

MIN_PSNR = 35.0  # dB from fp32 below which int8 is refused (invisible differences start ~40 dB)
DEFAULT_CALIBRATION = 8  # images: the histograms settle by then; each costs ~1 s at 256 px


class QualityError(ValueError):
    """int8 outputs too far from fp32's on the calibration images."""

    def __init__(self, measured: float, minimum: float) -> None:
        self.measured, self.minimum = measured, minimum
        super().__init__(f"int8 outputs are {measured:.1f} dB PSNR from fp32 on the calibration images "
                         f"(need >= {minimum:.0f} dB)")


@dataclass
class Calibration:
    psnr: float  # dB, the worst calibration image's int8 output against its fp32 output
    images: int
    seconds: float  # export, calibration, conversion, the first compilations and the check


def _pt2e():
    """torchao's PT2E entry points (no longer in torch.ao in torch 2.14), or an ImportError naming the extra."""
    try:
        from torchao.quantization.pt2e import MinMaxObserver
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
        from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as x86
    except ImportError:
        raise ImportError("--precision int8 needs torchao: pip install 'cyclestyle[int8]' (or torchao>=0.18)") from None
    return prepare_pt2e, convert_pt2e, x86, MinMaxObserver


def check_supported(device: torch.device) -> None:
    """int8 runs through oneDNN's x86 kernels: ValueError elsewhere."""
    import platform

    if device.type != "cpu":
        raise ValueError(f"--precision int8 runs on x86 CPUs only, not on {device} (use --device cpu)")
    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
        raise ValueError(f"--precision int8 needs an x86 CPU (this one is {platform.machine()})")


def trunk_convolutions(net: nn.Module) -> list[str]:
    """Names of the convolutions to quantise: plain 2-D convolutions keeping their width at stride 1."""
    return [name for name, m in net.named_modules()
            if type(m) is nn.Conv2d and m.in_channels == m.out_channels and m.stride == (1, 1) and m.groups == 1]


def _example(multiple: int, fixed_size: int | None) -> torch.Tensor:
    """(2, 3, S, S) zeros to trace with: batch 2 and S > 1 so that neither is specialised to 1."""
    side = fixed_size or multiple * max(2, -(-16 // multiple))
    return torch.zeros(2, 3, side, side)


def quantize(net: nn.Module, images: list[torch.Tensor], *, size_multiple: int, fixed_size: int | None = None,
             tile: int | None = None, overlap: int = 32, min_psnr: float = MIN_PSNR
             ) -> tuple[nn.Module, Calibration]:
    """(int8 module compiled by Inductor, its calibration) for the fp32 `net`, calibrated on
    `images` ((1, 3, H, W) in [-1, 1], any size: run whole or in tiles as translate runs them).
    QualityError if the worst image's output is below `min_psnr` dB from fp32."""
    if not images:
        raise ValueError("--precision int8 needs at least one readable input image to calibrate on")
    prepare_pt2e, convert_pt2e, x86, MinMaxObserver = _pt2e()
    start = time.perf_counter()
    names = trunk_convolutions(net)
    if not names:
        raise ValueError(f"--precision int8: this {type(net).__name__} has no residual trunk to quantise")
    quantizer = x86.X86InductorQuantizer()
    config = x86.get_default_x86_inductor_quantization_config()  # per-channel symmetric int8 weights
    activations = dataclasses.replace(config.input_activation,
                                      observer_or_fake_quant_ctr=MinMaxObserver.with_args(eps=2**-12))
    config = dataclasses.replace(config, input_activation=activations, output_activation=activations)
    for name in names:
        quantizer.set_module_name_qconfig(name, config)  # everything else stays fp32
    dims = {0: torch.export.Dim.AUTO, 2: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO}
    net = net.eval().cpu()
    graph = torch.export.export(net, (_example(size_multiple, fixed_size),), dynamic_shapes=(dims,)).module()
    observed = prepare_pt2e(graph, quantizer)

    def run(module, x: torch.Tensor) -> torch.Tensor:
        return translate_any_size(module, x, multiple=size_multiple, fixed_size=fixed_size, tile=tile, overlap=overlap)

    with torch.no_grad():
        for x in images:
            run(observed, x)
        exact = [to_uint8(run(net, x)) for x in images]
    import torch._inductor.config as inductor_config

    from ..compiling import keep_compile_caches

    keep_compile_caches()
    inductor_config.freezing = True  # constant weights: oneDNN packs the int8 weights once (process-wide)
    int8 = torch.compile(convert_pt2e(observed), dynamic=False)
    with torch.no_grad():
        worst = min(psnr(e.numpy(), to_uint8(run(int8, x)).numpy()) for e, x in zip(exact, images))
    calibration = Calibration(psnr=worst, images=len(images), seconds=time.perf_counter() - start)
    if worst < min_psnr:
        raise QualityError(worst, min_psnr)
    return int8, calibration


def int8_generator(generator, sources: list, *, count: int = DEFAULT_CALIBRATION, tile: int | None = None,
                   overlap: int = 32, min_psnr: float | None = None):
    """(int8 `Generator`, its calibration) from an fp32 `Generator` of a PyTorch model, calibrated
    on the first `count` readable images of `sources` (paths). QualityError below `min_psnr`
    (default MIN_PSNR)."""
    from ..pixels import from_rgb_array
    from .files import decode
    from .sources import Generator

    module = getattr(generator, "module", None)
    if not isinstance(module, nn.Module) or isinstance(module, torch.jit.ScriptModule):
        raise ValueError("--precision int8 needs a PyTorch model file (.ckpt, .pth, .pt2), not ONNX or TorchScript")
    check_supported(generator.device)
    if count < 1:
        raise ValueError(f"--calibration must be >= 1 image, got {count}")
    images = []
    for source in sources:
        if len(images) == count:
            break
        try:
            images.append(from_rgb_array(decode(source)[0]))  # (1, 3, H, W)
        except Exception:  # noqa: BLE001 -- unreadable inputs are reported by the run itself
            continue
    int8, calibration = quantize(module, images, size_multiple=generator.size_multiple,
                                 fixed_size=generator.fixed_size, tile=tile, overlap=overlap,
                                 min_psnr=MIN_PSNR if min_psnr is None else min_psnr)
    return Generator(int8, size_multiple=generator.size_multiple, fixed_size=generator.fixed_size,
                     device=generator.device, precision="int8", spec=generator.spec), calibration
