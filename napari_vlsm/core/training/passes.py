"""The forward passes of training and evaluation on a PreparedSet.

A training step is ``adapt_image(features) -> decode(·, encode_text(prompts))``; the image part
comes from the precomputed features (fast path) or from ``encode_image`` on the preprocessed
input at every step (dense variants, or the reference way a benchmark compares against). Evaluation measures Dice and IoU
at each image's own resolution, as the paper does, and the loss at model resolution (for the
plateau scheduler).
"""

from __future__ import annotations

import numpy as np
import torch

from ..metrics import dice, dice_bce_loss, iou
from ..preprocess import logits_to_probability
from .prepare import PreparedSet

THRESHOLD = 0.5


def text_depends_on_adapters(adapters) -> bool:
    return adapters is not None and (
        len(adapters.text_shallow) > 0 or len(adapters.text_dense) > 0 or adapters.cond is not None
    )


class TextSide:
    """Conditional embeddings per prompt index. Without text adapters they never change, so they
    are encoded once; with text adapters each step encodes the distinct phrasings of its batch."""

    def __init__(self, model, input_ids: torch.Tensor, amp):
        self.model, self.input_ids, self.amp = model, input_ids, amp
        self.cached = None
        if not text_depends_on_adapters(model.adapters):
            with torch.no_grad(), amp():
                self.cached = model.encode_text(input_ids).float()  # (P, proj)

    def cond(self, prompt_idx: list[int]) -> torch.Tensor:
        index = torch.as_tensor(prompt_idx, device=self.input_ids.device)
        if self.cached is not None:
            return self.cached[index]
        unique, inverse = torch.unique(index, return_inverse=True)
        return self.model.encode_text(self.input_ids[unique])[inverse]  # (B, proj)


def image_side(model, data: PreparedSet, idx: list[int]) -> list[torch.Tensor]:
    """Adapted image activations of the samples ``idx`` (call under autocast)."""
    if data.features is not None:
        index = torch.as_tensor(idx, device=data.targets.device)
        acts = [f[index] for f in data.features]
    else:
        acts = model.encode_image(data.pixels[torch.as_tensor(idx, device=data.pixels.device)])
    return model.adapt_image(acts)


def logits_for(model, text: TextSide, data: PreparedSet, idx: list[int], prompt_idx: list[int], amp):
    with amp():
        return model.decode(image_side(model, data, idx), text.cond(prompt_idx))  # (B, S, S)


def evaluate(model, text: TextSide, data: PreparedSet, amp, chunk: int) -> dict:
    """Mean Dice / IoU (threshold 0.5, original resolution) and mean loss, canonical prompt each."""
    dices, ious, loss_sum = [], [], 0.0
    with torch.no_grad():
        for start in range(0, len(data), chunk):
            idx = list(range(start, min(start + chunk, len(data))))
            logits = logits_for(model, text, data, idx, [data.prompt_ids[i][0] for i in idx], amp)
            loss_sum += float(dice_bce_loss(logits, data.targets[idx])) * len(idx)
            for j, i in enumerate(idx):
                prob = logits_to_probability(logits[j : j + 1], data.shapes[i])[0]
                truth = data.mask(i)
                pred = prob >= THRESHOLD
                dices.append(dice(pred, truth))
                ious.append(iou(pred, truth))
    return {
        "dice": float(np.mean(dices)),
        "iou": float(np.mean(ious)),
        "loss": loss_sum / len(data),
        "n": len(data),
    }
