"""The frozen CLIPSeg the trainer runs: cheaper per step, same maths within bf16 rounding.

Three things make a fast-path step (shallow adapters + decoder + backward) slow on a CPU, found with
the profiler (full architecture, bf16, 1 thread, batch 4):

* autocast casts every frozen Linear/Conv weight to bf16 again at every call (its cache keeps only
  casts of trainable leaves). ``precision.frozen_copy`` (the engine's, shared per model) holds
  those weights in the compute dtype once; under autocast it computes exactly what the original
  does. Frozen weights never change, and gradients still flow through them to the inputs.
* the decoder's attention (4 heads of width 16 over 485 tokens): the CPU flash-attention kernel
  in bf16 takes 25 ms per layer forward + backward at batch 4, in fp32 9-13 ms. So the decoder's
  attention core (softmax(QK^T)V only; its projections stay in bf16) runs in fp32 here:
  more precise than autocast's bf16, and 2-3x faster.
* the decoder MLP's bias copies and ReLU passes over (B x 485 x 2048) tensors: in every precision
  the copy's MLPs are ``fused.FusedReluMLP`` (one Function, input gradients only).

The copy is this module's own (new module objects around the shared tensors), so the engine's
predictions are untouched. Both the fast path and the reference way run it (same precision).
"""

from __future__ import annotations

import copy

import torch

from ..fused import fuse_decoder_mlps

ATTENTION = "napari_vlsm_fp32_sdpa"
_registered = False


def _fp32_sdpa(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """transformers' attention-interface signature; the core in fp32, the result in the input dtype."""
    dtype = query.dtype
    with torch.autocast(query.device.type, enabled=False):  # autocast would cast sdpa back to bf16
        mask = attention_mask.float() if attention_mask is not None and attention_mask.is_floating_point() else attention_mask
        out = torch.nn.functional.scaled_dot_product_attention(
            query.float(), key.float(), value.float(), attn_mask=mask, dropout_p=dropout, scale=scaling)
    return out.transpose(1, 2).to(dtype), None  # (B, T, heads, head_dim), as transformers' sdpa returns


def _register() -> None:
    global _registered
    if not _registered:
        from transformers import AttentionInterface

        AttentionInterface.register(ATTENTION, _fp32_sdpa)
        _registered = True


def frozen_model(loaded):
    """The module the trainer wraps in a VLSMModel: ``loaded.model`` itself off the CPU, else a copy
    (own modules around the same tensors) whose decoder MLPs are fused (``core/fused.py``), and in
    bf16/fp16 over the shared low-precision weights with an fp32 decoder attention core."""
    model = loaded.model
    if loaded.device.type != "cpu":
        return model
    if loaded.dtype == torch.float32:
        own = _own_modules(model)
    else:
        from ..precision import frozen_copy

        own = _own_modules(frozen_copy(model, loaded.dtype))  # the engine's shared copy
        _register()
        for layer in own.decoder.layers:
            attn = layer.self_attn
            attn.config = copy.copy(attn.config)
            attn.config._attn_implementation = ATTENTION
    fuse_decoder_mlps(own.decoder)
    return own


def _own_modules(model):
    """New module objects (and configs) around the very same parameter and buffer tensors."""
    shared = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    return copy.deepcopy(model, memo=shared)
