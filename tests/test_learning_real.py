"""Training on real images with expert masks (Kvasir-SEG polyps from ../shared/data) learns.

The tiny architecture keeps this fast; its last decoder layer is made able to draw a mask (see
helpers.drawable_tiny). On 8 colonoscopy photographs a shallow and a dense adapter must lower the
loss and raise the Dice on those images well above the starting point (memorisation: this shows
that gradients reach the adapters through real preprocessing, not that the model generalises).
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_vlsm.core.datasets import read_folder
from napari_vlsm.core.training import TrainConfig, finetune, run_to_end

from helpers import Sample, drawable_tiny

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def polyps(shared_data):
    files = read_folder(shared_data / "kvasir", prompts=["polyp", "pink round polyp"])[:8]
    return [Sample(f.image, f.mask, f.prompts, f.name) for f in files]  # decode the JPEGs once


@pytest.fixture(scope="module")
def drawable(tiny_model_dir):
    return drawable_tiny(tiny_model_dir)


@pytest.mark.parametrize("variant, steps", [("shallow-vlc", 150), ("dense-vl", 300)])
def test_training_on_polyps_learns(drawable, polyps, variant, steps):
    assert len(polyps) == 8 and all(p.mask.any() for p in polyps)
    losses = []
    config = TrainConfig(variant=variant, max_steps=steps, batch_size=4, lr=3e-3)
    result = run_to_end(finetune(drawable, polyps, [], config),
                        lambda e: e.kind == "step" and losses.append(e.loss))
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    assert result.after["dice"] > result.before["dice"] + 0.2, (result.before, result.after)
    assert result.after["n"] == 8 and not result.heldout
