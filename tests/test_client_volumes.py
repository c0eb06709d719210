"""The CLI as a client on volumes: ``predict --server`` with a NIfTI input (single masks and
``--multilabel``) writes the local run's files; ``evaluate --server`` scores volume pairs as the local
evaluate does; ``finetune --server`` uploads a volume pair's training slices, each with its slice
index and its volume's window (a real server child process on 127.0.0.1, tiny model)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from napari_vlsm.cli import main
from napari_vlsm.server.process import ServerProcess

pytestmark = pytest.mark.usefixtures("one_thread")
PERMUTED = np.array([[0, 0, -2.5, 40.0], [1.1, 0, 0, -20.0], [0, -0.9, 0, 15.0], [0, 0, 0, 1]])


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    with ServerProcess(tiny_model_dir, tmp_path_factory.mktemp("server")) as proc:
        yield proc


@pytest.fixture(scope="module")
def volume_data(tmp_path_factory):
    """Two scans with label volumes on their grids (case2 flat-stacked, 3 mm slices)."""
    root = tmp_path_factory.mktemp("voldata")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    rng = np.random.default_rng(1)
    for name, affine in (("case1", PERMUTED), ("case2", np.diag([1.0, 1.0, 3.0, 1.0]))):
        scan = rng.integers(-200, 200, size=(32, 28, 6)).astype(np.int16)
        scan[8:20, 6:18, 1:4] += 600
        labels = np.zeros(scan.shape, np.uint8)
        labels[8:20, 6:18, 1:4] = 1
        nib.save(nib.Nifti1Image(scan, affine), root / "images" / f"{name}.nii.gz")
        nib.save(nib.Nifti1Image(labels, affine), root / "masks" / f"{name}.nii.gz")
    return root


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _model(model):
    return ["--model", model, "--device", "cpu", "--precision", "fp32", "--batch-size", "2"]


def _remote(server):
    return ["--server", server.url, "--token-file", server.token_file]


@pytest.mark.parametrize("multilabel", [False, True])
def test_predict_a_nifti_through_the_server_writes_the_local_files(server, tiny_model_dir, volume_data, tmp_path,
                                                                   capsys, multilabel):
    scan = volume_data / "images" / "case1.nii.gz"
    argv = ["predict", *_model(tiny_model_dir), "--prompt", "tumour", "--prompt", "left kidney", "--window",
            "p1-99", scan, *(["--multilabel"] if multilabel else [])]
    code, _, err = run(capsys, *argv, "--out", tmp_path / "local")
    assert code == 0, err
    code, _, err = run(capsys, *argv, "--out", tmp_path / "remote", *_remote(server))
    assert code == 0, err
    names = sorted(p.name for p in (tmp_path / "local").iterdir() if p.name.endswith(".nii.gz"))
    assert names == (["case1__labels.nii.gz"] if multilabel else ["case1__left-kidney.nii.gz", "case1__tumour.nii.gz"])
    for name in names:  # the same NIfTI, byte for byte: data, header, affine
        assert (tmp_path / "remote" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    written = nib.load(tmp_path / "remote" / names[0])
    assert written.shape == nib.load(scan).shape
    np.testing.assert_allclose(written.affine, nib.load(scan).affine, atol=1e-4)
    if multilabel:  # the legend: the same structures and rule; provenance names the server
        here, there = (json.loads((tmp_path / side / "case1__labels.json").read_text()) for side in ("local", "remote"))
        assert there["labels"] == here["labels"] and there["rule"] == here["rule"]
        assert there["provenance"]["server"] == server.url
    else:
        here, there = (json.loads((tmp_path / side / "napari-vlsm-predict.json").read_text())["outputs"]
                       for side in ("local", "remote"))
        assert [r["window"] for r in there] == [r["window"] for r in here]


def test_evaluate_volume_pairs_through_the_server(server, tiny_model_dir, volume_data, capsys):
    base = ["evaluate", "--model", tiny_model_dir, "--device", "cpu", "--precision", "fp32", "--data", volume_data,
            "--prompt", "tumour", "--threshold", "0.3", "--window", "soft-tissue", "--json"]
    code, out, err = run(capsys, *base)
    assert code == 0, err
    here = json.loads(out)
    code, out, err = run(capsys, *base, *_remote(server))
    assert code == 0, err
    there = json.loads(out)
    assert there["n"] == here["n"] == 2
    assert [r["dice"] for r in there["per_image"]] == [r["dice"] for r in here["per_image"]]


def test_finetune_volume_pairs_through_the_server_uploads_their_slices(server, volume_data, tmp_path, capsys):
    from napari_vlsm.core.datasets import read_folder
    from napari_vlsm.core.store import CorrectionStore
    from napari_vlsm.core.volume_datasets import expand_slices

    argv = ["finetune", "--data", volume_data, "--prompt", "tumour", "--steps", "2", "--batch-size", "2",
            "--variant", "shallow-v", "--window=-200,800", "--out", tmp_path / "a.safetensors", *_remote(server),
            "--project", "volumes", "--json"]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert json.loads(out)["steps"] == 2 and (tmp_path / "a.safetensors").is_file()
    slices = expand_slices(read_folder(volume_data, prompts=["tumour"], window="-200,800"))
    stored = CorrectionStore(server.project_root / "volumes" / "corrections").samples()
    assert len(stored) == len(slices) > 2
    want = {(s.volume.name, s.slice_index): s for s in slices}
    for sample in stored:  # each a 2D slice with its volume's window, as the dock stores a volume's slices
        part = want[(sample.source, sample.slice_index[0] if isinstance(sample.slice_index, (list, tuple))
                     else sample.slice_index)]
        np.testing.assert_array_equal(sample.image, part.image)
        np.testing.assert_array_equal(sample.mask, part.mask)
        assert tuple(sample.window) == (-200.0, 800.0)
    code, _, err = run(capsys, *argv)  # again: the same source + slice replaces, never duplicates
    assert code == 0, err
    assert len(CorrectionStore(server.project_root / "volumes" / "corrections").samples()) == len(slices)
