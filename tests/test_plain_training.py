"""The benchmark's plain-transformers training (benchmarks/plain_training.py) computes what the
product's trainer computes: same logits, and its steps lower the loss. A reference that trained
something else would make bench_training.py's ratio meaningless."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from napari_vlsm.core.forward import VLSMModel
from napari_vlsm.core.metrics import dice_bce_loss
from napari_vlsm.core.training.loop import amp_factory, seeded_adapters

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from plain_training import PlainShallowTraining, epoch_batches  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def _trainer(loaded, variant="shallow-vlc"):
    adapters = seeded_adapters(variant, loaded, seed=3).requires_grad_(True)
    tok = loaded.tokenizer(["polyp", "a large pink polyp"], padding=True, return_tensors="pt")
    plain = PlainShallowTraining(loaded.model, adapters, tok.input_ids, tok.attention_mask,
                                 amp_factory(loaded),  # fp32 fixture: no autocast
                                 lr=3e-3, weight_decay=1e-3, grad_clip=0.5)
    return plain, adapters, tok.input_ids


@pytest.mark.parametrize("variant", ["shallow-v", "shallow-vlc"])
def test_plain_logits_equal_the_products_forward(loaded, variant):
    plain, adapters, ids = _trainer(loaded, variant)
    torch.manual_seed(0)
    px = torch.randn(2, 3, loaded.image_size, loaded.image_size)
    with torch.no_grad():
        ours = VLSMModel(loaded.model, adapters)(px, ids[[1, 0]])
        theirs = plain.logits(px, [1, 0])
    torch.testing.assert_close(theirs, ours, rtol=1e-4, atol=1e-4)


def test_plain_steps_train_the_adapters(loaded):
    plain, adapters, _ = _trainer(loaded)
    torch.manual_seed(1)
    px = torch.randn(4, 3, loaded.image_size, loaded.image_size)
    target = torch.zeros(4, loaded.image_size, loaded.image_size)
    target[:, : loaded.image_size // 2] = 1
    before = [p.detach().clone() for p in adapters.parameters()]
    losses = [plain.step(px, target, [0, 1, 0, 1]) for _ in range(15)]
    assert losses[-1] < losses[0]
    assert all(not torch.equal(a, b) for a, b in zip(before, adapters.parameters()))
    assert all(p.grad is None for p in loaded.model.parameters())  # the base stays frozen
    with torch.no_grad():
        final = dice_bce_loss(plain.logits(px, [0, 1, 0, 1]), target).item()
    assert final < losses[0]


def test_epoch_batches_cover_every_sample_once():
    batches = epoch_batches(10, 4, seed=0)
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(i for b in batches for i in b) == list(range(10))
