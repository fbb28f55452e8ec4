"""Every kind of file a generator can come from, behind one callable.

- a cyclestyle checkpoint (`.ckpt`): the direction's network is rebuilt from the checkpoint's record
  (`cyclestyle.checkpoints`), whatever family wrote it;
- a reference CycleGAN generator, an official CUT generator or a pytorch/examples fast_neural_style
  model (`.pth`, bare state_dict), or an official U-GAT-IT checkpoint (`*_params_*.pt`): the
  architecture is read off the keys;
- a file written by `cyclestyle export`: ONNX (`.onnx`), torch.export (`.pt2`) or TorchScript (`.pt`).

Pickled files are read with `torch.load(weights_only=True)`: a file that would run code when
unpickled is refused, not executed. pt2 and TorchScript files are programs: load only trusted ones.
"""
from __future__ import annotations

import json
import os
import warnings
import zipfile
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from ..adapters import convert_file
from ..errors import first_line
from ..checkpoints import UnsafeCheckpointError  # noqa: F401 -- re-exported for cyclestyle.inference
from ..checkpoints import build_translator, check_archive, safe_load
from ..record import DIRECTIONS, RECORD_KEY, read_record

EXPORT_META = "cyclestyle.json"  # extra file in TorchScript exports / metadata key in ONNX exports


def _program_kind(path: Path) -> str | None:
    """"pt2" (torch.export), "torchscript", or None (a pickled checkpoint or not a zip at all)."""
    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):  # torch.load says what is wrong with it
        return None
    if any(name.endswith("/archive_format") for name in names) and any("/models/" in name for name in names):
        return "pt2"
    if any(name.endswith("/constants.pkl") or "/code/" in name for name in names):
        return "torchscript"
    return None


def _export_meta(path: Path, text: str | bytes | None) -> tuple[int, int | None, dict]:
    """(size multiple, fixed size or None, generator spec) from the metadata `cyclestyle export`
    writes (defaults if absent)."""
    try:
        meta = json.loads(text or "{}")
        multiple, spec = int(meta.get("size_multiple", 4)), meta.get("generator", {})
        fixed = None if meta.get("fixed_size") is None else int(meta["fixed_size"])
    except (ValueError, TypeError, AttributeError) as error:
        raise ValueError(f"{path}: unreadable {EXPORT_META} metadata ({first_line(error)})") from None
    if multiple < 1 or (fixed is not None and fixed < 1):
        raise ValueError(f"{path}: {EXPORT_META} metadata gives size_multiple {multiple}, fixed_size {fixed} "
                         f"(must be >= 1)")
    return multiple, fixed, spec if isinstance(spec, dict) else {}


class Generator:
    """(B, 3, H, W) float images in [-1, 1] -> translated, same shape. H and W must be multiples
    of `size_multiple` (and equal `fixed_size` when set); `cyclestyle.inference.tiling` pads,
    tiles and crops for you."""

    def __init__(self, module: nn.Module, *, size_multiple: int, device: torch.device, precision: str, spec: dict,
                 fixed_size: int | None = None, compile: bool = False) -> None:
        self.size_multiple, self.fixed_size, self.device, self.spec = size_multiple, fixed_size, device, spec
        self.precision, self.runtime = precision, "torch"  # what it runs in, for summaries and checks
        # Inductor fuses pads, convs, norms and activations: ~1.6x faster in bf16 on CPU, after a
        # warm-up per new input shape (about a minute the first time, seconds once cached on disk).
        # Freezing folds the (fixed) weights into the graph so oneDNN can pre-pack them: ~7% more.
        if compile:
            import torch._inductor.config as inductor_config

            from ..compiling import keep_compile_caches

            keep_compile_caches()  # compiled graphs kept in the user's cache folder, not /tmp
            inductor_config.freezing = True  # process-wide; safe here, inference only
        self.module = torch.compile(module, dynamic=False) if compile else module
        # int8: `module` is already quantised (cyclestyle.inference.quantize), it runs as it is.
        self.autocast = {"32": None, "int8": None, "bf16": torch.bfloat16, "16": torch.float16}[precision]

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if self.autocast is None:
            return self.module(x).float()
        with torch.autocast(self.device.type, dtype=self.autocast):
            return self.module(x).float()


def _one_image_input(path: Path, inputs: list[str], runtime: str) -> None:
    """An exported file must take one image to be run as a generator; a style-conditioned export
    (AdaIN's style image, multi_style's weights as a second input) is refused with what to do."""
    if len(inputs) != 1:
        style = " a style-conditioned export (AdaIN, multi_style);" if len(inputs) == 2 else ""
        raise ValueError(f"{path}: takes {len(inputs)} inputs ({', '.join(inputs)}), not one image:{style} "
                         "translate runs the checkpoint it was exported from (with its style options), "
                         f"or feed every input with {runtime}")


