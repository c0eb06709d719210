"""Does a runtime's image encoder compute what torch fp32 computes? Measured on a canary input.

The measure is each extracted layer's relative error, ||runtime - torch|| / ||torch|| over all
tokens and channels of a fixed synthetic image: what the decoder reads. The bounds follow from the
arithmetic, not from one CPU's kernels:

- ``onnx-fp32``: the same fp32 arithmetic in another order; rounding grows about as
  eps * sqrt(reduction) per product over ~40 products, far below 2**10 * eps (1.2e-4).
- ``onnx-int8``: every weight and activation of the Linear layers is rounded to one of 255 steps
  of its tensor's range (dynamic quantisation), ~0.4 % per product before LayerNorm re-normalises;
  measured 1.7-1.9 % at the full architecture with random weights, 0.7-1 % on the tiny one. The
  bound, 5 %, is where a wrong graph or kernel starts, not where masks change: random weights give
  flatter, outlier-free activations than trained CLIP, so real weights are expected to err less.

The text encoder and decoder graphs are fp32 (``text-fp32``, ``decoder-fp32``): the fp32 bound.
A graph over its bound is refused (the loader falls back to torch with a warning).
"""

from __future__ import annotations

FP32_EPS = 2.0**-23  # torch.finfo(torch.float32).eps
BOUNDS = {"onnx-fp32": 2**10 * FP32_EPS, "onnx-int8": 0.05, "text-fp32": 2**10 * FP32_EPS,
          "decoder-fp32": 2**10 * FP32_EPS}


def canary_pixels(size: int, batch: int = 2, seed: int = 1234):
    """A smooth, image-like input in the model's normalised range (fixed: same numbers everywhere)."""
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = np.zeros((batch, 3, size, size), np.float32)
    for b in range(batch):
        for _ in range(6):  # a few soft blobs of random colour
            cy, cx, r = rng.random(3) * [1, 1, 0.3] + [0, 0, 0.05]
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
            out[b] += rng.normal(0, 1, (3, 1, 1)).astype(np.float32) * blob.astype(np.float32)
        out[b] += rng.normal(0, 0.1, (3, size, size)).astype(np.float32)  # texture
    return torch.from_numpy(out)


def relative_errors(reference: list, candidate: list) -> list[float]:
    import torch

    return [float(torch.linalg.vector_norm(c.double() - r.double()) / torch.linalg.vector_norm(r.double()))
            for r, c in zip(reference, candidate)]


def canary_inputs(base, size: int, layers: tuple[int, ...], kind: str) -> list:
    """Fixed inputs of the ``kind`` graph: images, two prompts' tokens, or torch's own features."""
    import torch

    from ..forward import VLSMModel

    px = canary_pixels(size)
    if kind.startswith("onnx-"):
        return [px]
    text = base.config.text_config
    ids = torch.tensor([[text.bos_token_id, 40, 41, 42, 43, 44, text.eos_token_id],
                        [text.bos_token_id, 50, 51, text.eos_token_id, text.eos_token_id, text.eos_token_id,
                         text.eos_token_id]])
    if kind == "text-fp32":
        return [ids]
    model = VLSMModel(base, None)
    model.detach_runtimes()
    with torch.inference_mode():
        acts = model.encode_image(px)
        cond = model.encode_text(ids)
    return [a.clone() for a in acts] + [cond.clone()]


def torch_outputs(base, kind: str, inputs: list) -> list:
    import torch

    from ..forward import VLSMModel

    model = VLSMModel(base, None)
    model.detach_runtimes()
    with torch.inference_mode():
        if kind.startswith("onnx-"):
            return model.encode_image(inputs[0])
        if kind == "text-fp32":
            return [model.encode_text(inputs[0])]
        return [model.decode(inputs[:-1], inputs[-1])]


def measure(base, part, size: int, layers: tuple[int, ...], kind: str) -> dict:
    """Agreement of ``part`` (an OnnxPart) with torch fp32 on the canary input."""
    inputs = canary_inputs(base, size, layers, kind)
    errors = relative_errors(torch_outputs(base, kind, inputs), part(*inputs))
    bound = BOUNDS[kind]
    return {"relative_error_per_output": errors, "bound": bound, "ok": max(errors) <= bound,
            "canary": f"agreement.canary_inputs(size={size}, kind={kind!r})"}
