"""One model-input path: the trainer sees exactly what prediction saw (tokens, pixels, window)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_vlsm.core import model_input
from napari_vlsm.core.engine import Segmenter
from napari_vlsm.core.forward import VLSMModel
from napari_vlsm.core.store import CorrectionStore
from napari_vlsm.core.training.loop import amp_factory, seeded_adapters
from napari_vlsm.core.training.memory import MemoryLimit
from napari_vlsm.core.training.prepare import PromptTable, prepare
from napari_vlsm.core.volume import volume_window

pytestmark = pytest.mark.usefixtures("one_thread")


def _ct_volume(seed: int = 0) -> np.ndarray:
    """A small CT-like int16 volume (HU): air, soft tissue, bone in the first slices only (so a
    later slice's own window differs from the volume's)."""
    rng = np.random.default_rng(seed)
    vol = rng.normal(40, 30, (5, 40, 48)).astype(np.int16)
    vol[:, :, :6] = -1000
    vol[:2, 10:20, 20:30] = 900
    return vol


def _prepared(loaded, samples, variant: str):
    """prepare() run to its end, as the trainer runs it (encode only for the fast path)."""
    model = VLSMModel(loaded.model, seeded_adapters(variant, loaded, 0))
    encode = not model.image_features_depend_on_adapters
    gen = prepare(samples, "training", loaded, model, PromptTable(), encode, 4, amp_factory(loaded),
                  MemoryLimit(4, loaded.device, "preparing"))
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def _spy_encode_image(monkeypatch) -> list:
    seen = []
    real = VLSMModel.encode_image

    def spy(self, pixel_values):
        seen.append(pixel_values.detach().clone())
        return real(self, pixel_values)

    monkeypatch.setattr(VLSMModel, "encode_image", spy)
    return seen


def test_a_stored_window_changes_the_training_input(loaded, tmp_path):
    vol = _ct_volume()
    store = CorrectionStore(tmp_path / "store")
    mask = np.zeros(vol.shape[1:], bool)
    mask[10:20, 20:30] = True
    store.add(vol[2], mask, "tissue", source="ct", slice_index=2)  # no window: its own percentiles
    store.add(vol[2], mask, "tissue", source="ct", slice_index=3, window=(-160.0, 240.0))  # a CT window
    by_window = {s.window: s for s in store.samples()}
    own = _prepared(loaded, [by_window[None]], "dense-v").pixels[0]
    windowed = _prepared(loaded, [by_window[(-160.0, 240.0)]], "dense-v").pixels[0]
    assert not torch.equal(own, windowed)
    torch.testing.assert_close(windowed, model_input.pixels(loaded, [vol[2]], (-160.0, 240.0))[0], rtol=0, atol=0)
    torch.testing.assert_close(own, model_input.pixels(loaded, [vol[2]], None)[0], rtol=0, atol=0)


@pytest.mark.parametrize("variant", ["dense-v", "shallow-vlc"])  # kept pixels / precomputed features
def test_a_volume_slice_trains_on_exactly_the_input_prediction_used(loaded, tmp_path, monkeypatch, variant):
    vol = _ct_volume(1)
    seg = Segmenter(loaded=loaded)
    seen = _spy_encode_image(monkeypatch)
    got = dict(seg.predict_stack(vol, "bone", batch_size=5))  # window=None: one window per volume
    predicted = seen[-1][3]  # slice 3 of the one batch
    store = CorrectionStore(tmp_path / "store")
    store.add(vol[3], got[3][0].mask, "bone", source="ct", slice_index=3, window=volume_window(vol))
    seen.clear()
    data = _prepared(loaded, store.samples(), variant)
    trained = data.pixels[0] if data.pixels is not None else seen[-1][0]
    torch.testing.assert_close(trained, predicted, rtol=0, atol=0)
    # the slice's own window (what the trainer used before) would have been another input
    assert not torch.equal(model_input.pixels(loaded, [vol[3]])[0], predicted)


def test_prompts_are_tokenised_by_one_rule(loaded, monkeypatch):
    long = "kidney " * 40  # the tiny tokenizer makes one token per character: past the limit
    limit = model_input.token_limit(loaded)
    monkeypatch.setattr(loaded.tokenizer, "model_max_length", 10_000)  # not what decides
    with pytest.warns(UserWarning, match="truncated"):
        table = PromptTable()
        table.add(["liver", long])
        train_ids = table.tokenize(loaded)
    with pytest.warns(UserWarning, match="truncated"):
        engine_ids, _ = model_input.tokenize(loaded, ["liver", long])
    assert train_ids.shape[1] == limit and torch.equal(train_ids, engine_ids)
    assert train_ids[1, -1] == loaded.tokenizer.eos_token_id  # end-of-text kept
