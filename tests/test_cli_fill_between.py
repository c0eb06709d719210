"""The CLI's volume editing: fill-between on the input's grid, predict's clean-up and statistics
checked against nibabel's own reading of the written NIfTI."""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest

from napari_vlsm.cli import main

# i, j, k = (x, y, z) with 0.8 x 0.9 x 2.5 mm voxels, RAS-flipped so the canonical reorientation is exercised
AFFINE = np.array([[-0.8, 0, 0, 30.0], [0, 0.9, 0, -20.0], [0, 0, 2.5, 15.0], [0, 0, 0, 1]])


def run_main(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def disk(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2


@pytest.fixture
def sparse(tmp_path):
    """Labels on slices k = 2 and 8 (of 12) only: 1 grows from r 4 to 10, 2 stays r 5."""
    data = np.zeros((40, 36, 12), np.uint8)
    data[..., 2][disk((40, 36), 15, 15, 4)] = 1
    data[..., 8][disk((40, 36), 15, 15, 10)] = 1
    for k in (2, 8):
        data[..., k][disk((40, 36), 30, 28, 5)] = 2
    path = tmp_path / "sparse.nii.gz"
    nib.save(nib.Nifti1Image(data, AFFINE), path)
    return path, data


def test_fill_between_writes_dense_labels_on_the_input_grid(capsys, tmp_path, sparse):
    path, data = sparse
    out = tmp_path / "dense.nii.gz"
    code, stdout, err = run_main(capsys, "fill-between", path, "--out", out)
    assert code == 0, err
    assert "5 slice(s) filled" in stdout
    written, source = nib.load(out), nib.load(path)
    assert written.shape == source.shape
    np.testing.assert_allclose(written.affine, source.affine, atol=1e-4)
    dense = np.asarray(written.dataobj)
    assert np.array_equal(dense[..., [0, 1, 2, 8, 9, 10, 11]], data[..., [0, 1, 2, 8, 9, 10, 11]])
    middle = dense[..., 5]
    inter = np.logical_and(middle == 1, disk((40, 36), 15, 15, 7)).sum()
    assert 2 * inter / ((middle == 1).sum() + disk((40, 36), 15, 15, 7).sum()) > 0.9
    assert np.array_equal(middle == 2, data[..., 2] == 2)  # an unchanged shape stays unchanged
    assert set(np.unique(dense)) == {0, 1, 2}


def test_fill_between_needs_two_annotated_slices(capsys, tmp_path, sparse):
    path, data = sparse
    one = data.copy()
    one[..., 8] = 0
    nib.save(nib.Nifti1Image(one, AFFINE), tmp_path / "one.nii.gz")
    code, _, err = run_main(capsys, "fill-between", tmp_path / "one.nii.gz", "--out", tmp_path / "d.nii.gz")
    assert code == 2 and "1 annotated slice(s)" in err and "Traceback" not in err
    assert not (tmp_path / "d.nii.gz").exists()
    # along another axis the same file has many annotated slices
    code, _, err = run_main(capsys, "fill-between", path, "--out", tmp_path / "x.nii.gz", "--axis", "x")
    assert code == 0, err
    code, _, err = run_main(capsys, "fill-between", path, "--out", tmp_path / "d.tif")
    assert code == 2 and "NIfTI" in err


@pytest.mark.usefixtures("one_thread")
def test_predict_statistics_and_cleanup_match_nibabel(capsys, tmp_path, tiny_model_dir):
    rng = np.random.default_rng(3)
    scan = rng.integers(-200, 300, size=(32, 28, 6)).astype(np.int16)
    nib.save(nib.Nifti1Image(scan, AFFINE), tmp_path / "ct.nii.gz")
    out = tmp_path / "out"
    base = ["predict", "--model", tiny_model_dir, "--device", "cpu", "--precision", "fp32", "--prompt", "liver",
            tmp_path / "ct.nii.gz", "--threshold", "0.3"]
    code, _, err = run_main(capsys, *base, "--out", out, "--statistics")
    assert code == 0, err
    mask_img = nib.load(out / "ct__liver.nii.gz")
    mask = np.asarray(mask_img.dataobj)
    voxel_ml = abs(np.linalg.det(mask_img.affine[:3, :3])) / 1000.0
    with open(out / "ct__statistics.csv") as f:
        (row,) = list(csv.DictReader(f))
    assert row["name"] == "liver" and int(row["voxels"]) == int(np.count_nonzero(mask)) > 0
    assert float(row["volume_ml"]) == pytest.approx(np.count_nonzero(mask) * voxel_ml, rel=1e-5)
    assert float(row["mean"]) == pytest.approx(float(scan[mask != 0].mean()), abs=1e-3)
    # clean-up: only the largest 3D part of what the model predicted is kept
    code, _, err = run_main(capsys, *base, "--out", tmp_path / "clean", "--keep-largest", "--statistics")
    assert code == 0, err
    cleaned = np.asarray(nib.load(tmp_path / "clean" / "ct__liver.nii.gz").dataobj)
    from scipy import ndimage

    parts, n = ndimage.label(mask)
    largest = np.bincount(parts.ravel())[1:].max()
    assert np.count_nonzero(cleaned) == largest and np.all(mask[cleaned != 0])
    # a label map: one row per structure, the same volumes as nibabel's count of the written file
    code, _, err = run_main(capsys, *base, "--prompt", "spleen", "--multilabel", "--out", tmp_path / "ml",
                            "--statistics", "--min-size-mm3", "5")
    assert code == 0, err
    (labelmap,) = (tmp_path / "ml").glob("ct__*.nii.gz")
    written = np.asarray(nib.load(labelmap).dataobj)
    with open(tmp_path / "ml" / "ct__statistics.csv") as f:
        rows = {int(r["value"]): r for r in csv.DictReader(f)}
    assert set(rows) == {int(v) for v in np.unique(written) if v}
    for value, row in rows.items():
        assert row["name"] == ["liver", "spleen"][value - 1]
        assert float(row["volume_ml"]) == pytest.approx(np.count_nonzero(written == value) * voxel_ml, rel=1e-5)
    voxel_mm3 = voxel_ml * 1000
    for value in rows:  # no island under 5 mm³ is left in any structure
        sizes = np.bincount(ndimage.label(written == value)[0].ravel())[1:] * voxel_mm3
        assert sizes.min() >= 5
    code, _, err = run_main(capsys, *base, "--out", tmp_path / "bad", "--min-size-mm3", "-3")
    assert code == 2 and "mm³" in err


def test_fill_between_guided_by_a_probability_map(capsys, tmp_path):
    """--probability VALUE=PROB: label 1 bulges between its annotated slices; a probability map that
    sees the bulge (and agrees on the annotated slices) guides its fill."""
    truth = np.zeros((40, 36, 12), np.uint8)
    for k in range(2, 9):
        truth[..., k][disk((40, 36), 15, 15, 5 + 5 * np.sin(np.pi * (k - 2) / 6))] = 1
    sparse = np.zeros_like(truth)
    sparse[..., [2, 8]] = truth[..., [2, 8]]
    nib.save(nib.Nifti1Image(sparse, AFFINE), tmp_path / "sparse.nii.gz")
    nib.save(nib.Nifti1Image(np.where(truth == 1, 0.9, 0.1).astype(np.float32), AFFINE), tmp_path / "prob.nii.gz")
    code, plain_out, err = run_main(capsys, "fill-between", tmp_path / "sparse.nii.gz", "--out", tmp_path / "plain.nii.gz")
    assert code == 0, err
    code, stdout, err = run_main(capsys, "fill-between", tmp_path / "sparse.nii.gz", "--out",
                                 tmp_path / "guided.nii.gz", "--probability", f"1={tmp_path / 'prob.nii.gz'}", "--json")
    assert code == 0, err
    assert json.loads(stdout)["model_weight"] == {"1": 0.5}
    plain, guided = (np.asarray(nib.load(tmp_path / f"{n}.nii.gz").dataobj) for n in ("plain", "guided"))
    between = slice(3, 8)

    def score(a):
        return 2 * np.logical_and(a[..., between] == 1, truth[..., between] == 1).sum() / (
            (a[..., between] == 1).sum() + (truth[..., between] == 1).sum())

    assert score(guided) > score(plain) + 0.05
    assert np.array_equal(guided[..., [2, 8]], sparse[..., [2, 8]])
    # a map on another grid, values outside 0..1, a malformed option: one line each, nothing written
    nib.save(nib.Nifti1Image(np.zeros((40, 36, 11), np.float32), AFFINE), tmp_path / "other.nii.gz")
    nib.save(nib.Nifti1Image(np.full((40, 36, 12), 255, np.float32), AFFINE), tmp_path / "bytes.nii.gz")
    for item, words in ((f"1={tmp_path / 'other.nii.gz'}", "voxel grid"), (f"1={tmp_path / 'bytes.nii.gz'}", "0..1"),
                        ("liver", "VALUE=FILE")):
        code, _, err = run_main(capsys, "fill-between", tmp_path / "sparse.nii.gz", "--out", tmp_path / "bad.nii.gz",
                                "--probability", item)
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "bad.nii.gz").exists()
