"""The CLI on medical volumes: predict writes NIfTI masks on the input's grid; finetune and evaluate
take volume pairs in --data; --window picks the intensity window."""

from __future__ import annotations

import json
import shutil

import imageio.v3 as iio
import nibabel as nib
import numpy as np
import pytest

from napari_vlsm.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")
PERMUTED = np.array([[0, 0, -2.5, 40.0], [1.1, 0, 0, -20.0], [0, -0.9, 0, 15.0], [0, 0, 0, 1]])


def run_main(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def model_args(tiny_model_dir):
    return ["--model", tiny_model_dir, "--device", "cpu", "--precision", "fp32"]


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scans")
    rng = np.random.default_rng(0)
    data = rng.integers(-1000, 1000, size=(20, 24, 5)).astype(np.int16)  # (i, j, k): k is the 5-slice axis
    nib.save(nib.Nifti1Image(data, PERMUTED), folder / "permuted.nii.gz")
    iio.imwrite(folder / "photo.png", rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    return folder


def test_predict_nifti_on_the_input_grid_and_2d_naming_kept(capsys, tmp_path, tiny_model_dir, loaded, scans):
    from napari_vlsm.core.engine import Segmenter
    from napari_vlsm.core.medical import read_volume

    out = tmp_path / "out"
    code, _, err = run_main(capsys, "predict", *model_args(tiny_model_dir), "--prompt", "liver",
                            "--prompt", "Left kidney", scans, "--out", out, "--json")
    assert code == 0, err
    names = sorted(p.name for p in out.iterdir())
    assert names == ["napari-vlsm-predict.json", "permuted__left-kidney.nii.gz", "permuted__liver.nii.gz",
                     "photo__left-kidney.png", "photo__liver.png"]
    source = nib.load(scans / "permuted.nii.gz")
    written = nib.load(out / "permuted__liver.nii.gz")
    assert written.shape == source.shape and written.get_data_dtype() == np.uint8
    np.testing.assert_allclose(written.affine, source.affine, atol=1e-4)
    # The mask is the engine's prediction of the canonical volume, put back on the file's grid.
    volume = read_volume(scans / "permuted.nii.gz")
    seg = Segmenter(tiny_model_dir, device="cpu", precision="fp32")
    expected = np.zeros(volume.shape, np.uint8)
    for z, preds in seg.predict_stack(volume.array, ["liver"]):
        expected[z] = preds[0].mask
    np.testing.assert_array_equal(np.asarray(written.dataobj), volume.geometry.to_original(expected))
    record = next(r for r in json.loads((out / "napari-vlsm-predict.json").read_text())["outputs"]
                  if r["path"].endswith("permuted__liver.nii.gz"))
    assert record["format"] == "nifti" and record["shape"] == list(volume.shape)


def test_predict_real_ct_nifti_and_dicom_series(capsys, tmp_path, tiny_model_dir, shared_data):
    import SimpleITK as sitk

    base = shared_data / "geometry" / "totalseg"
    out = tmp_path / "out"
    code, _, err = run_main(capsys, "predict", *model_args(tiny_model_dir), "--prompt", "liver", "--window",
                            "soft-tissue", base / "example_ct_sm.nii.gz", base / "example_ct_dicom", "--out", out)
    assert code == 0, err
    ct, mask = nib.load(base / "example_ct_sm.nii.gz"), nib.load(out / "example_ct_sm__liver.nii.gz")
    assert mask.shape == ct.shape
    np.testing.assert_allclose(mask.affine, ct.affine, atol=1e-4)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(base / "example_ct_dicom")))
    sitk.WriteImage(reader.Execute(), str(tmp_path / "series.nii.gz"))
    reference, dicom_mask = nib.load(tmp_path / "series.nii.gz"), nib.load(out / "example_ct_dicom__liver.nii.gz")
    assert dicom_mask.shape == reference.shape
    np.testing.assert_allclose(dicom_mask.affine, reference.affine, atol=1e-4)
    records = json.loads((out / "napari-vlsm-predict.json").read_text())["outputs"]
    assert all(r["window"] == [-160.0, 240.0] for r in records)


def test_window_errors(capsys, tmp_path, tiny_model_dir, scans):
    from pydicom.data import get_testdata_file

    code, _, err = run_main(capsys, "predict", *model_args(tiny_model_dir), "--prompt", "x", "--window", "wide",
                            scans / "permuted.nii.gz", "--out", tmp_path)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "soft-tissue" in err
    shutil.copy(get_testdata_file("MR_small.dcm", download=False), tmp_path / "mr.dcm")
    code, _, err = run_main(capsys, "predict", *model_args(tiny_model_dir), "--prompt", "x", "--window", "lung",
                            tmp_path / "mr.dcm", "--out", tmp_path / "out")
    assert code == 2 and "Hounsfield" in err and "mr.dcm" in err  # its only input: nothing done


