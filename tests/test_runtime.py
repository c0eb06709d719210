"""The ONNX Runtime image encoder (core/runtime): agreement with torch, fallback, cache, choice."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from napari_vlsm.core import forward
from napari_vlsm.core.errors import ModelLoadError
from napari_vlsm.core.loading import load_model
from napari_vlsm.core.runtime import agreement, export

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytestmark = pytest.mark.usefixtures("one_thread")
EPS32 = float(torch.finfo(torch.float32).eps)


@pytest.fixture(scope="module")
def runtime_cache(tmp_path_factory):
    """One cache folder for the module: each kind is exported once, then reused."""
    path = tmp_path_factory.mktemp("runtime-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NAPARI_VLSM_RUNTIME_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def int8(tiny_model_dir, runtime_cache):
    return load_model(tiny_model_dir, device="cpu", backend="onnx-int8")


@pytest.fixture(scope="module")
def fp32_torch(tiny_model_dir):
    return load_model(tiny_model_dir, device="cpu", precision="fp32")


def _pixels(loaded, batch=3, seed=0):
    return torch.randn(batch, 3, loaded.image_size, loaded.image_size, generator=torch.Generator().manual_seed(seed))


def _torch_taps(loaded, px):
    model = forward.VLSMModel(loaded.model, runtimes=loaded.runtimes)
    model.detach_runtimes()
    with torch.inference_mode():
        return model.encode_image(px)


def test_int8_encoder_agrees_with_torch_within_the_int8_bound(int8, fp32_torch):
    assert int8.backend == "onnx-int8"
    model = forward.VLSMModel(int8.model, runtimes=int8.runtimes)
    assert model.image_runtime is not None
    px = _pixels(int8)
    with torch.inference_mode():
        taps = model.encode_image(px)
    reference = _torch_taps(fp32_torch, px)
    assert [t.shape for t in taps] == [r.shape for r in reference]
    errors = agreement.relative_errors(reference, taps)
    # int8 rounds each tensor to 255 steps of its range: errors of ~1 %, never fp32-small, never 5 %
    assert all(1e-4 < e < agreement.BOUNDS["onnx-int8"] for e in errors), errors


def test_fp32_graph_matches_torch_to_fp32_rounding(tiny_model_dir, runtime_cache, fp32_torch):
    loaded = load_model(tiny_model_dir, device="cpu", precision="fp32", backend="onnx-fp32")
    assert loaded.backend == "onnx-fp32"
    px = _pixels(loaded, batch=2, seed=1)
    with torch.inference_mode():
        taps = forward.VLSMModel(loaded.model, runtimes=loaded.runtimes).encode_image(px)
    errors = agreement.relative_errors(_torch_taps(fp32_torch, px), taps)
    assert max(errors) < agreement.BOUNDS["onnx-fp32"] == 2**10 * EPS32, errors


def test_text_and_decoder_graphs_match_torch_to_fp32_rounding(int8, fp32_torch):
    fast = forward.VLSMModel(int8.model, runtimes=int8.runtimes)
    exact = forward.VLSMModel(fp32_torch.model, runtimes=fp32_torch.runtimes)
    exact.detach_runtimes()
    assert fast.text_runtime is not None and fast.decoder_runtime is not None
    bound = 2**10 * EPS32
    for prompts in (["a"], ["left kidney", "a small round lesion near the liver"]):  # other P and L
        ids = int8.tokenizer(prompts, padding=True, return_tensors="pt").input_ids
        with torch.inference_mode():
            cond, ref = fast.encode_text(ids), exact.encode_text(ids)
        assert agreement.relative_errors([ref], [cond])[0] < bound
    px = _pixels(int8, batch=2)
    with torch.inference_mode():
        acts = exact.encode_image(px)
        logits, ref = fast.decode(acts, cond), exact.decode(acts, cond)
        single, ref_single = fast.decode([a[:1] for a in acts], cond), exact.decode([a[:1] for a in acts], cond)
    assert logits.shape == ref.shape == (2, int8.image_size, int8.image_size)
    assert single.shape == ref_single.shape  # one image, two prompts: expanded like torch does
    assert max(agreement.relative_errors([ref, ref_single], [logits, single])) < bound


def test_training_keeps_torch_where_gradients_flow(int8, monkeypatch):
    from napari_vlsm.core.adapters import AdapterConfig, build_adapters

    adapters = build_adapters(AdapterConfig.from_variant("shallow-vl", int8.config))
    model = forward.VLSMModel(int8.model, adapters, int8.runtimes)
    for part in (model.text_runtime, model.decoder_runtime):
        monkeypatch.setattr(part, "session", None)  # any use would fail
    ids = int8.tokenizer(["a"], return_tensors="pt").input_ids
    with torch.no_grad():
        acts = model.adapt_image(model.encode_image(_pixels(int8, batch=1)))
    logits = model.decode([a.requires_grad_(True) for a in acts], model.encode_text(ids))  # text adapters
    logits.sum().backward()
    assert all(p.grad is not None for p in adapters.text_shallow.parameters())


def test_segmenter_predicts_through_the_runtime_and_says_so(int8, fp32_torch, monkeypatch):
    from napari_vlsm.cli.info import _text
    from napari_vlsm.core.engine import Segmenter

    runtime = forward.VLSMModel(int8.model, runtimes=int8.runtimes).image_runtime
    calls = []
    real = type(runtime).__call__
    monkeypatch.setattr(type(runtime), "__call__", lambda self, *t: (
        calls.append(t[0].shape[0]) if self is runtime else None) or real(self, *t))
    image = (np.random.default_rng(0).random((90, 110)) * 255).astype(np.uint8)
    seg = Segmenter(loaded=int8)
    fast = seg.predict(image, ["a", "b"])
    assert calls == [1]
    exact = Segmenter(loaded=fp32_torch).predict(image, ["a", "b"])
    for p, q in zip(fast, exact):  # masks: only pixels near the threshold may flip
        assert (p.mask == q.mask).mean() > 0.97
    info = seg.info()
    assert info["backend"] == "onnx-int8" and info["precision"] == "fp32"
    assert seg.provenance()["backend"] == "onnx-int8"
    text = _text({**info, "trainable_parameters_by_variant": {}})
    assert "backend       onnx-int8" in text


@pytest.mark.parametrize("variant", ["dense-v", "dense-vl"])
def test_dense_variants_stay_on_torch(int8, variant, monkeypatch):
    from napari_vlsm.core.adapters import AdapterConfig, build_adapters

    runtime = forward.VLSMModel(int8.model, runtimes=int8.runtimes).image_runtime
    real = type(runtime).__call__
    monkeypatch.setattr(type(runtime), "__call__", lambda self, *t: pytest.fail("dense features via the runtime")
                        if self is runtime else real(self, *t))
    adapters = build_adapters(AdapterConfig.from_variant(variant, int8.config))
    model = forward.VLSMModel(int8.model, adapters, int8.runtimes)
    with torch.inference_mode():
        taps = model.encode_image(_pixels(int8, batch=1))
    assert len(taps) == len(model.extract_layers)


def test_shallow_training_precomputes_with_the_runtime(int8, monkeypatch):
    from types import SimpleNamespace

    from napari_vlsm.core.training import TrainConfig, finetune, run_to_end

    runtime = forward.VLSMModel(int8.model, runtimes=int8.runtimes).image_runtime
    calls = []
    real = type(runtime).__call__
    monkeypatch.setattr(type(runtime), "__call__", lambda self, *t: (
        calls.append(t[0].shape[0]) if self is runtime else None) or real(self, *t))
    rng = np.random.default_rng(0)
    samples = []
    for i in range(4):
        img = rng.random((64, 64)).astype(np.float32)
        samples.append(SimpleNamespace(image=img, mask=img > 0.5, prompts=("bright",), name=f"s{i}"))
    config = TrainConfig(variant="shallow-vl", max_steps=2, batch_size=2, lr=1e-3)
    result = run_to_end(finetune(int8, samples, [], config), lambda event: None)
    assert result.steps == 2 and sum(calls) == 4  # every training image encoded once, by the runtime


def test_the_cache_is_reused_and_checked(tiny_model_dir, runtime_cache, int8, monkeypatch):
    folders = [p for p in runtime_cache.iterdir() if "onnx-int8" in p.name]
    assert len(folders) == 1 and not any(p.name.startswith(".") for p in runtime_cache.iterdir())
    meta = json.loads((folders[0] / export.META_NAME).read_text())
    assert meta["agreement"]["ok"] and meta["sha256"] == export.file_sha256(folders[0] / export.GRAPH_NAME)
    monkeypatch.setattr(export, "export_fp32", lambda *a: pytest.fail("exported again"))
    again = load_model(tiny_model_dir, device="cpu", backend="onnx-int8")
    assert again.backend == "onnx-int8"
    # a damaged graph is refused: torch, with a warning that names the folder
    graph = folders[0] / export.GRAPH_NAME
    saved = graph.read_bytes()
    try:
        graph.write_bytes(saved[:-10])
        with pytest.warns(UserWarning, match="sha256"):
            damaged = load_model(tiny_model_dir, device="cpu", backend="onnx-int8")
        assert damaged.backend == "torch" and forward.VLSMModel(damaged.model, runtimes=damaged.runtimes).image_runtime is None
    finally:
        graph.write_bytes(saved)
    monkeypatch.undo()  # exporting is allowed again: a graph deleted by hand is built again
    graph.unlink()
    rebuilt = load_model(tiny_model_dir, device="cpu", backend="onnx-int8")
    assert rebuilt.backend == "onnx-int8" and graph.is_file()


def test_a_graph_that_disagrees_is_refused(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_VLSM_RUNTIME_CACHE", str(tmp_path))
    monkeypatch.setitem(agreement.BOUNDS, "onnx-int8", 1e-9)  # no int8 graph can meet this
    with pytest.warns(UserWarning, match="disagrees with torch"):
        loaded = load_model(tiny_model_dir, device="cpu", backend="onnx-int8")
    assert loaded.backend == "torch" and forward.VLSMModel(loaded.model, runtimes=loaded.runtimes).image_runtime is None
    (meta,) = [json.loads(p.read_text()) for p in tmp_path.glob(f"*/{export.META_NAME}")]
    assert meta["reduce_range"] and not meta["agreement_8bit"]["ok"]  # 7-bit weights were tried too
    assert not meta["agreement"]["ok"]


def test_auto_picks_int8_only_on_a_cpu_without_bf16(tiny_model_dir, runtime_cache, int8, monkeypatch):
    monkeypatch.setenv("NAPARI_VLSM_NATIVE_BF16", "0")
    assert load_model(tiny_model_dir, device="cpu").backend == "onnx-int8"
    explicit = load_model(tiny_model_dir, device="cpu", precision="fp32")  # fp32 asked: fp32 everywhere
    assert explicit.backend == "torch" and explicit.precision == "fp32"
    monkeypatch.setenv("NAPARI_VLSM_NATIVE_BF16", "1")
    bf16 = load_model(tiny_model_dir, device="cpu")
    assert bf16.backend == "torch" and bf16.precision == "bf16"


def test_without_onnxruntime_auto_is_torch_and_explicit_is_a_clear_error(tiny_model_dir, monkeypatch, recwarn):
    monkeypatch.setenv("NAPARI_VLSM_NATIVE_BF16", "0")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    loaded = load_model(tiny_model_dir, device="cpu")
    assert loaded.backend == "torch" and loaded.precision == "fp32"
    assert not [w for w in recwarn if "napari-vlsm" in str(w.message)]  # silent: nothing is wrong
    with pytest.raises(ModelLoadError, match="onnxruntime"):
        load_model(tiny_model_dir, device="cpu", backend="onnx-int8")
    with pytest.raises(ModelLoadError, match="unknown backend"):
        load_model(tiny_model_dir, device="cpu", backend="openvino")
