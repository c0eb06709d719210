"""``predict --statistics`` for 2D images and TIFF stacks: the area in mm² (or volume in mL) from the
TIFF's resolution tags, in pixels without them; checked against the written masks read back and the
input's own intensities, not against the code's bookkeeping."""

from __future__ import annotations

import csv
import json

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from napari_vlsm.cli import main
from napari_vlsm.core.image_files import pixel_spacing

pytestmark = pytest.mark.usefixtures("one_thread")


def run_main(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(4)
    # 40 px/cm across (x: 0.25 mm), 50 px/cm down (y: 0.2 mm)
    tifffile.imwrite(root / "xray.tif", rng.integers(0, 4000, (40, 48)).astype(np.uint16),
                     resolution=(40, 50), resolutionunit="CENTIMETER")
    iio.imwrite(root / "photo.png", rng.integers(0, 256, (30, 36), dtype=np.uint8))
    # an ImageJ stack: x 0.5 mm, y 0.25 mm, slices 2 mm apart
    tifffile.imwrite(root / "ij.tif", rng.integers(0, 255, (5, 30, 32)).astype(np.uint8), imagej=True,
                     resolution=(2, 4), metadata={"unit": "mm", "spacing": 2.0})
    tifffile.imwrite(root / "stack.tif", rng.integers(0, 255, (4, 22, 26)).astype(np.uint8),
                     photometric="minisblack")
    return root


def test_pixel_spacing_from_tiff_tags(images, tmp_path):
    assert pixel_spacing(images / "xray.tif") == pytest.approx((0.2, 0.25))
    assert pixel_spacing(images / "ij.tif") == pytest.approx((2.0, 0.25, 0.5))
    assert pixel_spacing(images / "stack.tif") is None  # tifffile's default: ResolutionUnit NONE
    assert pixel_spacing(images / "photo.png") is None
    plane = np.zeros((8, 8), np.uint8)
    tifffile.imwrite(tmp_path / "editor.tif", plane, resolution=(72, 72), resolutionunit="INCH")
    assert pixel_spacing(tmp_path / "editor.tif") is None  # an editor's default, not a measurement
    tifffile.imwrite(tmp_path / "scan.tif", plane, resolution=(254, 254), resolutionunit="INCH")
    assert pixel_spacing(tmp_path / "scan.tif") == pytest.approx((0.1, 0.1))


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_statistics_of_images_and_stacks_match_the_written_masks(capsys, tmp_path, tiny_model_dir, images):
    out = tmp_path / "out"
    code, stdout, err = run_main(capsys, "predict", "--model", tiny_model_dir, "--device", "cpu", "--precision",
                                 "fp32", "--prompt", "liver", "--prompt", "left kidney", "--threshold", "0.3",
                                 images / "xray.tif", images / "photo.png", images / "ij.tif", images / "stack.tif",
                                 "--out", out, "--statistics", "--json")
    assert code == 0, err
    records = {r["path"].rsplit("/", 1)[-1]: r for r in json.loads(stdout)["outputs"]}
    # 2D with a known pixel size: mm² = pixels x 0.2 x 0.25; the mean is the input's inside the mask
    xray = tifffile.imread(images / "xray.tif")
    rows = _rows(out / "xray__statistics.csv")
    assert [r["name"] for r in rows] == ["liver", "left kidney"]
    for row, name in zip(rows, ("liver", "left-kidney")):
        mask = iio.imread(out / f"xray__{name}.png") != 0
        assert int(row["area_pixels"]) == int(row["voxels"]) == int(mask.sum()) > 0
        assert float(row["area_mm2"]) == pytest.approx(mask.sum() * 0.2 * 0.25, abs=1e-3)
        assert float(row["mean"]) == pytest.approx(float(xray[mask].mean()), abs=1e-3)
        record = records[f"xray__{name}.png"]
        assert record["statistics_path"] == str(out / "xray__statistics.csv")
        assert record["statistics"]["area_mm2"] == pytest.approx(float(row["area_mm2"]))
    # a PNG has no trustworthy pixel size: pixels only, no mm² column
    rows = _rows(out / "photo__statistics.csv")
    assert "area_mm2" not in rows[0] and int(rows[0]["area_pixels"]) == int(
        (iio.imread(out / "photo__liver.png") != 0).sum())
    assert "area_mm2" not in records["photo__liver.png"]["statistics"]
    # an ImageJ stack: mL from its three spacings, and the slice range
    rows = _rows(out / "ij__statistics.csv")
    mask = tifffile.imread(out / "ij__liver.tif") != 0
    assert float(rows[0]["volume_ml"]) == pytest.approx(mask.sum() * 2.0 * 0.25 * 0.5 / 1000, rel=1e-5)
    z = np.flatnonzero(mask.any(axis=(1, 2)))
    assert (int(rows[0]["first_slice"]), int(rows[0]["last_slice"])) == (z[0], z[-1])
    # a stack without spacing: voxel counts, no mL
    rows = _rows(out / "stack__statistics.csv")
    assert "volume_ml" not in rows[0]
    assert int(rows[0]["voxels"]) == int((tifffile.imread(out / "stack__liver.tif") != 0).sum())


def test_multilabel_statistics_of_a_2d_image(capsys, tmp_path, tiny_model_dir, images):
    code, stdout, err = run_main(capsys, "predict", "--model", tiny_model_dir, "--device", "cpu", "--precision",
                                 "fp32", "--prompt", "liver", "--prompt", "spleen", "--threshold", "0.3",
                                 "--multilabel", images / "xray.tif", "--out", tmp_path, "--statistics", "--json")
    assert code == 0, err
    labels = iio.imread(tmp_path / "xray__labels.png")
    rows = {int(r["value"]): r for r in _rows(tmp_path / "xray__statistics.csv")}
    assert set(rows) == {int(v) for v in np.unique(labels) if v}
    for value, row in rows.items():
        assert row["name"] == ["liver", "spleen"][value - 1]
        assert float(row["area_mm2"]) == pytest.approx((labels == value).sum() * 0.05, abs=1e-3)
    (record,) = json.loads(stdout)["outputs"]
    assert [s["name"] for s in record["statistics"]] == [rows[v]["name"] for v in sorted(rows)]
