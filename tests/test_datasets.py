"""Dataset folders (images/ + masks/), medvlsm-style annotation files, the CLI's train/val split."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from napari_vlsm.core.datasets import DataError, FileSample, read_folder, split_train_val
from napari_vlsm.core.errors import ImageError, VLSMError


def make_folder(root: Path, stems=("a", "b", "c"), image_ext=".png", mask_ext=".png") -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for stem in stems:
        image = rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)
        mask = np.zeros((20, 30), np.uint8)
        mask[5:12, 8:20] = 255
        write(root / "images" / f"{stem}{image_ext}", image)
        write(root / "masks" / f"{stem}{mask_ext}", mask)
    return root


def write(path: Path, array) -> None:
    if path.suffix in (".tif", ".tiff"):
        tifffile.imwrite(path, array)
    else:
        iio.imwrite(path, array)


def test_pairs_by_stem_sorted_and_lazy(tmp_path):
    root = make_folder(tmp_path, stems=("c", "a", "b"))
    samples = read_folder(root, prompts=["polyp", "pink polyp", "polyp"])
    assert [s.name for s in samples] == ["a", "b", "c"]
    s = samples[0]
    assert isinstance(s, FileSample) and s.prompts == ("polyp", "pink polyp")  # repeats dropped
    assert s.image.shape == (20, 30, 3) and s.image.dtype == np.uint8
    assert s.mask.dtype == bool and s.mask.sum() == 7 * 12 and s.mask[5, 8] and not s.mask[0, 0]


@pytest.mark.parametrize("image_ext, mask_ext", [(".jpg", ".png"), (".tif", ".tif"), (".png", ".jpeg")])
def test_formats(tmp_path, image_ext, mask_ext):
    samples = read_folder(make_folder(tmp_path, ("x",), image_ext, mask_ext), prompts="lesion")
    mask = samples[0].mask
    assert samples[0].image.shape[:2] == (20, 30) and samples[0].prompts == ("lesion",)
    # JPEG masks are thresholded at half range: compression noise near edges is not foreground
    assert abs(int(mask.sum()) - 7 * 12) <= (12 if mask_ext == ".jpeg" else 0)


def test_any_nonzero_label_and_colour_masks_are_foreground(tmp_path):
    root = make_folder(tmp_path, ("x", "y"))
    label = np.zeros((20, 30), np.uint8)
    label[0, 0], label[1, 1] = 1, 7
    write(root / "masks" / "x.png", label)
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 3] = 255  # opaque everywhere: alpha is not foreground
    rgba[2, 2, 0] = 200
    write(root / "masks" / "y.png", rgba)
    x, y = read_folder(root, prompts="p")
    assert x.mask.sum() == 2 and y.mask.sum() == 1 and y.mask[2, 2]


def test_unmatched_stems_are_listed(tmp_path):
    root = make_folder(tmp_path, ("a", "b"))
    write(root / "images" / "only_image.png", np.zeros((4, 4), np.uint8))
    write(root / "masks" / "only_mask.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(DataError, match="images without a mask: only_image; masks without an image: only_mask"):
        read_folder(root, prompts="p")


@pytest.mark.parametrize(
    "setup, match",
    [
        (lambda r: (r / "masks").rmdir(), "images/ and masks/"),
        (lambda r: None, "no prompt"),
        (lambda r: write(r / "images" / "b.jpg", np.zeros((4, 4, 3), np.uint8)), "several files with the stem"),
    ],
)
def test_folder_errors(tmp_path, setup, match):
    root = tmp_path / "d"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    if "images/" not in match:
        make_folder(root, ("b",))
    setup(root)
    with pytest.raises(DataError, match=match):
        read_folder(root, prompts=None if match == "no prompt" else "p")
    assert issubclass(DataError, VLSMError)


def test_medvlsm_annotation_file(tmp_path):
    root = make_folder(tmp_path / "d", ("a", "b", "c"))
    ann = tmp_path / "train.json"
    ann.write_text(json.dumps([
        {"img_name": "a.png", "mask_name": "a.png", "prompts": {"p0": "", "p1": "polyp", "p2": ["pink polyp", "a polyp"]}},
        {"image": "images/b.png", "mask": "masks/b.png", "prompt": "small polyp"},
        {"file_name": "c.png", "mask_path": "c.png", "sentences": ["polyp in the lower left"]},
    ]))
    samples = read_folder(root, ann=ann)
    assert [s.name for s in samples] == ["a", "b", "c"]
    assert samples[0].prompts == ("polyp", "pink polyp", "a polyp")  # empty p0 dropped, lists flattened
    assert samples[1].prompts == ("small polyp",) and samples[2].prompts == ("polyp in the lower left",)
    assert samples[1].image_path == root / "images" / "b.png" and samples[2].mask_path == root / "masks" / "c.png"
    # --prompt wins over the file's phrasings
    assert all(s.prompts == ("polyp",) for s in read_folder(root, prompts=["polyp"], ann=ann))
    # a wrapper object with the list under a common key
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"annotations": json.loads(ann.read_text())}))
    assert len(read_folder(root, ann=wrapped)) == 3


@pytest.mark.parametrize(
    "entry, match",
    [
        ({"img_name": "../../secret.png", "mask_name": "a.png", "prompts": "p"}, "outside"),
        ({"img_name": "/etc/passwd", "mask_name": "a.png", "prompts": "p"}, "outside"),
        ({"img_name": "zzz.png", "mask_name": "a.png", "prompts": "p"}, "not found"),
        ({"mask_name": "a.png", "prompts": "p"}, "no image name"),
        ({"img_name": "a.png", "mask_name": "a.png"}, "no prompts for a"),
    ],
)
def test_annotation_errors(tmp_path, entry, match):
    root = make_folder(tmp_path / "d", ("a",))
    (tmp_path / "secret.png").write_bytes(b"x")
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps([entry]))
    with pytest.raises(DataError, match=match):
        read_folder(root, ann=ann)


def test_annotation_file_must_be_a_list(tmp_path):
    root = make_folder(tmp_path / "d", ("a",))
    for text, match in (("{not json", "cannot read"), ('{"x": 1}', "JSON list"), ("[]", "no entries")):
        (tmp_path / "ann.json").write_text(text)
        with pytest.raises(DataError, match=match):
            read_folder(root, ann=tmp_path / "ann.json")


def test_unreadable_image_is_an_image_error(tmp_path):
    root = make_folder(tmp_path, ("a",))
    (root / "images" / "a.png").write_bytes(b"not a png")
    with pytest.raises(ImageError, match="cannot read"):
        _ = read_folder(root, prompts="p")[0].image  # the image loads lazily: reading it raises


class Named:
    def __init__(self, name):
        self.name = name


def test_split_is_deterministic_stable_and_about_a_fifth():
    samples = [Named(f"case{i:03d}") for i in range(200)]
    train, val = split_train_val(samples, 0.2, seed=0)
    assert len(train) + len(val) == 200 and 25 <= len(val) <= 55
    again = split_train_val(list(reversed(samples)), 0.2, seed=0)[1]
    assert {s.name for s in again} == {s.name for s in val}
    grown = split_train_val(samples + [Named("new1"), Named("new2")], 0.2, seed=0)[1]
    assert {s.name for s in val} <= {s.name for s in grown}  # adding samples moves nobody
    other_seed = split_train_val(samples, 0.2, seed=1)[1]
    assert {s.name for s in other_seed} != {s.name for s in val}


def test_split_small_sets():
    one_train, one_val = split_train_val([Named("only")], 0.2)
    assert len(one_train) == 1 and one_val == []
    train, val = split_train_val([Named("a"), Named("b")], 0.2)
    assert len(train) == 1 and len(val) == 1
    train, val = split_train_val([Named(n) for n in "abcdef"], 0.0)
    assert len(train) == 6 and val == []
    with pytest.raises(DataError, match="val_fraction"):
        split_train_val([Named("a")], 1.5)
