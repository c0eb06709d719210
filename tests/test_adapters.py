"""The paper's six adapter variants: architecture, parameter counts, identity at zero, gradients."""

from __future__ import annotations

import pytest
import torch

from napari_vlsm.core.adapters import VARIANTS, AdapterBlock, AdapterConfig, build_adapters, count_trainable
from napari_vlsm.core.errors import AdapterError
from napari_vlsm.core.forward import VLSMModel
from napari_vlsm.core.loading import load_model
from napari_vlsm.core.random_model import clipseg_config

# vlsm-adapter.md: trainable parameters at the full architecture, to the integer.
PAPER_COUNTS = {
    "shallow-v": 2_363_136,
    "shallow-vl": 3_939_072,
    "shallow-vlc": 4_201_984,
    "dense-v": 1_784_448,
    "dense-vl": 2_974_464,
    "dense-vlc": 3_237_376,
}
IDENTITY_AT_ZERO = ("shallow-v", "dense-v", "dense-vl", "dense-vlc")


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_model(tiny_model_dir, device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def tiny_inputs(tiny):
    tok = tiny.tokenizer(["polyp", "a small round polyp in the lower left"], padding=True, return_tensors="pt")
    torch.manual_seed(1)
    return torch.randn(2, 3, tiny.image_size, tiny.image_size), tok.input_ids, tok.attention_mask


def test_block_formula():
    torch.manual_seed(0)
    block = AdapterBlock(8, 4)
    x = torch.randn(3, 5, 8)
    expected = x + torch.relu(block.up(torch.relu(block.down(x))))
    assert torch.equal(block(x), expected)
    assert block(torch.randn(2, 8)).shape == (2, 8)  # vectors as well as token sequences
    block.zero_up()
    assert torch.equal(block(x), x)


@pytest.mark.parametrize("variant", PAPER_COUNTS)
def test_trainable_counts_match_paper(variant):
    config = AdapterConfig.from_variant(variant, clipseg_config("full", vocab_size=49408))
    assert count_trainable(build_adapters(config)) == PAPER_COUNTS[variant]


def test_insertion_points_full_architecture():
    cfg = clipseg_config("full", vocab_size=49408)
    dense = build_adapters(AdapterConfig.from_variant("dense-vlc", cfg))
    assert sorted(map(int, dense.vision_dense)) == list(range(9))  # blocks 0…8
    assert sorted(map(int, dense.text_dense)) == list(range(9))
    assert dense.vision_dense["0"]["attn"].down.out_features == 64
    assert dense.cond.down.out_features == 256 and dense.cond.down.in_features == 512
    shallow = build_adapters(AdapterConfig.from_variant("shallow-vl", cfg))
    assert sorted(map(int, shallow.vision_shallow)) == [3, 6, 9]
    assert shallow.vision_shallow["3"].down.in_features == 768
    assert shallow.text_shallow["9"].down.out_features == 512
    assert shallow.cond is None and len(shallow.vision_dense) == 0
    assert build_adapters(AdapterConfig.from_variant("none", cfg)) is None


def test_unknown_variant_is_a_clear_error():
    with pytest.raises(AdapterError, match="choose one of"):
        AdapterConfig.from_variant("deep-v", clipseg_config("full", vocab_size=49408))


def test_plain_forward_matches_transformers(tiny, tiny_inputs):
    px, ids, mask = tiny_inputs
    with torch.no_grad():
        ref = tiny.model(input_ids=ids, attention_mask=mask, pixel_values=px).logits
        ours = VLSMModel(tiny.model)(px, ids, mask)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS[1:])
def test_zero_up_reproduces_base_or_not(tiny, tiny_inputs, variant):
    px, ids, mask = tiny_inputs
    adapters = build_adapters(AdapterConfig.from_variant(variant, tiny.config))
    with torch.no_grad():
        base = VLSMModel(tiny.model)(px, ids, mask)
        adapters.zero_up()
        zeroed = VLSMModel(tiny.model, adapters)(px, ids, mask)
    if variant in IDENTITY_AT_ZERO:
        torch.testing.assert_close(zeroed, base, rtol=1e-5, atol=1e-5)
    else:  # the shallow text terms add the end-of-text token itself through the block's skip
        assert not torch.allclose(zeroed, base)


@pytest.mark.parametrize("variant", VARIANTS[1:])
def test_gradients_reach_every_adapter_and_no_base_weight(tiny, tiny_inputs, variant):
    px, ids, mask = tiny_inputs
    adapters = build_adapters(AdapterConfig.from_variant(variant, tiny.config))
    model = VLSMModel(tiny.model, adapters)
    model(px, ids, mask).sum().backward()
    for name, p in adapters.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert all(p.grad is None for p in tiny.model.parameters())


def test_image_side_is_prompt_independent_and_skips_late_blocks(tiny, tiny_inputs):
    px, ids, mask = tiny_inputs
    model = VLSMModel(tiny.model)
    ran = []
    hooks = [layer.register_forward_hook(lambda m, i, o, n=n: ran.append(n))
             for n, layer in enumerate(tiny.model.clip.vision_model.encoder.layers)]
    try:
        with torch.no_grad():
            feats = model.encode_image(px[:1])
            logits = model.decode(model.adapt_image(feats), model.encode_text(ids, mask))
    finally:
        for h in hooks:
            h.remove()
    assert logits.shape == (2, tiny.image_size, tiny.image_size)  # one image pass, two prompts
    # sub-modules are called directly, so check that the last block's attention never ran
    calls = []
    late = tiny.model.clip.vision_model.encoder.layers[-1].self_attn.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        model.encode_image(px[:1])
    late.remove()
    assert calls == [] and len(feats) == len(tiny.config.extract_layers)


@pytest.mark.slow
def test_full_architecture_counts_and_equivalence(full_model_dir):
    loaded = load_model(full_model_dir, device="cpu", precision="fp32")
    assert sum(p.numel() for p in loaded.model.parameters()) == 150_747_746
    assert sum(p.numel() for p in loaded.model.decoder.parameters()) == 1_127_009
    assert not any(p.requires_grad for p in loaded.model.parameters())
    tok = loaded.tokenizer(["liver"], return_tensors="pt")
    px = torch.randn(1, 3, 352, 352)
    adapters = build_adapters(AdapterConfig.from_variant("dense-vl", loaded.config))
    assert count_trainable(adapters) == PAPER_COUNTS["dense-vl"]
    adapters.zero_up()
    with torch.no_grad():
        ref = loaded.model(input_ids=tok.input_ids, attention_mask=tok.attention_mask, pixel_values=px).logits
        ours = VLSMModel(loaded.model, adapters)(px, tok.input_ids, tok.attention_mask)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
