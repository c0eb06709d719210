"""The trainer's speed-ups keep the maths and restore what they change."""

from __future__ import annotations

import pytest
import torch

from napari_vlsm.core.forward import VLSMModel
from napari_vlsm.core.loading import load_model
from napari_vlsm.core.training import heap
from napari_vlsm.core.training.frozen_model import frozen_model


def test_frozen_model_matches_the_loaded_model_within_bf16_rounding(tiny_model_dir):
    fp32 = load_model(tiny_model_dir, device="cpu", precision="fp32")
    fp32_base = frozen_model(fp32)  # own modules (fused decoder MLPs) around the same tensors
    assert fp32_base is not fp32.model
    assert {id(p) for p in fp32_base.parameters()} == {id(p) for p in fp32.model.parameters()}
    bf16 = load_model(tiny_model_dir, device="cpu", precision="bf16")
    base = frozen_model(bf16)
    assert base is not bf16.model
    tok = bf16.tokenizer(["polyp", "liver"], padding=True, return_tensors="pt")
    torch.manual_seed(0)
    px = torch.randn(2, 3, bf16.image_size, bf16.image_size)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        ours = VLSMModel(base)(px, tok.input_ids).float()
        plain = VLSMModel(bf16.model)(px, tok.input_ids).float()
    reference = VLSMModel(fp32.model)(px, tok.input_ids).detach()
    with torch.no_grad():
        torch.testing.assert_close(VLSMModel(fp32_base)(px, tok.input_ids), reference, rtol=1e-5, atol=1e-5)
    scale = reference.abs().max()
    # same computation up to bf16 rounding: no further from fp32 than plain autocast, give or take
    assert (ours - reference).abs().max() / scale < 0.03
    assert (ours - plain).abs().max() / scale < 0.03
    assert all(not p.requires_grad for p in base.parameters())


class _FakeLibc:
    def __init__(self):
        self.calls = []

    def mallopt(self, param, value):
        self.calls.append((param, value))

    def malloc_trim(self, pad):
        self.calls.append(("trim", pad))


def test_kept_heap_is_counted_and_restores_glibc_defaults(monkeypatch):
    fake = _FakeLibc()
    monkeypatch.setattr(heap, "_libc", fake)
    with heap.kept_heap():
        with heap.kept_heap():  # a nested or concurrent finetune shares the setting
            assert fake.calls == [(heap.M_MMAP_THRESHOLD, heap.KEEP_MMAP), (heap.M_TRIM_THRESHOLD, heap.KEEP_TRIM)]
        assert len(fake.calls) == 2
    assert fake.calls[2:] == [(heap.M_MMAP_THRESHOLD, heap.DEFAULT_MMAP),
                              (heap.M_TRIM_THRESHOLD, heap.DEFAULT_TRIM), ("trim", 0)]
    assert heap._users == 0


def test_kept_heap_restores_even_when_training_fails(monkeypatch):
    fake = _FakeLibc()
    monkeypatch.setattr(heap, "_libc", fake)
    with pytest.raises(RuntimeError):
        with heap.kept_heap():
            raise RuntimeError("out of memory")
    assert fake.calls[-1] == ("trim", 0) and heap._users == 0


def test_kept_heap_is_a_no_op_without_glibc(monkeypatch):
    monkeypatch.setattr(heap, "_libc", False)
    with heap.kept_heap():
        pass
    assert heap._users == 0
