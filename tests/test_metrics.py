"""metrics: Dice/IoU on masks and the trainer's differentiable losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_vlsm.core.errors import MaskError
from napari_vlsm.core.metrics import dice, dice_bce_loss, dice_iou_many, iou, soft_dice_loss


def _masks():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[:2, :2] = True  # 4 pixels
    b[:2, :3] = True  # 6 pixels, 4 shared
    return a, b


def test_dice_and_iou_known_values():
    a, b = _masks()
    assert dice(a, b) == pytest.approx(2 * 4 / (4 + 6))
    assert iou(a, b) == pytest.approx(4 / 6)
    assert dice(a, a) == 1.0 and iou(a, a) == 1.0
    assert dice(a, ~a) == 0.0 and iou(a, ~a) == 0.0


def test_both_empty_is_perfect_one_empty_is_zero():
    empty = np.zeros((3, 3), bool)
    full = np.ones((3, 3), bool)
    assert dice(empty, empty) == 1.0 and iou(empty, empty) == 1.0
    assert dice(empty, full) == 0.0 and iou(full, empty) == 0.0


def test_label_masks_accepted_probabilities_refused():
    a, b = _masks()
    assert dice(a.astype(np.uint8) * 255, b) == pytest.approx(0.8)
    with pytest.raises(MaskError):
        dice(np.full((4, 4), 0.7), b)


def test_shape_mismatch_raises_mask_error():
    with pytest.raises(MaskError, match=r"\(3, 3\).*\(4, 4\)"):
        dice(np.zeros((3, 3), bool), np.zeros((4, 4), bool))
    with pytest.raises(MaskError):
        iou(np.zeros((3, 3), bool), np.zeros((3, 4), bool))


def test_dice_iou_many_means_per_image_scores():
    a, b = _masks()
    empty = np.zeros((4, 4), bool)
    out = dice_iou_many([a, empty], [b, empty])
    assert out["per_image"][0]["dice"] == pytest.approx(0.8)
    assert out["per_image"][1] == {"dice": 1.0, "iou": 1.0}
    assert out["mean_dice"] == pytest.approx(0.9)
    assert out["mean_iou"] == pytest.approx((4 / 6 + 1) / 2)
    with pytest.raises(MaskError):
        dice_iou_many([a], [a, b])
    with pytest.raises(MaskError):
        dice_iou_many([], [])


def test_stacks_compare_as_a_whole():
    p = np.zeros((2, 3, 3), bool)
    p[0] = True
    assert dice(p, p) == 1.0
    assert iou(p, np.zeros_like(p)) == 0.0


def test_soft_dice_loss_values():
    big = torch.full((2, 8, 8), 30.0)  # sigmoid ~ 1
    target = torch.ones(2, 8, 8)
    assert soft_dice_loss(big, target).item() == pytest.approx(0.0, abs=1e-6)
    assert soft_dice_loss(-big, target).item() == pytest.approx(1 - 1 / 65, abs=1e-4)
    # empty target, empty prediction: the smoothing term makes it a success
    assert soft_dice_loss(-big, torch.zeros(2, 8, 8)).item() == pytest.approx(0.0, abs=1e-6)


def test_soft_dice_is_per_sample_mean_not_pooled():
    logits = torch.stack([torch.full((4, 4), 30.0), torch.full((4, 4), -30.0)])
    target = torch.stack([torch.ones(4, 4), torch.zeros(4, 4)])
    target[1, 0, 0] = 1.0  # one small structure the model misses entirely
    per_sample = soft_dice_loss(logits, target).item()
    # sample 0: ~0; sample 1: 1 - 1/2 = 0.5 -> mean 0.25 (a pooled Dice would be ~0.03)
    assert per_sample == pytest.approx(0.25, abs=1e-4)


def test_dice_bce_loss_combines_and_is_differentiable_in_fp32():
    torch.manual_seed(0)
    logits = torch.randn(3, 1, 6, 6, dtype=torch.bfloat16, requires_grad=True)
    target = (torch.rand(3, 1, 6, 6) > 0.5).float()
    loss = dice_bce_loss(logits, target)
    assert loss.dtype == torch.float32
    expected = soft_dice_loss(logits, target) + torch.nn.functional.binary_cross_entropy_with_logits(
        logits.float(), target
    )
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad.float()).all()
    assert logits.grad.abs().sum() > 0
    only_bce = dice_bce_loss(logits, target, dice_weight=0.0)
    assert only_bce.item() == pytest.approx(
        torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), target).item(), rel=1e-5
    )


def test_losses_reject_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        soft_dice_loss(torch.zeros(2, 4, 4), torch.zeros(2, 4, 5))
    with pytest.raises(ValueError):
        dice_bce_loss(torch.zeros(2, 4, 4), torch.zeros(1, 4, 4))


def test_gradient_descent_on_loss_improves_dice():
    torch.manual_seed(1)
    target = torch.zeros(1, 8, 8)
    target[0, 2:6, 2:6] = 1
    logits = torch.zeros(1, 8, 8, requires_grad=True)
    opt = torch.optim.SGD([logits], lr=5.0)
    for _ in range(30):
        opt.zero_grad()
        dice_bce_loss(logits, target).backward()
        opt.step()
    pred = (logits.detach() > 0).numpy()[0]
    assert dice(pred, target.numpy()[0] > 0) == 1.0


def test_mean_scores_count_each_image_once():
    from napari_vlsm.core.metrics import mean_scores

    rows = [{"dice": 1.0, "iou": 1.0}, {"dice": 0.0, "iou": 0.0}, {"dice": 0.5, "iou": 0.25}]
    assert mean_scores(rows) == {"mean_dice": 0.5, "mean_iou": 1.25 / 3}
    with pytest.raises(MaskError, match="no masks"):
        mean_scores([])