class OnnxGenerator:
    """The same interface over an ONNX file run by onnxruntime (always fp32)."""

    def __init__(self, path: Path) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise ImportError(f"{path}: running ONNX files needs onnxruntime: pip install onnxruntime") from None
        try:  # onnxruntime's errors (InvalidProtobuf, Fail, ...) derive from Exception only
            self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as error:  # noqa: BLE001 -- every way a file fails to be an ONNX model
            raise ValueError(f"{path}: not a readable ONNX model ({first_line(error)})") from None
        _one_image_input(path, [i.name for i in self.session.get_inputs()], "onnxruntime")
        (image,) = self.session.get_inputs()
        self.input_name = image.name
        meta = self.session.get_modelmeta().custom_metadata_map.get(EXPORT_META)
        self.size_multiple, self.fixed_size, self.spec = _export_meta(path, meta)
        self.device = torch.device("cpu")
        self.precision, self.runtime = "32", "onnxruntime"  # onnxruntime runs the graph as exported

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        (y,) = self.session.run(None, {self.input_name: x.float().cpu().numpy()})
        return torch.from_numpy(y)


def load_generator(
    path: str | os.PathLike,
    *,
    direction: str = "a2b",
    device: str | torch.device = "cpu",
    precision: str = "32",
    overrides: dict | None = None,
    compile: bool = False,
    bind: Callable[[nn.Module, str | None], nn.Module] | None = None,
) -> Generator | OnnxGenerator:
    """Open any supported model file and return its `direction` generator, ready for inference.

    `overrides` (name, ngf, norm, dropout) replace what is read from the file; `compile` runs
    PyTorch models through `torch.compile`. `bind(net, condition)` turns the network of a checkpoint
    into the image -> image module to run (`condition` is its `TranslatorSpec.condition`: None, or a
    style-conditioned family's kind, whose style options `bind` fixes); it raises ValueError for a
    network its options do not apply to."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    path, device = Path(path).expanduser(), torch.device(device)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    if path.suffix.lower() == ".onnx":
        return OnnxGenerator(path)
    kind = _program_kind(path)
    if kind is not None:
        check_archive(path)  # a program's weights load unchecked too
    if kind == "pt2":
        extra = {EXPORT_META: ""}
        try:
            program = torch.export.load(str(path), extra_files=extra)
        except Exception as error:  # noqa: BLE001 -- the deserialiser fails in many ways on foreign files
            raise ValueError(f"{path}: not a readable pt2 (torch.export) file ({first_line(error)})") from None
        _one_image_input(path, list(program.graph_signature.user_inputs), "torch.export.load")
        module = program.module()
        multiple, fixed, spec = _export_meta(path, extra[EXPORT_META])
        return Generator(module.to(device), size_multiple=multiple, fixed_size=fixed, device=device,
                         precision=precision, spec=spec, compile=compile)
    if kind == "torchscript":
        extra = {EXPORT_META: ""}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated, still supported
                module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
        except (RuntimeError, ValueError, zipfile.BadZipFile) as error:
            raise ValueError(f"{path}: not a readable TorchScript file ({first_line(error)})") from None
        _one_image_input(path, [a.name for a in module.forward.schema.arguments[1:]], "torch.jit.load")
        multiple, fixed, spec = _export_meta(path, extra[EXPORT_META])
        return Generator(module.eval(), size_multiple=multiple, fixed_size=fixed, device=device, precision=precision,
                         spec=spec)  # TorchScript: not compiled
    checkpoint = safe_load(path)
    if isinstance(checkpoint, dict) and ("state_dict" in checkpoint or RECORD_KEY in checkpoint):
        overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    else:  # a peer's file: converted in memory into the checkpoint `import-reference` would write
        checkpoint, adapter = convert_file(path, checkpoint, overrides=overrides)
        if adapter.one_way:  # one generator per file: --direction does not apply
            direction = next(iter(read_record(checkpoint, source=str(path)).translators))
        overrides = None  # applied by the conversion
    net, translator = build_translator(checkpoint, direction, source=str(path), overrides=overrides)
    condition = translator.condition
    if bind is not None:
        net = bind(net.eval(), condition)
    elif condition is not None:
        options = {"style_mix": "translate's --style-index/--style-mix; in Python bind=style_mix_binding(...) "
                                "from cyclestyle.inference.style_mix",
                   "style_image": "translate's --style; in Python bind=bind_for(...) from cyclestyle.inference.styles"}
        raise ValueError(f"{path}: a style-conditioned model ({condition}) needs its style options: "
                         f"{options.get(condition, 'bind=...')}")
    return Generator(net.eval().to(device), size_multiple=translator.size_multiple, fixed_size=translator.fixed_size,
                     device=device, precision=precision, spec=translator.kwargs, compile=compile)

