"""Feature and text caches: LRU order, byte budget, keys that see every input that matters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_vlsm.core.cache import FeatureCache, TextCache, feature_key, image_digest, tensor_nbytes
from napari_vlsm.core.engine import Segmenter
from napari_vlsm.core.loading import load_model


def feats(kib: int) -> list[torch.Tensor]:
    return [torch.zeros(kib * 256)]  # float32: kib KiB


def test_lru_evicts_least_recently_used_within_budget():
    cache = FeatureCache(max_bytes=3 * 1024)
    for key in "abc":
        assert cache.put(key, feats(1))
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("d", feats(1))
    assert "b" not in cache and all(k in cache for k in "acd")
    assert cache.nbytes == 3 * 1024
    stats = cache.stats()
    assert stats["evictions"] == 1 and stats["hits"] == 1 and stats["entries"] == 3
    assert cache.get("b") is None and cache.stats()["misses"] == 1
    cache.put("big", feats(2))  # needs two entries' room
    assert cache.nbytes <= cache.max_bytes and "big" in cache and len(cache) == 2


def test_entry_larger_than_budget_is_not_stored_and_evicts_nothing():
    cache = FeatureCache(max_bytes=2048)
    cache.put("a", feats(1))
    assert not cache.put("huge", feats(3))
    assert "a" in cache and "huge" not in cache and cache.stats()["skipped"] == 1
    assert not FeatureCache(0).put("x", feats(1))


def test_replacing_a_key_keeps_the_byte_count_right_and_drop():
    cache = FeatureCache(max_bytes=10 * 1024)
    cache.put(("img", 1), feats(2))
    cache.put(("img", 1), feats(1))
    assert cache.nbytes == 1024 and len(cache) == 1
    cache.put(("img", 2), feats(1))
    assert cache.drop(lambda key: key[1] == 1) == 1 and cache.nbytes == 1024
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0


def test_sizes_of_tensors_arrays_and_lists():
    assert tensor_nbytes([torch.zeros(3, 4), torch.zeros(2, dtype=torch.bfloat16)]) == 48 + 4
    assert tensor_nbytes(np.zeros(10, np.float64)) == 80
    with pytest.raises(TypeError):
        tensor_nbytes("text")


def test_digest_sees_pixels_shape_and_dtype():
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert image_digest(a) == image_digest(a.copy())
    assert image_digest(a) != image_digest(a.reshape(4, 3))
    assert image_digest(a) != image_digest(a.astype(np.int8))
    b = a.copy()
    b[2, 3] += 1
    assert image_digest(a) != image_digest(b)
    assert image_digest(a.T) == image_digest(np.ascontiguousarray(a.T))  # views hash by content
    assert feature_key("d", None, "m", None) != feature_key("d", (0, 1), "m", None)
    assert feature_key("d", None, "m", None) != feature_key("d", None, "m", 3)


def test_text_cache_is_bounded_and_versioned():
    cache = TextCache(max_entries=2)
    cache.put("liver", 1, torch.ones(4))
    assert cache.get("liver", 2) is None and cache.get("liver", 1) is not None
    cache.put("kidney", 1, torch.ones(4))
    cache.put("spleen", 1, torch.ones(4))
    assert len(cache) == 2 and cache.get("liver", 1) is None
    assert cache.stats() == {"hits": 1, "misses": 2, "entries": 2}


def test_engine_cache_evicts_under_a_tiny_budget(tiny_model_dir):
    loaded = load_model(tiny_model_dir, device="cpu", precision="fp32")
    probe = Segmenter(loaded=loaded)
    rng = np.random.default_rng(0)
    images = [rng.random((16, 16)).astype(np.float32) for _ in range(3)]
    probe.predict(images[0], "x")
    one = probe.cache_stats()["image"]["bytes"]
    assert one > 0
    seg = Segmenter(loaded=loaded, cache_bytes=2 * one)  # room for two images
    for image in images:
        seg.predict(image, "x")
    stats = seg.cache_stats()["image"]
    assert stats["entries"] == 2 and stats["evictions"] == 1 and stats["bytes"] <= 2 * one
    seg.predict(images[2], "y")  # newest: still cached
    seg.predict(images[0], "y")  # oldest: was evicted
    stats = seg.cache_stats()["image"]
    assert stats["hits"] == 1 and stats["misses"] == 4
    small = Segmenter(loaded=loaded, cache_bytes=one - 1)  # nothing fits: still predicts
    assert small.predict(images[0], "x")[0].shape == (16, 16)
    assert small.cache_stats()["image"]["entries"] == 0
