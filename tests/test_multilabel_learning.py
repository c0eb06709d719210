"""Corrections on two structures of one image, stored per structure, learnt by ONE finetune in one
adapter: the trainer sees both prompts and each structure's own Dice rises (tiny random model)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_vlsm.core import labelmap as LM
from napari_vlsm.core.metrics import dice
from napari_vlsm.core.store import CorrectionStore
from napari_vlsm.core.training import TrainConfig, finetune, run_to_end

from helpers import drawable_tiny

PROMPTS = ("bright disk", "grey square")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    """The tiny random model with a last decoder layer able to draw a region (helpers.drawable_tiny)."""
    return drawable_tiny(tiny_model_dir)


def scan(seed: int, size: int = 64):
    """An image with a bright disk and a grey square, and its 2-structure label map."""
    rng = np.random.default_rng(seed)
    img = rng.normal(0.5, 0.05, (size, size)).astype(np.float32)
    labels = np.zeros((size, size), np.uint8)
    yy, xx = np.mgrid[:size, :size]
    cy, cx = rng.integers(14, 24, 2)
    disk = (yy - cy) ** 2 + (xx - cx) ** 2 < 100
    img[disk] += 0.45
    labels[disk] = 1
    y0, x0 = rng.integers(34, 40, 2)
    img[y0:y0 + 22, x0:x0 + 22] += 0.3
    labels[y0:y0 + 22, x0:x0 + 22] = 2
    return img, labels


def store_corrections(store, n: int):
    """What the dock stores for a corrected slice of a 2-structure layer: one sample per structure."""
    structures = LM.legend(PROMPTS)
    for i in range(n):
        img, labels = scan(i)
        for s, mask in zip(structures, LM.masks(labels, len(structures))):
            store.add(img, mask, [s.prompt], source=f"scan{i}.png")


def test_two_structures_are_stored_apart_and_learnt_in_one_adapter(loaded, tmp_path):
    store = CorrectionStore(tmp_path / "project")
    store_corrections(store, 6)
    assert store.targets() == sorted(PROMPTS)
    samples = store.samples()
    assert len(samples) == 12 and {s.prompts for s in samples} == {(p,) for p in PROMPTS}
    events = []
    config = TrainConfig(variant="shallow-vlc", lr=3e-3, max_steps=300, batch_size=8, seed=0)
    result = run_to_end(finetune(loaded, samples, [], config), events.append)
    assert set(PROMPTS) <= set(result.metadata["prompts"])  # one adapter, both structures

    before, after = scores(loaded, None), scores(loaded, result.adapters)
    for prompt in PROMPTS:  # each structure's own mask improved
        assert after["mask"][prompt] > before["mask"][prompt] + 0.1, (before, after)
    for prompt in PROMPTS:  # and so did its part of the composed label map
        assert after["label map"][prompt] > before["label map"][prompt], (before, after)


def scores(loaded, adapters, n: int = 6) -> dict:
    """Mean Dice per structure on the corrected scans: its own mask, and its value in the label map."""
    from napari_vlsm.core.engine import Segmenter

    seg = Segmenter(loaded=loaded)
    if adapters is not None:
        seg.set_adapters(adapters)
    out = {"mask": {p: [] for p in PROMPTS}, "label map": {p: [] for p in PROMPTS}}
    for i in range(n):
        img, labels = scan(i)
        preds = seg.predict(img, list(PROMPTS))
        composed = LM.compose(np.stack([p.probability for p in preds]), 0.5)
        for value, (pred, truth) in enumerate(zip(preds, LM.masks(labels, 2)), start=1):
            out["mask"][pred.prompt].append(dice(pred.mask, truth))
            out["label map"][pred.prompt].append(dice(composed == value, truth))
    return {kind: {p: float(np.mean(v)) for p, v in d.items()} for kind, d in out.items()}
