"""The forward passes of training and evaluation on a PreparedSet.

A training step is ``adapt_image(features) -> decode(·, encode_text(prompts))``; the image part
comes from the precomputed features (fast path) or from ``encode_image`` on the preprocessed input
at every step (dense variants, or the reference way a benchmark compares against). Evaluation
measures Dice and IoU at each image's own resolution, as the paper does, and the loss at model
resolution (for the plateau scheduler).
"""

from __future__ import annotations

import torch
from torch import nn

from ..forward import VLSMModel
from ..metrics import dice, dice_bce_loss, iou, mean_scores
from ..preprocess import logits_to_probability
from .memory import MemoryLimit
from .prepare import PreparedSet

THRESHOLD = 0.5


def text_depends_on_adapters(adapters) -> bool:
    return adapters is not None and (
        len(adapters.text_shallow) > 0 or len(adapters.text_dense) > 0 or adapters.cond is not None
    )


class _Tap(nn.Module):
    """Stands in for a shallow text adapter: records the end-of-text token it gets, adds nothing."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen = x
        return torch.zeros_like(x)


class _Probe(nn.Module):
    """An adapter-set stand-in that makes ``encode_text`` return the plain conditional embedding
    and record the text-block outputs the shallow text adapters read."""

    def __init__(self, keys):
        super().__init__()
        self.text_dense = nn.ModuleDict()
        self.text_shallow = nn.ModuleDict({k: _Tap() for k in keys})
        self.cond = None


class TextSide:
    """Conditional embeddings per prompt index, computed as little as possible.

    * no text adapters: the embeddings never change; encoded once.
    * shallow text adapters only (shallow-vl/-vlc): they read text-block outputs on the side and
      never change the encoder's stream, so the frozen text encoder runs once per prompt and each
      step applies only the adapters (the composition of ``VLSMModel.encode_text``: the conditional
      adapter first, then the layer terms in layer order; a test checks they agree).
    * dense text adapters, or ``cache=False`` (the reference way): the text encoder every step.
    """

    def __init__(self, model, input_ids: torch.Tensor, amp, cache: bool = True):
        self.model, self.input_ids, self.amp = model, input_ids, amp
        adapters = model.adapters
        self.mode = "encode"
        if cache and not text_depends_on_adapters(adapters):
            self.mode = "fixed"
            with torch.no_grad(), amp():
                self.table = model.encode_text(input_ids).float()  # (P, proj)
        elif cache and len(adapters.text_dense) == 0:
            self.mode = "shallow"
            self.keys = sorted(adapters.text_shallow.keys(), key=int)
            probe = _Probe(self.keys)
            with torch.no_grad(), amp():
                self.table = VLSMModel(model.base, probe, model.runtimes).encode_text(input_ids).float()  # (P, proj)
            self.taps = [probe.text_shallow[k].seen.float() for k in self.keys]  # each (P, width)

    def cond(self, prompt_idx: list[int]) -> torch.Tensor:
        index = torch.as_tensor(prompt_idx, device=self.input_ids.device)
        if self.mode == "fixed":
            return self.table[index]
        if self.mode == "shallow":
            adapters = self.model.adapters
            cond = self.table[index]
            if adapters.cond is not None:
                cond = adapters.cond(cond)
            for key, tap in zip(self.keys, self.taps):
                cond = cond + adapters.text_shallow[key](tap[index])
            return cond  # (B, proj)
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


def _scores(model, text: TextSide, data: PreparedSet, idx: list[int], amp) -> tuple[float, list, list]:
    logits = logits_for(model, text, data, idx, [data.prompt_ids[i][0] for i in idx], amp)
    loss = float(dice_bce_loss(logits, data.targets[idx])) * len(idx)
    dices, ious = [], []
    for j, i in enumerate(idx):
        pred = logits_to_probability(logits[j : j + 1], data.shapes[i])[0] >= THRESHOLD
        truth = data.mask(i)
        dices.append(dice(pred, truth))
        ious.append(iou(pred, truth))
    return loss, dices, ious


def evaluate(model, text: TextSide, data: PreparedSet, amp, limit: MemoryLimit) -> dict:
    """Mean Dice / IoU (threshold 0.5, original resolution) and mean loss, canonical prompt each."""
    with torch.no_grad():
        parts = limit.run(list(range(len(data))), lambda idx: _scores(model, text, data, idx, amp))
    loss_sum = sum(p[0] for p in parts)
    means = mean_scores([{"dice": d, "iou": v} for p in parts for d, v in zip(p[1], p[2])])
    return {"dice": means["mean_dice"], "iou": means["mean_iou"], "loss": loss_sum / len(data), "n": len(data)}
