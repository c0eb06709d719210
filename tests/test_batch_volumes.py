"""The batch runner (``predict --cluster/--scheduler/--jobs``) on medical volumes and ``--multilabel``:
the same files, byte for byte, as in-process ``predict`` (a real LocalCluster of 2 worker processes,
tiny model): a NIfTI split into slice-range tasks, an NRRD, a DICOM series given file by file
(segmented once), a PNG, a TIFF stack; ``--window``; resume records; what batch refuses."""

from __future__ import annotations

import json
import os

import imageio.v3 as iio
import nibabel as nib
import numpy as np
import pytest
import tifffile

from napari_vlsm.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")
PERMUTED = np.array([[0, 0, -2.5, 40.0], [1.1, 0, 0, -20.0], [0, -0.9, 0, 15.0], [0, 0, 0, 1]])
PROMPTS = ["--prompt", "liver", "--prompt", "left kidney"]


def _dicom_series(folder, count=3):
    """A synthetic one-series CT folder (random slices), files named against their spatial order."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    folder.mkdir()
    series, rng = generate_uid(), np.random.default_rng(3)
    for n in range(count):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False))
        ds.SeriesInstanceUID, ds.SOPInstanceUID = series, generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.ImagePositionPatient = [-10.0, -20.0, 3.0 * (count - n)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.InstanceNumber, ds.RescaleSlope, ds.RescaleIntercept = n + 1, 1, 0
        ds.PixelData = rng.integers(-300, 300, (ds.Rows, ds.Columns)).astype(np.int16).tobytes()
        ds.save_as(folder / f"im{n}.dcm", enforce_file_format=True)
    return sorted(folder.iterdir())


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    import SimpleITK as sitk

    root = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    # canonical (z, y, x) = (6, 20, 4): an x of 4 voxels must not pass for RGBA colour
    nib.save(nib.Nifti1Image(rng.integers(-1000, 1000, (20, 6, 4)).astype(np.int16), PERMUTED),
             root / "permuted.nii.gz")
    image = sitk.GetImageFromArray(rng.normal(100, 40, (5, 18, 22)).astype(np.float32))
    image.SetSpacing((0.8, 0.9, 2.0))
    image.SetDirection((0, 1, 0, 1, 0, 0, 0, 0, -1))  # permuted and flipped against LPS
    sitk.WriteImage(image, str(root / "mr.nrrd"))
    iio.imwrite(root / "photo.png", rng.integers(0, 256, (30, 36), dtype=np.uint8))
    tifffile.imwrite(root / "stack.tif", rng.integers(-1000, 1000, (5, 22, 26), dtype=np.int16),
                     photometric="minisblack")
    files = _dicom_series(root / "series")
    return root, [root / "permuted.nii.gz", root / "mr.nrrd", root / "photo.png", root / "stack.tif", *files]


def _model(model):
    return ["--model", str(model), "--device", "cpu", "--precision", "fp32", "--batch-size", "2"]


def _files(folder) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and "__" in p.name}


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as c:
        yield c


def test_cluster_run_writes_the_in_process_files_for_volumes(inputs, tiny_model_dir, tmp_path, capsys):
    root, paths = inputs
    base = ["predict", *_model(tiny_model_dir), *PROMPTS, "--window", "p1-99", *paths]
    code, _, err = _run(capsys, *base, "--out", tmp_path / "here")
    assert code == 0, err
    here = _files(tmp_path / "here")
    assert sorted(here) == sorted(f"{s}__{p}{e}" for s, e in [("permuted", ".nii.gz"), ("mr", ".nii.gz"),
                                                              ("photo", ".png"), ("stack", ".tif"),
                                                              ("im0", ".nii.gz")]
                                  for p in ("liver", "left-kidney"))
    # 2 slices per task: the NIfTI (6 canonical slices along its second file axis), the stack, the series split
    code, out, err = _run(capsys, *base, "--out", tmp_path / "there", "--cluster", "local:2",
                          "--slices-per-task", "2", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["files"] == 5 and summary["failed"] == [] and len(summary["outputs"]) == 10  # one series
    there = _files(tmp_path / "there")
    assert sorted(there) == sorted(here)
    for name in here:
        assert there[name] == here[name], name  # byte for byte (gzip without a time stamp)
    scan, mask = nib.load(root / "permuted.nii.gz"), nib.load(tmp_path / "there" / "permuted__liver.nii.gz")
    assert mask.shape == scan.shape
    np.testing.assert_allclose(mask.affine, scan.affine, atol=1e-4)
    want = json.loads((tmp_path / "here" / "napari-vlsm-predict.json").read_text())["outputs"]
    got = {os.path.basename(r["path"]): {**r, "path": None} for r in summary["outputs"]}
    for record in want:  # the same records (window used, spacing, fractions ...), batch or not
        assert got[os.path.basename(record["path"])] == {**record, "path": None}


def test_multilabel_on_a_cluster_equals_in_process(inputs, tiny_model_dir, cluster, tmp_path, capsys):
    root, paths = inputs
    base = ["predict", *_model(tiny_model_dir), *PROMPTS, "--prompt", "spleen", "--multilabel",
            paths[0], paths[2], paths[3]]
    code, _, err = _run(capsys, *base, "--out", tmp_path / "here")
    assert code == 0, err
    code, _, err = _run(capsys, *base, "--out", tmp_path / "there", "--scheduler", cluster.scheduler_address,
                        "--slices-per-task", "3")
    assert code == 0, err
    here, there = _files(tmp_path / "here"), _files(tmp_path / "there")
    assert sorted(here) == sorted(there) == ["permuted__labels.json", "permuted__labels.nii.gz",
                                             "photo__labels.json", "photo__labels.png",
                                             "stack__labels.json", "stack__labels.tif"]
    for name in here:
        assert there[name] == here[name], name
    labels = nib.load(tmp_path / "there" / "permuted__labels.nii.gz")
    assert labels.shape == (20, 6, 4) and set(np.unique(np.asarray(labels.dataobj))) <= {0, 1, 2, 3}
    code, out, err = _run(capsys, *base, "--out", tmp_path / "there", "--scheduler", cluster.scheduler_address,
                          "--json")  # the same run again: every label map is already done
    assert code == 0, err
    assert json.loads(out)["skipped"] == 3 and _files(tmp_path / "there") == here


def test_resume_redoes_only_what_changed(inputs, tiny_model_dir, tmp_path, capsys):
    """--jobs alone runs the same tasks in this process: a missing record (a run killed between the
    mask and its record), a changed --window or a touched input is redone; the rest is skipped."""
    root, paths = inputs
    jobs = [{"input": str(p), "prompts": ["liver"]} for p in (paths[0], paths[2], paths[4], paths[5])]
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    argv = ["predict", *_model(tiny_model_dir), "--jobs", tmp_path / "jobs.json", "--out", tmp_path / "out",
            "--slices-per-task", "3", "--json"]
    code, out, err = _run(capsys, *argv)
    assert code == 0, err
    first = json.loads(out)
    assert first["files"] == 3 and first["skipped"] == 0  # im0.dcm and im1.dcm: one series
    assert sorted(_files(tmp_path / "out")) == ["im0__liver.nii.gz", "permuted__liver.nii.gz", "photo__liver.png"]
    (tmp_path / "out" / ".napari-vlsm-batch" / "permuted__liver.nii.gz.json").unlink()
    code, out, err = _run(capsys, *argv)
    assert code == 0, err
    assert json.loads(out)["skipped"] == 2
    code, out, err = _run(capsys, *argv, "--window=-200,400")  # another window: other masks, all redone
    assert code == 0, err
    assert json.loads(out)["skipped"] == 0
    record = json.loads((tmp_path / "out" / "napari-vlsm-predict.json").read_text())["outputs"][0]
    assert record["window"] == [-200.0, 400.0]
    os.utime(paths[2], ns=(1, 1))  # a changed input
    code, out, err = _run(capsys, *argv, "--window=-200,400")
    assert code == 0, err
    assert json.loads(out)["skipped"] == 2


def test_what_batch_does_not_do_is_one_line(inputs, tiny_model_dir, tmp_path, capsys):
    root, paths = inputs
    code, _, err = _run(capsys, "predict", *_model(tiny_model_dir), "--prompt", "x", paths[0], "--save-prob",
                        "--overwrite", "--out", tmp_path)
    assert code == 2 and "--save-prob" in err and len(err.strip().splitlines()) == 1
    code, _, err = _run(capsys, "predict", *_model(tiny_model_dir), "--prompt", "liver", "--prompt", "Liver",
                        "--multilabel", paths[0], "--overwrite", "--out", tmp_path)
    assert code == 2 and "twice" in err and len(err.strip().splitlines()) == 1


def test_a_bad_volume_fails_alone_in_batch(inputs, tiny_model_dir, tmp_path, capsys):
    root, paths = inputs
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(paths[0].read_bytes()[:300])
    code, out, err = _run(capsys, "predict", *_model(tiny_model_dir), "--prompt", "x", broken, paths[2],
                          "--overwrite", "--out", tmp_path / "out", "--json")
    assert code == 1 and "broken.nii.gz" in err and "Traceback" not in err
    assert [f["input"] for f in json.loads(out)["failed"]] == [str(broken)]
    assert (tmp_path / "out" / "photo__x.png").is_file()
    code, _, err = _run(capsys, "predict", *_model(tiny_model_dir), "--prompt", "x", broken, "--overwrite",
                        "--out", tmp_path / "out")
    assert code == 2 and "broken.nii.gz" in err  # nothing could be read: exit 2, as in-process


def test_cleanup_and_statistics_on_a_cluster_equal_in_process(inputs, tiny_model_dir, cluster, tmp_path, capsys):
    """--keep-largest/--fill-holes/--min-size-mm3 and --statistics reach the batch tasks: a NIfTI and a
    TIFF stack split into slice-range tasks, a PNG in one task, and a --multilabel volume give the same
    files (masks, label maps, statistics CSVs) and records as in-process predict."""
    root, paths = inputs
    finish = ["--keep-largest", "--fill-holes", "--min-size-mm3", "4", "--statistics", "--threshold", "0.3"]
    multilabel = ["--prompt", "liver", "--prompt", "spleen", "--multilabel"]
    for extra, files, where in ((PROMPTS, (paths[0], paths[2], paths[3]), ["--cluster", "local:1"]),
                                (multilabel, (paths[0],), ["--scheduler", cluster.scheduler_address])):
        base = ["predict", *_model(tiny_model_dir), *extra, *finish, *files, "--json"]
        code, out, err = _run(capsys, *base, "--out", tmp_path / "here")
        assert code == 0, err
        want = json.loads(out)["outputs"]
        code, out, err = _run(capsys, *base, "--out", tmp_path / "there", *where, "--slices-per-task", "2")
        assert code == 0, err
        got = {os.path.basename(r["path"]): r for r in json.loads(out)["outputs"]}
        for record in want:
            other = got[os.path.basename(record["path"])]
            assert other["statistics"] == record["statistics"]
            assert os.path.basename(other["statistics_path"]) == os.path.basename(record["statistics_path"])
    here, there = _files(tmp_path / "here"), _files(tmp_path / "there")
    assert {"permuted__statistics.csv", "photo__statistics.csv", "stack__statistics.csv"} <= set(here)
    assert sorted(there) == sorted(here)
    for name in here:
        assert there[name] == here[name], name
    from scipy import ndimage

    mask = np.asarray(nib.load(tmp_path / "there" / "permuted__liver.nii.gz").dataobj)
    assert ndimage.label(mask)[1] <= 1  # the largest part only, also on the cluster
