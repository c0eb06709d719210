"""Issue 5 end to end on the real volumes in ../shared/data/volumes (skipped where it is absent):
segment a whole stack -> correct some slices -> store them per slice -> finetune -> segment again,
at the core, in the napari dock and from the CLI. The tiny random model and a few training steps:
these tests check the bookkeeping and the plumbing of the loop, not the quality of the masks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_vlsm.core.adapters.checkpoint import read_metadata
from napari_vlsm.core.engine import Segmenter
from napari_vlsm.core.loading import load_model
from napari_vlsm.core.store import CorrectionStore
from napari_vlsm.core.volume import volume_window

from dock_helpers import idle, segment  # imports no napari; the fixtures make_dock, force_dice: conftest.py

MRI_ANNOTATED = list(range(11, 18))  # the README: tumour labels on slices 11-17 only
CT_SPACING = (3.0, 1.0, 1.0)  # the README gives 3 mm slices; in-plane 1.0 keeps the test's arithmetic simple
CT_TRANSLATE = (-45.0, 10.0, -20.0)
WAIT_MS = 120_000  # generous: a slow shared machine, never a speed threshold


def volumes(shared_data):
    return shared_data / "volumes"


def read_tif(path) -> np.ndarray:
    import tifffile

    return tifffile.imread(path)


@pytest.fixture(scope="module")
def mri(shared_data):
    image = read_tif(volumes(shared_data) / "mri_brain.tif")
    tumour = read_tif(volumes(shared_data) / "mri_brain_tumor.tif") != 0
    assert image.shape == tumour.shape == (25, 256, 256)
    return image, tumour


# ----------------------------------------------------------------------------- core, no napari


def test_mri_loop_stores_only_the_annotated_slices_and_the_adapter_changes_them(tiny_model_dir, mri, tmp_path):
    from napari_vlsm.core.training import TrainConfig, finetune, run_to_end

    image, tumour = mri
    assert [z for z in range(25) if tumour[z].any()] == MRI_ANNOTATED  # the data is what the README says
    seg = Segmenter(loaded=load_model(tiny_model_dir, device="cpu", precision="fp32"))
    window = volume_window(image)
    before = {z: preds[0] for z, preds in seg.predict_stack(image, "tumour", batch_size=5)}
    assert sorted(before) == list(range(25))
    assert all(p.mask.shape == (256, 256) and p.probability.shape == (256, 256) for p in before.values())

    store = CorrectionStore(tmp_path / "store")
    for z in MRI_ANNOTATED:
        store.add(image[z], tumour[z], ["tumour"], proposal=before[z].mask, source="mri_brain.tif",
                  slice_index=(z,), window=window)
    samples = store.samples("tumour")
    assert sorted(s.slice_index for s in samples) == [(z,) for z in MRI_ANNOTATED]  # nothing unannotated
    for s in samples:
        np.testing.assert_array_equal(s.mask, tumour[s.slice_index[0]])
        np.testing.assert_array_equal(s.image, image[s.slice_index[0]])
        assert s.window == pytest.approx(window) and s.source == "mri_brain.tif"
    train, val = store.samples(split="train"), store.samples(split="val")
    assert len(train) + len(val) == 7 and len(val) >= 1 and train

    out = tmp_path / "adapter.safetensors"
    config = TrainConfig(variant="shallow-vlc", max_steps=4, batch_size=2)
    result = run_to_end(finetune(seg.loaded, train, val, config, out_path=out))
    assert result.adapter_path is not None and out.is_file()
    meta = read_metadata(out)
    data = meta["data"]
    assert data["n_train"] + data["n_val"] == 7 and data["n_val"] == len(val)

    seg.load_adapter(out)
    assert seg.adapters is not None and seg.adapter_path == str(out)
    after = dict(seg.predict_stack(image, "tumour", indices=MRI_ANNOTATED))
    assert sorted(after) == MRI_ANNOTATED
    changed = [z for z in MRI_ANNOTATED if not np.array_equal(after[z][0].probability, before[z].probability)]
    assert changed == MRI_ANNOTATED
    # the window the store recorded is the one the whole volume used: per-slice predictions agree
    np.testing.assert_allclose(seg.predict(image[13], "tumour", window=window)[0].probability,
                               after[13][0].probability, atol=1e-4)


# ----------------------------------------------------------------------------- CLI


def test_cli_predict_writes_a_mask_stack_of_the_mri_shape(tiny_model_dir, shared_data, tmp_path):
    from napari_vlsm.cli import main

    out = tmp_path / "out"
    src = volumes(shared_data) / "mri_brain.tif"
    code = main(["predict", "--model", str(tiny_model_dir), "--prompt", "tumour", str(src), "--out", str(out)])
    assert code == 0
    mask_path = out / "mri_brain__tumour.tif"
    mask = read_tif(mask_path)
    assert mask.shape == (25, 256, 256) and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 255}
    summary = json.loads((out / "napari-vlsm-predict.json").read_text())
    assert json.dumps(summary).count(str(mask_path)) >= 1


# ----------------------------------------------------------------------------- napari dock


@pytest.fixture
def ct(shared_data):
    image = read_tif(volumes(shared_data) / "ct_abdomen.tif")
    labels = read_tif(volumes(shared_data) / "ct_abdomen_labels.tif")
    names = json.loads((volumes(shared_data) / "ct_abdomen_labels.json").read_text())["labels"]
    (liver,) = [int(v) for v, organ in names.items() if organ == "liver"]
    return image, labels == liver


@pytest.mark.gui
def test_dock_segments_the_ct_volume_learns_from_one_corrected_slice(qtbot, request, ct):
    pytest.importorskip("napari")
    from napari_vlsm._napari import layers as L

    viewer, dock = request.getfixturevalue("make_dock")()
    request.getfixturevalue("force_dice")(0.2, 0.6)  # the dock keeps only a better adapter: force one
    image, liver = ct
    layer = viewer.add_image(image, name="ct", scale=CT_SPACING, translate=CT_TRANSLATE)

    labels = segment(qtbot, dock, "liver", all_slices=True)
    outputs = [lay for lay in viewer.layers if L.output_meta(lay)]
    assert outputs == [labels] and labels.data.shape == (30, 101, 122)
    np.testing.assert_allclose(labels.scale, layer.scale)
    np.testing.assert_allclose(labels.translate, layer.translate)
    assert len(dock.session.proposals.planes(labels)) == 30

    viewer.dims.set_current_step(0, 12)
    proposed = labels.data.copy()
    truth = liver[12].astype(labels.data.dtype)
    wrong = np.nonzero(labels.data[12] != truth)
    assert wrong[0].size  # a random model never draws the liver: there is something to correct
    labels.data_setitem((np.full_like(wrong[0], 12),) + wrong, truth[wrong])
    np.testing.assert_array_equal(labels.data[12] != 0, liver[12])
    others = [z for z in range(30) if z != 12]
    np.testing.assert_array_equal(labels.data[others], proposed[others])  # the edit touched slice 12 only

    dock.corrections.btn_add.click()
    qtbot.waitUntil(lambda: not dock.corrections.saving and idle(dock), timeout=WAIT_MS)
    (sample,) = dock.session.project.store.samples()
    assert sample.slice_index == (12,) and sample.target == "liver"
    np.testing.assert_array_equal(sample.mask, liver[12])
    np.testing.assert_array_equal(sample.image, image[12])
    assert sample.window == pytest.approx(volume_window(image))  # the volume's window, not the slice's

    plane = L.Plane((1, 2), (12,))
    prob_before = dock.session.proposals.get(labels, plane).probability.copy()
    dock.advanced.steps.setValue(3)
    dock.finetune.btn_train.click()
    qtbot.waitUntil(lambda: idle(dock), timeout=WAIT_MS)
    (adapter,) = dock.session.adapters_dir.glob("adapter-*.safetensors")
    assert dock.session.segmenter.adapters is not None
    assert dock.session.segmenter.adapter_path == str(adapter)
    assert read_metadata(adapter)["data"]["n_train"] == 1
    np.testing.assert_array_equal(labels.data[12] != 0, liver[12])  # the new adapter kept the correction

    segment(qtbot, dock, "liver")  # the user asks again for slice 12: the adapter's proposal
    qtbot.waitUntil(lambda: idle(dock), timeout=WAIT_MS)
    prob_after = dock.session.proposals.get(labels, plane).probability
    assert not np.array_equal(prob_before, prob_after)
    np.testing.assert_array_equal(labels.data[12] != 0, dock.session.proposals.get(labels, plane).mask)
    np.testing.assert_array_equal(labels.data[others], proposed[others])  # other slices untouched
