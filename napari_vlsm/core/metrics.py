"""Overlap metrics (Dice, IoU) on binary masks, and the differentiable losses the trainer uses.

Convention: two empty masks agree perfectly (Dice = IoU = 1.0). A correction that says "nothing
here" and a prediction of nothing is a success, and counting it as 0 (or NaN) would punish the
model for the most common negative case.

torch is imported inside the loss functions so that the metrics stay usable without loading it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .errors import MaskError
from .preprocess import as_binary_mask

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

__all__ = ["dice", "iou", "dice_iou_many", "soft_dice_loss", "dice_bce_loss"]


def _pair(pred, target) -> tuple[np.ndarray, np.ndarray]:
    """Both masks as bool arrays of the same shape; probabilities are refused, not thresholded."""
    p = np.asarray(pred)
    t = np.asarray(target)
    if p.shape != t.shape:
        raise MaskError(
            f"prediction shape {p.shape} does not match target shape {t.shape}; "
            "compare masks of the same image"
        )
    if p.dtype != np.bool_:
        p = as_binary_mask(p) if p.ndim == 2 else _nd_binary(p, "prediction")
    if t.dtype != np.bool_:
        t = as_binary_mask(t) if t.ndim == 2 else _nd_binary(t, "target")
    return p, t


def _nd_binary(a: np.ndarray, what: str) -> np.ndarray:
    # Stacks compare as a whole (3D Dice); values must still be two-valued.
    if a.dtype.kind not in "biuf":
        raise MaskError(f"the {what} has dtype {a.dtype}; pass a bool mask")
    values = np.unique(a)
    if values.size > 2 or (values.size == 2 and values[0] != 0) or np.isnan(values).any():
        raise MaskError(f"the {what} is not binary (values {values[:5].tolist()}); pass a bool mask")
    return a != 0


def _counts(pred, target) -> tuple[int, int, int]:
    p, t = _pair(pred, target)
    inter = int(np.count_nonzero(p & t))
    return inter, int(np.count_nonzero(p)), int(np.count_nonzero(t))


def dice(pred, target) -> float:
    """Dice = 2|P∩T| / (|P| + |T|); 1.0 when both are empty."""
    inter, n_p, n_t = _counts(pred, target)
    if n_p + n_t == 0:
        return 1.0
    return 2.0 * inter / (n_p + n_t)


def iou(pred, target) -> float:
    """IoU (Jaccard) = |P∩T| / |P∪T|; 1.0 when both are empty."""
    inter, n_p, n_t = _counts(pred, target)
    union = n_p + n_t - inter
    if union == 0:
        return 1.0
    return inter / union


def mean_scores(per_image: Sequence[dict]) -> dict:
    """``{"mean_dice", "mean_iou"}`` of per-image ``{"dice", "iou"}`` rows: each image counts once,
    as the VLSM papers report (not a pooled score that large structures would dominate). The one
    mean the trainer's evaluation, ``dice_iou_many`` and the CLI's evaluate report."""
    if not per_image:
        raise MaskError("no masks to compare; pass at least one prediction/target pair")
    return {"mean_dice": float(np.mean([r["dice"] for r in per_image])),
            "mean_iou": float(np.mean([r["iou"] for r in per_image]))}


def dice_iou_many(preds: Sequence, targets: Sequence) -> dict:
    """Per-image Dice and IoU and their means (the mean of per-image scores, as the VLSM papers
    report, not a pooled score that large structures would dominate).

    Returns ``{"mean_dice": float, "mean_iou": float, "per_image": [{"dice": d, "iou": i}, ...]}``.
    """
    preds, targets = list(preds), list(targets)
    if len(preds) != len(targets):
        raise MaskError(f"got {len(preds)} predictions for {len(targets)} targets; pass one per target")
    if not preds:
        raise MaskError("no masks to compare; pass at least one prediction/target pair")
    per_image = []
    for p, t in zip(preds, targets):
        inter, n_p, n_t = _counts(p, t)
        union = n_p + n_t - inter
        per_image.append(
            {
                "dice": 1.0 if n_p + n_t == 0 else 2.0 * inter / (n_p + n_t),
                "iou": 1.0 if union == 0 else inter / union,
            }
        )
    return {**mean_scores(per_image), "per_image": per_image}


def _fp32(logits: "torch.Tensor", target: "torch.Tensor"):
    if logits.shape != target.shape:
        raise ValueError(
            f"logits shape {tuple(logits.shape)} does not match target shape {tuple(target.shape)}"
        )
    if logits.ndim < 1 or logits.shape[0] == 0:
        raise ValueError("the losses need a non-empty batch (first axis)")
    return logits.float(), target.float()


def soft_dice_loss(logits: "torch.Tensor", target: "torch.Tensor", smooth: float = 1.0) -> "torch.Tensor":
    """``1 - soft Dice`` of sigmoid(logits) per sample, averaged over the batch (first axis).

    Per sample rather than pooled over the batch, so that a small structure counts as much as a
    large one. ``smooth`` keeps the loss defined (0) for an empty target and empty prediction.
    Computed in float32 with autocast disabled: bf16 sums over 124k pixels lose the small terms.
    """
    import torch

    with torch.autocast(device_type=logits.device.type, enabled=False):
        x, t = _fp32(logits, target)
        p = torch.sigmoid(x).reshape(x.shape[0], -1)
        t = t.reshape(t.shape[0], -1)
        inter = (p * t).sum(dim=1)
        denom = p.sum(dim=1) + t.sum(dim=1)
        score = (2.0 * inter + smooth) / (denom + smooth)
        return (1.0 - score).mean()


def dice_bce_loss(
    logits: "torch.Tensor",
    target: "torch.Tensor",
    dice_weight: float = 1.0,
    bce_weight: float = 1.0,
) -> "torch.Tensor":
    """``dice_weight * soft_dice_loss + bce_weight * BCE-with-logits`` (the VLSM papers' loss):
    Dice handles the foreground/background imbalance, BCE gives useful gradients from step one."""
    import torch
    import torch.nn.functional as F

    with torch.autocast(device_type=logits.device.type, enabled=False):
        x, t = _fp32(logits, target)
        loss = x.new_zeros(())
        if dice_weight:
            loss = loss + dice_weight * soft_dice_loss(x, t)
        if bce_weight:
            loss = loss + bce_weight * F.binary_cross_entropy_with_logits(x, t)
        return loss
