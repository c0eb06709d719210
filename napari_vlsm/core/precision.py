"""The precision policy of prediction and training, in one place.

* :func:`autocast`: the context both run the model in: autocast in the loaded compute dtype
  (bf16 on CPUs with native bf16, fp16 on CUDA), nothing in fp32. :func:`inference` adds
  ``torch.inference_mode`` for prediction.
* :func:`frozen_copy`: one bf16/fp16 copy of a frozen CLIPSeg's Linear and Conv weights, shared by
  the engine and the trainer. Why: autocast casts every weight again at every call (its own cache keeps only casts of trainable
leaves), which on a CPU costs more than the text encoder's and decoder's arithmetic itself. Under
``torch.autocast(dtype)`` the copy computes exactly what the original does, minus the casting.

What is not copied (:func:`unused_prefixes`, the one skip list): the vision blocks after the last
extracted layer and the visual projection, which ``forward.VLSMModel`` never runs.
"""

from __future__ import annotations

import threading
import weakref
from contextlib import ExitStack, nullcontext

_COPIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {(dtype, skip): copy}
_LOCK = threading.Lock()


def autocast(loaded):
    """A context manager: autocast in ``loaded.dtype`` on its device, or nothing in fp32."""
    import torch

    if loaded.dtype == torch.float32:
        return nullcontext()
    return torch.autocast(device_type=loaded.device.type, dtype=loaded.dtype)


def inference(loaded) -> ExitStack:
    """``torch.inference_mode`` plus :func:`autocast`: how the engine predicts."""
    import torch

    stack = ExitStack()
    stack.enter_context(torch.inference_mode())
    stack.enter_context(autocast(loaded))
    return stack


def unused_prefixes(model) -> tuple[str, ...]:
    """Qualified-name prefixes of the modules a VLSMModel never runs (no low-precision copy)."""
    vision = model.clip.vision_model.encoder.layers
    unused = range(max(int(i) for i in model.config.extract_layers) + 1, len(vision))
    return tuple(f"clip.vision_model.encoder.layers.{i}." for i in unused) + ("clip.visual_projection",)


def frozen_copy(model, dtype):
    """:func:`low_precision_base` of ``model`` without the modules it never runs (shared per model)."""
    return low_precision_base(model, dtype, unused_prefixes(model))


def low_precision_base(model, dtype, skip_prefixes: tuple[str, ...] = ()):
    """A copy of frozen ``model`` whose Linear/Conv weights are stored in ``dtype``, one per
    (model, dtype, skip_prefixes).

    Everything else (norms, embeddings, buffers) is the original tensors, not copies, so the extra
    memory is the low-precision weights only. Modules whose qualified name starts with one of
    ``skip_prefixes`` keep their original weights.
    """
    import copy

    import torch
    from torch import nn

    key = (dtype, tuple(skip_prefixes))
    with _LOCK:
        copies = _COPIES.setdefault(model, {})
        if key in copies:
            return copies[key]
        shared = {id(t): t for t in [*model.parameters(), *model.buffers()]}
        fast = copy.deepcopy(model, memo=shared)  # new modules around the same tensors
        kinds = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)
        with torch.no_grad():
            for name, module in fast.named_modules():
                if not isinstance(module, kinds) or name.startswith(key[1]):
                    continue
                for attr in ("weight", "bias"):
                    tensor = getattr(module, attr)
                    if tensor is not None:
                        setattr(module, attr, nn.Parameter(tensor.detach().to(dtype), requires_grad=False))
        copies[key] = fast
        return fast
