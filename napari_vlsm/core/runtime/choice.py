"""Which runtime computes the frozen image encoder on this machine: the rule lives here.

``auto``: GPUs and CPUs with native bf16 keep torch (bf16/fp16 autocast is fast there); a CPU
without native bf16, where the precision was left to ``auto``, gets the image encoder through ONNX
Runtime with int8 dynamic quantisation (about 2x cheaper than torch fp32 on such CPUs), if
onnxruntime is installed; otherwise torch, silently. An explicit ``precision="fp32"`` means fp32
everywhere, so ``auto`` keeps torch then. Whether the int8 graph agrees with torch is checked
once, when it is exported (``agreement.py``); a graph that disagrees is refused with a warning.
"""

from __future__ import annotations

from ..errors import ModelLoadError

BACKENDS = ("auto", "torch", "onnx-fp32", "onnx-int8")
ONNX_EXTRA = "pip install 'napari-vlsm[fast-cpu]' (onnxruntime + onnx)"


def onnxruntime_available() -> bool:
    """onnxruntime and onnx (the quantiser needs it) import; torch.onnx's exporter is built in.
    Imported, not just found: a broken install (a missing DLL) must count as absent."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except Exception:  # noqa: BLE001 - ImportError, or OSError from a native library that does not load
        return False
    return True


def check_backend(name: str) -> str:
    if name not in BACKENDS:
        raise ModelLoadError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return name


def resolve_backend(name: str, device, dtype, precision_asked: str) -> str:
    """The runtime for the frozen image encoder: ``torch``, ``onnx-fp32`` or ``onnx-int8``."""
    import torch

    check_backend(name)
    if name == "torch":
        return name
    if name == "auto":
        if device.type != "cpu" or dtype != torch.float32 or precision_asked != "auto":
            return "torch"
        return "onnx-int8" if onnxruntime_available() else "torch"
    if device.type != "cpu":
        raise ModelLoadError(f"backend {name!r} runs on the CPU only; use --backend torch on {device.type}")
    if dtype != torch.float32:
        raise ModelLoadError(f"backend {name!r} computes in fp32/int8; use --precision fp32 (or auto) with it")
    if not onnxruntime_available():
        raise ModelLoadError(f"backend {name!r} needs ONNX Runtime, which is not installed: {ONNX_EXTRA}, "
                             "or use --backend torch")
    return name
