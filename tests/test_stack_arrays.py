"""core.stack_arrays: the one loop that gathers predict_stack's slices into arrays (CLI, evaluate, server)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_vlsm.core import labelmap as LM
from napari_vlsm.core.engine import Segmenter
from napari_vlsm.core.stack_arrays import stack_arrays

pytestmark = pytest.mark.usefixtures("one_thread")
PROMPTS = ["liver", "spleen"]


@pytest.fixture(scope="module")
def seg(loaded):
    return Segmenter(loaded=loaded)


@pytest.fixture(scope="module")
def stack():
    rng = np.random.default_rng(5)
    return rng.normal(100, 40, (4, 30, 26)).astype(np.float32)


def _per_slice(seg, stack, window):
    """The reference: each slice on its own through predict, with the stack's one window."""
    return [seg.predict(stack[z], PROMPTS, threshold=0.5, window=window) for z in range(stack.shape[0])]


def test_masks_and_probabilities_are_the_slices_predictions(seg, stack):
    window = (float(stack.min()), float(stack.max()))
    calls = []
    arrays = stack_arrays(seg.predict_stack(stack, PROMPTS, window=window, batch_size=3), stack.shape[:1], 2,
                          mask_value=255, probabilities=True, plane=stack.shape[1:], on_slice=calls.append)
    assert calls == [1, 2, 3, 4]
    assert arrays.masks.shape == (2, 4, 30, 26) and arrays.masks.dtype == np.uint8 and arrays.labels is None
    for z, preds in enumerate(_per_slice(seg, stack, window)):
        for k, pred in enumerate(preds):
            assert np.array_equal(arrays.masks[k, z], pred.mask.astype(np.uint8) * 255)
            np.testing.assert_allclose(arrays.probabilities[k, z], pred.probability, atol=1e-5)


def test_a_part_label_map_and_bool_masks(seg, stack):
    window = (float(stack.min()), float(stack.max()))
    part = stack_arrays(seg.predict_stack(stack, PROMPTS, window=window, indices=range(1, 3)), (2,), 2,
                        label_threshold=0.5, start=1)  # the plane's shape from the first prediction
    assert part.masks is None and part.labels.shape == (2, 30, 26) and part.labels.dtype == np.uint8
    reference = _per_slice(seg, stack, window)
    for row, z in enumerate((1, 2)):
        expected = LM.compose(np.stack([p.probability for p in reference[z]]), 0.5)
        assert np.array_equal(part.labels[row], expected)
    masks = stack_arrays(seg.predict_stack(stack, PROMPTS, window=window), (4,), 2, mask_dtype=bool,
                         plane=(30, 26)).masks
    assert masks.dtype == bool and np.array_equal(masks[1, 3], reference[3][1].mask)


def test_no_slice_leaves_zeros_of_the_known_shape():
    arrays = stack_arrays(iter(()), (0,), 3, probabilities=True, plane=(5, 6))
    assert arrays.masks.shape == arrays.probabilities.shape == (3, 0, 5, 6)
