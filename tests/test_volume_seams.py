"""Volumes at the seams: ``predict --multilabel --save-prob`` on a NIfTI writes the label map and each
structure's probability map as NIfTI on the scan's own grid (a TIFF of the canonical array would lose
the geometry); a volume whose canonical x has 4 voxels is a volume, not an RGBA image (predict and
the napari reader's layer)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from napari_vlsm.cli import main
from napari_vlsm.core import labelmap as LM

pytestmark = pytest.mark.usefixtures("one_thread")
PERMUTED = np.array([[0, 0, -2.5, 40.0], [1.1, 0, 0, -20.0], [0, -0.9, 0, 15.0], [0, 0, 0, 1]])


def test_probabilities_of_a_volume_label_map_lie_on_its_grid(tiny_model_dir, tmp_path, capsys):
    rng = np.random.default_rng(0)
    nib.save(nib.Nifti1Image(rng.integers(-1000, 1000, (20, 24, 4)).astype(np.int16), PERMUTED), tmp_path / "ct.nii.gz")
    code = main(["predict", "--model", str(tiny_model_dir), "--device", "cpu", "--precision", "fp32", "--prompt",
                 "liver", "--prompt", "spleen", "--multilabel", "--save-prob", str(tmp_path / "ct.nii.gz"),
                 "--out", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["ct__labels.json", "ct__labels.nii.gz", "ct__liver__prob.nii.gz",
                                                      "ct__spleen__prob.nii.gz", "napari-vlsm-predict.json"]
    labels = nib.load(out / "ct__labels.nii.gz")
    probs = [nib.load(out / f"ct__{name}__prob.nii.gz") for name in ("liver", "spleen")]
    for image in (labels, *probs):
        assert image.shape == (20, 24, 4)
        np.testing.assert_allclose(image.affine, PERMUTED, atol=1e-4)
    assert all(p.get_data_dtype() == np.float32 for p in probs)
    # the written label map is the stated rule applied to the written probabilities, voxel for voxel
    stacked = np.stack([np.asarray(p.dataobj) for p in probs])
    np.testing.assert_array_equal(np.asarray(labels.dataobj), LM.compose(stacked, 0.5))


def test_the_reader_layer_of_a_narrow_volume_is_not_colour(tmp_path):
    from napari_vlsm._napari.reader import volume_layer
    from napari_vlsm.core.medical import read_volume

    rng = np.random.default_rng(1)
    nib.save(nib.Nifti1Image(rng.integers(-1000, 1000, (20, 24, 4)).astype(np.int16), PERMUTED), tmp_path / "n.nii.gz")
    volume = read_volume(tmp_path / "n.nii.gz")
    assert volume.shape[-1] == 4
    data, kwargs, kind = volume_layer(volume)
    assert kind == "image" and kwargs["rgb"] is False and data.shape == volume.shape
