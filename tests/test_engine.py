"""Segmenter: shapes at image size, one image pass per image, caches, equivalence, precision, adapters."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from napari_vlsm.core import preprocess
from napari_vlsm.core.adapters import AdapterConfig, build_adapters
from napari_vlsm.core.adapters.checkpoint import build_metadata, save_adapter
from napari_vlsm.core.engine import Prediction, Segmenter, variant_parameters
from napari_vlsm.core.errors import AdapterError, PromptError, SettingError, VLSMError
from napari_vlsm.core.loading import load_model


@pytest.fixture()
def seg(loaded):
    return Segmenter(loaded=loaded)


def count_image_passes(seg, monkeypatch) -> list[int]:
    """Record the batch size of every encode_image call (the expensive part of a forward)."""
    calls = []
    original = type(seg.vlsm).encode_image

    def counting(self, pixel_values):
        calls.append(pixel_values.shape[0])
        return original(self, pixel_values)

    monkeypatch.setattr(type(seg.vlsm), "encode_image", counting)
    return calls


def _images():
    rng = np.random.default_rng(0)
    nan_float = rng.normal(size=(41, 57)).astype(np.float32)
    nan_float[:5] = np.nan
    return {
        "grey-uint8": rng.integers(0, 256, (37, 53), dtype=np.uint8),
        "rgb-uint8": rng.integers(0, 256, (64, 31, 3), dtype=np.uint8),
        "rgba-uint8": rng.integers(0, 256, (20, 90, 4), dtype=np.uint8),
        "uint16": rng.integers(0, 65535, (70, 70), dtype=np.uint16),
        "int16-negative": rng.integers(-1024, 1500, (33, 47), dtype=np.int16),
        "float-nan": nan_float,
        "one-row": rng.random((1, 200)).astype(np.float64),
    }


@pytest.mark.parametrize("name", list(_images()))
def test_prediction_has_the_image_height_and_width(seg, name):
    image = _images()[name]
    preds = seg.predict(image, ["liver", "kidney"])
    assert [p.prompt for p in preds] == ["liver", "kidney"]
    for p in preds:
        assert p.probability.shape == image.shape[:2] and p.probability.dtype == np.float32
        assert p.mask.shape == image.shape[:2] and p.mask.dtype == bool
        assert np.isfinite(p.probability).all()
        assert ((p.probability >= 0) & (p.probability <= 1)).all()


def test_several_prompts_one_image_pass_and_cache_hit(seg, monkeypatch):
    calls = count_image_passes(seg, monkeypatch)
    image = np.random.default_rng(1).random((40, 40)).astype(np.float32)
    first = seg.predict(image, ["a", "b", "c", "d"])
    assert calls == [1]  # four prompts, one image pass
    again = seg.predict(image, "e")  # a new prompt on the same image
    assert calls == [1] and seg.cache_stats()["image"]["hits"] == 1
    np.testing.assert_allclose(seg.predict(image, "b")[0].probability, first[1].probability, atol=1e-5)
    seg.predict(image.copy(), "b", window=(0.0, 0.5))  # another window is another input
    assert calls == [1, 1]
    assert again[0].shape == (40, 40)


def test_with_threshold_needs_no_model_call(seg, monkeypatch):
    pred = seg.predict(np.random.default_rng(2).random((30, 30)), "x")[0]
    calls = count_image_passes(seg, monkeypatch)
    low, high = pred.with_threshold(0.0), pred.with_threshold(1.0)
    assert calls == [] and low.mask.all() and low.probability is pred.probability
    np.testing.assert_array_equal(high.mask, pred.probability >= 1.0)
    with pytest.raises(SettingError, match="threshold"):
        pred.with_threshold(1.5)
    with pytest.raises(SettingError):
        seg.predict(np.zeros((8, 8)), "x", threshold=-0.1)


def test_engine_equals_plain_transformers_forward(seg, loaded):
    image = np.random.default_rng(3).integers(0, 256, (45, 60, 3), dtype=np.uint8)
    prompts = ["polyp", "a small round polyp"]
    px = preprocess.to_model_input(image, loaded.image_size, loaded.image_mean, loaded.image_std)
    tok = loaded.tokenizer(prompts, padding=True, return_tensors="pt")
    with torch.no_grad():  # the stock CLIPSeg forward, one image-text pair per prompt
        logits = loaded.model(input_ids=tok.input_ids, attention_mask=tok.attention_mask,
                              pixel_values=px.expand(2, -1, -1, -1)).logits
    reference = torch.sigmoid(torch.nn.functional.interpolate(
        logits[:, None], size=(45, 60), mode="bilinear", align_corners=False)[:, 0]).numpy()
    ours = np.stack([p.probability for p in seg.predict(image, prompts)])
    np.testing.assert_allclose(ours, reference, atol=1e-4)


def scale_logits(loaded, factor: float):
    """Random CLIPSeg decoders give logits of +-400 (tiny) to +-3000 (full), where a sigmoid is a
    step and any rounding flips boundary pixels; a trained model's logits are O(10). Scaling the
    last layer gives random weights that scale without changing anything else."""
    last = [m for m in loaded.model.decoder.transposed_convolution.modules() if hasattr(m, "weight")][-1]
    with torch.no_grad():
        last.weight /= factor
        last.bias /= factor
    return loaded


@pytest.fixture(scope="module")
def moderate_logits(tiny_model_dir):
    return lambda precision: scale_logits(load_model(tiny_model_dir, device="cpu", precision=precision), 40)


def test_bf16_agrees_with_fp32(moderate_logits):
    image = np.random.default_rng(4).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    fp32 = Segmenter(loaded=moderate_logits("fp32")).predict(image, ["liver", "spleen"])
    bf16 = Segmenter(loaded=moderate_logits("bf16")).predict(image, ["liver", "spleen"])
    for a, b in zip(fp32, bf16):
        assert b.probability.dtype == np.float32
        spread = a.probability.max() - a.probability.min()
        assert spread > 0.2  # the comparison means something: probabilities vary
        assert np.abs(a.probability - b.probability).max() < 0.05


def test_prompt_validation(seg):
    image = np.zeros((16, 16), np.uint8)
    for bad in ("", "   ", [], ["ok", " \t"], [3], None):
        with pytest.raises(PromptError):
            seg.predict(image, bad)
    preds = seg.predict(image, ["  liver  ", "Leber größe", "肝臓"])  # non-ASCII is fine
    assert [p.prompt for p in preds] == ["liver", "Leber größe", "肝臓"]


def test_long_prompt_truncated_with_a_warning(seg, loaded, monkeypatch):
    limit = loaded.config.text_config.max_position_embeddings
    seen = []
    original = type(seg.vlsm).encode_text

    def spy(self, input_ids, attention_mask=None):
        seen.append(input_ids)
        return original(self, input_ids, attention_mask)

    monkeypatch.setattr(type(seg.vlsm), "encode_text", spy)
    image = np.random.default_rng(5).random((20, 20))
    long = "kidney " * 40  # the tiny tokenizer makes one token per character
    with pytest.warns(UserWarning, match="truncated"):
        pred = seg.predict(image, long)[0]
    ids = seen[-1][0].tolist()
    assert len(ids) == limit and ids[-1] == loaded.tokenizer.eos_token_id  # end-of-text kept
    assert pred.prompt == long.strip()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a prompt within the limit does not warn
        seg.predict(image, "kidney " * 5)


def test_dense_adapter_change_invalidates_image_cache_shallow_does_not(seg, loaded, monkeypatch):
    calls = count_image_passes(seg, monkeypatch)
    image = np.random.default_rng(6).random((24, 24)).astype(np.float32)
    seg.predict(image, "x")
    seg.set_adapters(build_adapters(AdapterConfig.from_variant("shallow-vl", loaded.config)))
    shallow = seg.predict(image, "x")[0]
    assert calls == [1]  # shallow adapters act after the encoder: features reused
    dense = build_adapters(AdapterConfig.from_variant("dense-v", loaded.config))
    seg.set_adapters(dense)
    seg.predict(image, "x")
    assert calls == [1, 1]
    seg.predict(image, "y")
    assert calls == [1, 1]  # same dense adapters: cached
    with torch.no_grad():
        dense.vision_dense["0"]["attn"].up.bias += 1.0
    seg.set_adapters(dense)  # in-place change announced: a new version
    seg.predict(image, "x")
    assert calls == [1, 1, 1]
    seg.clear_adapter()
    assert seg.adapters is None and seg.variant == "dense-v"
    plain = seg.predict(image, "x")[0]
    assert calls == [1, 1, 1]  # the adapter-free features are still cached
    assert not np.allclose(plain.probability, shallow.probability)  # text adapters changed cond


def test_adapter_file_at_construction_and_provenance(loaded, tmp_path):
    adapters = build_adapters(AdapterConfig.from_variant("shallow-v", loaded.config))
    path = save_adapter(tmp_path / "liver.safetensors", adapters, build_metadata(adapters, loaded))
    seg = Segmenter(loaded=loaded, adapter=path)
    assert seg.variant == "shallow-v" and seg.adapter_path == str(path)
    prov = seg.provenance()
    import hashlib

    assert prov["adapter_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert prov["variant"] == "shallow-v" and prov["model_fingerprint"] == loaded.fingerprint
    assert prov["precision"] == "fp32" and prov["device"] == "cpu"
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(AdapterError):
        Segmenter(loaded=loaded, adapter=bad)
    with pytest.raises(AdapterError):
        Segmenter(loaded=loaded, adapter=tmp_path / "missing.safetensors")


def test_info_counts_variant_parameters(loaded):
    seg = Segmenter(loaded=loaded, variant="dense-vl")
    info = seg.info()
    expected = sum(p.numel() for p in build_adapters(AdapterConfig.from_variant("dense-vl", loaded.config)).parameters())
    assert info["trainable_parameters"] == expected == variant_parameters(loaded.config, "dense-vl") > 0
    assert info["base_parameters"] == sum(p.numel() for p in loaded.model.parameters())
    assert info["variant"] == "dense-vl" and info["precision"] == "fp32" and info["device"] == "cpu"
    assert info["fingerprint"] == loaded.fingerprint and "image" in info["cache"]
    with pytest.raises(AdapterError):
        Segmenter(loaded=loaded, variant="deep-v")


def test_out_of_memory_halves_the_batch(seg, monkeypatch):
    original = type(seg.vlsm).encode_image
    sizes = []

    def small_device(self, pixel_values):
        sizes.append(pixel_values.shape[0])
        if pixel_values.shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(self, pixel_values)

    stack = np.random.default_rng(7).random((7, 20, 20)).astype(np.float32)
    expected = [seg.predict(s, "x", window=(0.0, 1.0))[0].probability for s in stack]
    monkeypatch.setattr(type(seg.vlsm), "encode_image", small_device)
    seg.clear_cache()
    got = list(seg.predict_stack(stack, "x", batch_size=6, window=(0.0, 1.0)))
    assert [i for i, _ in got] == list(range(7))
    for (_, preds), ref in zip(got, expected):
        np.testing.assert_allclose(preds[0].probability, ref, atol=1e-5)
    assert sizes[:2] == [6, 3] and max(sizes[2:]) <= 2  # halved until it fits, then stays small

    def no_memory(self, pixel_values):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(type(seg.vlsm), "encode_image", no_memory)
    with pytest.raises(VLSMError, match="out of cpu memory"):
        seg.predict(np.zeros((9, 9)) + 0.5, "x")


def test_huge_image_probability_at_full_resolution(seg):
    image = np.zeros((4000, 4000), np.uint8)
    image[1000:3000, 1500:2500] = 200
    pred = seg.predict(image, "bright box")[0]
    assert pred.probability.shape == (4000, 4000) and pred.mask.shape == (4000, 4000)


def test_prediction_is_a_plain_value():
    p = Prediction("x", np.array([[0.2, 0.7]], np.float32), 0.5)
    assert p.mask.tolist() == [[False, True]] and p.shape == (1, 2)


@pytest.mark.slow
def test_bf16_agrees_with_fp32_full_architecture(full_model_dir):
    image = np.random.default_rng(8).integers(0, 256, (300, 260, 3), dtype=np.uint8)
    fp32 = Segmenter(loaded=scale_logits(load_model(full_model_dir, device="cpu", precision="fp32"), 100))
    bf16 = Segmenter(loaded=scale_logits(load_model(full_model_dir, device="cpu", precision="bf16"), 100))
    a = fp32.predict(image, "liver")[0]
    b = bf16.predict(image, "liver")[0]
    diff = np.abs(a.probability - b.probability)
    # measured at 352 x 352 input: max 0.053, mean 0.0026, masks agree on 99.7 % of pixels
    assert diff.max() < 0.1 and diff.mean() < 0.01 and (a.mask == b.mask).mean() > 0.99


def test_low_precision_copy_predicts_exactly_what_autocast_does(tiny_model_dir, monkeypatch):
    from napari_vlsm.core import engine

    loaded = load_model(tiny_model_dir, device="cpu", precision="bf16")
    image = np.random.default_rng(9).integers(0, 256, (40, 52, 3), dtype=np.uint8)
    fast = Segmenter(loaded=loaded)
    assert fast._runner.base is not loaded.model and fast.vlsm.base is loaded.model  # trainer keeps fp32
    linear = fast._runner.base.clip.text_model.encoder.layers[0].mlp.fc1
    assert linear.weight.dtype == torch.bfloat16
    assert fast._runner.base.clip.text_model.embeddings.token_embedding.weight is \
        loaded.model.clip.text_model.embeddings.token_embedding.weight  # shared, not copied
    assert Segmenter(loaded=loaded)._runner.base is fast._runner.base  # one copy per model
    monkeypatch.setattr(engine, "LOW_PRECISION_COPY", False)
    plain = Segmenter(loaded=loaded)
    assert plain._runner is plain.vlsm
    for a, b in zip(fast.predict(image, ["liver", "spleen"]), plain.predict(image, ["liver", "spleen"])):
        np.testing.assert_array_equal(a.probability, b.probability)
    assert loaded.model.clip.text_model.encoder.layers[0].mlp.fc1.weight.dtype == torch.float32
