"""Fill between slices guided by a model's probability (core.volume_edit.fill_guided): the model's
share is earned on the key slices; a model that disagrees there leaves the plain fill untouched."""

from __future__ import annotations

import numpy as np
import pytest

from napari_vlsm.core.volume_edit.fill_between import fill_between
from napari_vlsm.core.volume_edit.fill_guided import WEIGHT, fill_between_guided, key_agreement


def disk(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2


def dice(a, b):
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


@pytest.fixture
def bulge():
    """A structure of radius 6 at slices 0 and 10 that bulges to 12 half-way: interpolating the
    key slices alone cannot know about the bulge; a model that sees it can."""
    truth = np.stack([disk((48, 48), 24, 24, 6 + 6 * np.sin(np.pi * z / 10)) for z in range(11)])
    sparse = np.zeros_like(truth)
    sparse[[0, 10]] = truth[[0, 10]]
    return truth, sparse


def test_a_model_that_agrees_on_the_keys_guides_the_fill(bulge):
    truth, sparse = bulge
    prob = np.where(truth, 0.9, 0.1).astype(np.float32)  # a good model, a little unsure
    guided, weight = fill_between_guided(sparse, [0, 10], prob, spacing=(3.0, 0.8, 0.8))
    plain = fill_between(sparse, [0, 10], spacing=(3.0, 0.8, 0.8))
    assert weight == WEIGHT
    between = slice(1, 10)
    assert dice(guided[between], truth[between]) > dice(plain[between], truth[between]) + 0.1
    assert np.array_equal(guided[[0, 10]], sparse[[0, 10]])  # key slices are never changed


def test_a_model_that_disagrees_on_the_keys_leaves_the_plain_fill(bulge):
    truth, sparse = bulge
    elsewhere = np.stack([disk((48, 48), 10, 36, 6)] * 11)  # the model found something else
    prob = np.where(elsewhere, 0.95, 0.02).astype(np.float32)
    assert key_agreement(prob[[0, 10]], truth[[0, 10]]) < 0.1
    guided, weight = fill_between_guided(sparse, [0, 10], prob, spacing=(3.0, 0.8, 0.8))
    assert weight == 0.0
    assert np.array_equal(guided, fill_between(sparse, [0, 10], spacing=(3.0, 0.8, 0.8)))


def test_the_model_never_adds_a_part_far_from_the_keys(bulge):
    truth, sparse = bulge
    prob = np.where(truth, 0.95, 0.02).astype(np.float32)
    prob[5][disk((48, 48), 4, 4, 3)] = 0.99  # a confident blob in a corner, far from the structure
    guided, weight = fill_between_guided(sparse, [0, 10], prob)
    assert weight == WEIGHT and not guided[5][disk((48, 48), 4, 4, 3)].any()


def test_along_another_axis_and_bad_shapes(bulge):
    truth, sparse = bulge
    prob = np.where(truth, 0.9, 0.1).astype(np.float32)
    moved, weight = fill_between_guided(np.moveaxis(sparse, 0, 2), [0, 10], np.moveaxis(prob, 0, 2), axis=2)
    again, _ = fill_between_guided(sparse, [0, 10], prob)
    assert weight == WEIGHT and np.array_equal(np.moveaxis(moved, 2, 0), again)
    with pytest.raises(ValueError, match="differ in shape"):
        fill_between_guided(sparse, [0, 10], prob[:5])
