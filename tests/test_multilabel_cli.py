"""``predict --multilabel``: one label map + JSON legend per input (2D PNG, TIFF stack), read back
and checked against the engine's probabilities composed by the stated rule."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from napari_vlsm.cli import main
from napari_vlsm.core import labelmap as LM

PROMPTS = ["liver", "spleen", "left kidney"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    iio.imwrite(folder / "photo.png", rng.integers(0, 256, (40, 50, 3), dtype=np.uint8))
    tifffile.imwrite(folder / "ct.tif", rng.integers(-1000, 1000, (4, 21, 23), dtype=np.int16),
                     photometric="minisblack")
    return folder


def predict(capsys, model, *argv):
    args = ["predict", "--model", model, "--device", "cpu", "--precision", "fp32", *argv]
    for p in PROMPTS:
        args += ["--prompt", p]
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def engine(model):
    from napari_vlsm.core.engine import Segmenter

    return Segmenter(model, device="cpu", precision="fp32")


def test_2d_label_map_and_legend_read_back(capsys, tiny_model_dir, inputs, tmp_path):
    out = tmp_path / "out"
    code, stdout, err = predict(capsys, tiny_model_dir, inputs / "photo.png", "--out", out, "--multilabel",
                                "--threshold", "0.4", "--json")
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["napari-vlsm-predict.json", "photo__labels.json",
                                                      "photo__labels.png"]
    label_map = iio.imread(out / "photo__labels.png")
    image = iio.imread(inputs / "photo.png")
    prob = np.stack([p.probability for p in engine(tiny_model_dir).predict(image, PROMPTS)])
    np.testing.assert_array_equal(label_map, LM.compose(prob, 0.4))
    doc = json.loads((out / "photo__labels.json").read_text())
    structures = LM.read_legend(doc)
    assert structures == LM.legend(PROMPTS)
    assert doc["labels"]["3"]["name"] == "left kidney" and doc["labels"]["1"]["colour"].startswith("#")
    assert doc["threshold"] == 0.4 and doc["label_map"] == "photo__labels.png" and "highest" in doc["rule"]
    assert doc["provenance"]["model_fingerprint"]
    (record,) = json.loads(stdout)["outputs"]
    assert record["prompts"] == PROMPTS and set(record["fractions"]) == set(PROMPTS)


def test_stack_gives_one_label_volume(capsys, tiny_model_dir, inputs, tmp_path):
    out = tmp_path / "out"
    code, _, err = predict(capsys, tiny_model_dir, inputs / "ct.tif", "--out", out, "--multilabel", "--save-prob")
    assert code == 0, err
    volume = tifffile.imread(out / "ct__labels.tif")
    assert volume.shape == (4, 21, 23) and volume.dtype == np.uint8
    stack = tifffile.imread(inputs / "ct.tif")
    want = np.zeros(stack.shape, np.uint8)
    for z, preds in engine(tiny_model_dir).predict_stack(stack, PROMPTS):
        want[z] = LM.compose(np.stack([p.probability for p in preds]), 0.5)
    np.testing.assert_array_equal(volume, want)
    with tifffile.TiffFile(out / "ct__labels.tif") as tif:  # the legend travels in the TIFF too
        assert "left kidney" in tif.pages[0].description
    assert LM.read_legend((out / "ct__labels.json").read_text()) == LM.legend(PROMPTS)
    probs = [tifffile.imread(out / f"ct__{name}__prob.tif") for name in ("liver", "spleen", "left-kidney")]
    np.testing.assert_array_equal(LM.compose(np.stack(probs), 0.5), volume)


def test_repeated_structure_is_a_usage_error_before_the_model_loads(capsys, tmp_path, inputs):
    code = main(["predict", "--model", str(tmp_path / "no-model"), "--prompt", "liver", "--prompt", " Liver",
                 "--multilabel", str(inputs / "photo.png"), "--out", str(tmp_path / "o")])
    _, err = capsys.readouterr()
    assert code == 2 and "twice" in err and len(err.strip().splitlines()) == 1


def test_a_custom_writer_plugs_in_for_other_formats(tiny_model_dir, inputs, tmp_path):
    """The hook medical volumes use: the caller's writer puts the array on the input's grid."""
    from types import SimpleNamespace

    from napari_vlsm.cli import labelmap_output

    written = {}
    args = SimpleNamespace(threshold=0.5, batch_size=2, out=str(tmp_path), save_prob=False)
    stack = tifffile.imread(inputs / "ct.tif")
    (record,) = labelmap_output.predict_file(
        engine(tiny_model_dir), inputs / "ct.tif", "ct", stack, PROMPTS, args, {},
        writer=lambda array, path: written.update({path.name: array.copy()}), suffix=".nii.gz")
    assert list(written) == ["ct__labels.nii.gz"] and written["ct__labels.nii.gz"].shape == stack.shape
    assert record["path"].endswith("ct__labels.nii.gz")
    assert json.loads((tmp_path / "ct__labels.json").read_text())["label_map"] == "ct__labels.nii.gz"


def test_a_real_ct_volume_gives_a_label_volume_on_its_shape(capsys, tiny_model_dir, shared_data, tmp_path):
    ct = shared_data / "volumes" / "ct_abdomen.tif"
    code, _, err = predict(capsys, tiny_model_dir, ct, "--out", tmp_path)
    assert code == 0, err
    code, _, err = predict(capsys, tiny_model_dir, ct, "--out", tmp_path, "--multilabel")
    assert code == 0, err
    volume = tifffile.imread(tmp_path / "ct_abdomen__labels.tif")
    assert volume.shape == tifffile.imread(ct).shape and set(np.unique(volume)) <= {0, 1, 2, 3}
    # each value is where that structure's single-prompt mask is on AND its probability is highest:
    # so a label-map value never lies outside that structure's own single mask
    for value, name in enumerate(("liver", "spleen", "left-kidney"), start=1):
        single = tifffile.imread(tmp_path / f"ct_abdomen__{name}.tif") > 0
        assert not ((volume == value) & ~single).any()
    assert (volume > 0).sum() == np.logical_or.reduce(
        [tifffile.imread(tmp_path / f"ct_abdomen__{n}.tif") > 0 for n in ("liver", "spleen", "left-kidney")]).sum()