def test_bad_volume_is_one_line_and_the_others_go_on(capsys, tmp_path, tiny_model_dir, scans):
    (tmp_path / "broken.nii.gz").write_bytes((scans / "permuted.nii.gz").read_bytes()[:300])
    code, _, err = run_main(capsys, "predict", *model_args(tiny_model_dir), "--prompt", "x",
                            tmp_path / "broken.nii.gz", scans / "permuted.nii.gz", "--out", tmp_path / "out")
    assert code == 1 and "broken.nii.gz" in err and "Traceback" not in err
    assert (tmp_path / "out" / "permuted__x.nii.gz").is_file()


@pytest.fixture(scope="module")
def volume_data(tmp_path_factory):
    """Two scans with label volumes; case2's labels are stored in another orientation (same grid)."""
    root = tmp_path_factory.mktemp("voldata")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    rng = np.random.default_rng(1)
    for name in ("case1", "case2"):
        scan = rng.integers(-200, 200, size=(32, 28, 6)).astype(np.int16)
        scan[8:20, 6:18, 1:4] += 600
        labels = np.zeros(scan.shape, np.uint8)
        labels[8:20, 6:18, 1:4] = 5  # a label value: non-zero is foreground
        affine = PERMUTED if name == "case1" else np.diag([1.0, 1.0, 3.0, 1.0])
        nib.save(nib.Nifti1Image(scan, affine), root / "images" / f"{name}.nii.gz")
        if name == "case2":  # flip i: an LAS label map of an RAS scan
            flipped = affine @ np.array([[-1, 0, 0, scan.shape[0] - 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
            nib.save(nib.Nifti1Image(labels[::-1].copy(), flipped), root / "masks" / f"{name}.nii.gz")
        else:
            nib.save(nib.Nifti1Image(labels, affine), root / "masks" / f"{name}.nii.gz")
    return root


def test_evaluate_scores_whole_volumes(capsys, tiny_model_dir, volume_data):
    from napari_vlsm.core.datasets import read_folder
    from napari_vlsm.core.engine import Segmenter
    from napari_vlsm.core.metrics import dice

    code, out, err = run_main(capsys, "evaluate", *model_args(tiny_model_dir), "--data", volume_data,
                              "--prompt", "tumour", "--threshold", "0.3", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["n"] == 2 and [r["name"] for r in report["per_image"]] == ["case1", "case2"]
    seg = Segmenter(tiny_model_dir, device="cpu", precision="fp32")
    sample = read_folder(volume_data, prompts=["tumour"])[1]
    pred = np.zeros(sample.mask.shape, bool)
    for z, preds in seg.predict_stack(sample.image, ["tumour"], threshold=0.3):
        pred[z] = preds[0].mask
    assert report["per_image"][1]["dice"] == pytest.approx(dice(pred, sample.mask))


def test_finetune_on_volume_pairs(capsys, tmp_path, tiny_model_dir, volume_data):
    code, out, err = run_main(capsys, "finetune", *model_args(tiny_model_dir), "--data", volume_data,
                              "--prompt", "tumour", "--steps", "2", "--batch-size", "2", "--window=-200,800",
                              "--out", tmp_path / "a.safetensors", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert (tmp_path / "a.safetensors").is_file() and summary["steps"] == 2


def test_collect_inputs_finds_volumes_and_series_folders(tmp_path, scans):
    from pydicom.data import get_testdata_file

    from napari_vlsm.cli.common import collect_inputs
    from napari_vlsm.cli.outputs import unique_stems

    (tmp_path / "series_a").mkdir()
    shutil.copy(get_testdata_file("MR_small.dcm", download=False), tmp_path / "series_a" / "IM0001")  # no suffix
    shutil.copy(scans / "permuted.nii.gz", tmp_path / "b.nii.gz")
    (tmp_path / "notes.txt").write_text("not an input")
    found = collect_inputs([tmp_path])
    assert [p.name for p in found] == ["b.nii.gz", "series_a"]
    assert unique_stems(found) == ["b", "series_a"]
    assert collect_inputs([tmp_path / "series_a"]) == [tmp_path / "series_a"]  # one series = one input
