"""Inputs a clinic's files have and the first tests did not: 2D and singleton-4D NIfTI (the mask
keeps the input's shape), MetaImage modality codes (``MET_MOD_CT`` is CT), and bad files given
alone to the CLI (one line, exit code 2) or opened in napari (one clear notification)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from napari_vlsm.cli import main
from napari_vlsm.core.medical import read_volume, write_mask

from helpers import dicom_series

pytestmark = pytest.mark.usefixtures("one_thread")
PERMUTED = np.array([[0, 0, -2.5, 40.0], [1.1, 0, 0, -20.0], [0, -0.9, 0, 15.0], [0, 0, 0, 1]])


@pytest.mark.parametrize("shape", [(12, 9), (12, 9, 4, 1), (12, 9, 4, 1, 1)], ids=["2d", "4d-singleton", "5d"])
def test_mask_keeps_the_shape_of_a_2d_or_singleton_nifti(tmp_path, shape):
    data = np.random.default_rng(0).integers(-500, 500, size=shape).astype(np.int16)
    nib.save(nib.Nifti1Image(data, PERMUTED), tmp_path / "scan.nii.gz")
    volume = read_volume(tmp_path / "scan.nii.gz")
    mask = np.zeros(volume.shape, np.uint8)
    mark = tuple(n // 2 for n in volume.shape)
    mask[mark] = 1
    back = nib.load(write_mask(tmp_path / "mask.nii.gz", mask, volume.geometry))
    assert back.shape == shape  # what nibabel (and the checker) compare with the input's shape
    np.testing.assert_allclose(back.affine, PERMUTED, atol=1e-4)
    ijk = np.argwhere(np.asarray(back.dataobj).reshape(back.shape[:3] if len(shape) > 2 else shape + (1,)))[0]
    np.testing.assert_allclose((back.affine @ np.append(ijk, 1.0))[:3], volume.geometry.world_ras(mark), atol=1e-4)
    assert data.reshape(volume.geometry.original_shape)[tuple(ijk)] == volume.array[mark]


@pytest.mark.parametrize(("code", "expected"), [("MET_MOD_CT", "CT"), ("MET_MOD_MR", "MR"),
                                                ("MET_MOD_UNKNOWN", ""), ("MET_MOD_OTHER", "")])
def test_metaimage_modality_codes(tmp_path, code, expected):
    import SimpleITK as sitk

    from napari_vlsm.core.medical.windows import resolve_window

    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 4, 5), np.int16)), str(tmp_path / "scan.mha"))
    raw = (tmp_path / "scan.mha").read_bytes()  # SimpleITK writes no Modality; scanners' exports do
    (tmp_path / "scan.mha").write_bytes(raw.replace(b"NDims = 3\n", f"NDims = 3\nModality = {code}\n".encode(), 1))
    volume = read_volume(tmp_path / "scan.mha")
    assert volume.modality == expected
    if expected != "MR":  # a CT (or unknown) MetaImage takes the Hounsfield presets
        assert resolve_window("soft-tissue", volume.array, volume.modality) == (-160.0, 240.0)


def png_bytes():
    import io

    import imageio.v3 as iio

    buffer = io.BytesIO()
    iio.imwrite(buffer, np.zeros((8, 8), np.uint8), extension=".png")
    return buffer.getvalue()


BAD_FILES = {
    "truncated.nii.gz": lambda: nib.Nifti1Image(np.ones((20, 20, 20), np.int16), np.eye(4)).to_bytes()[:600],
    "empty.nii.gz": lambda: b"",
    "picture.nii.gz": png_bytes,
    "empty.dcm": lambda: b"",
    "garbage.mha": lambda: b"not a MetaImage\n",
}


def make_bad(tmp_path, name):
    import gzip

    data = BAD_FILES[name]()
    if name == "truncated.nii.gz":
        data = gzip.compress(data)
    (tmp_path / name).write_bytes(data)
    return tmp_path / name


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_a_bad_file_alone_is_one_line_and_exit_2(capsys, tmp_path, tiny_model_dir, name):
    path = make_bad(tmp_path, name)
    code = main(["predict", "--model", str(tiny_model_dir), "--device", "cpu", "--precision", "fp32",
                 "--prompt", "liver", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("napari-vlsm: error: ") and name in lines[0]


def test_a_picture_named_nii_gz_says_what_it_is(tmp_path):
    from napari_vlsm.core.medical import MedicalFileError

    with pytest.raises(MedicalFileError, match=r"picture\.nii\.gz is a PNG image"):
        read_volume(make_bad(tmp_path, "picture.nii.gz"))


@pytest.mark.parametrize("case", ["no-dicom", "missing"])
def test_folders_without_a_series_are_one_line_and_exit_2(capsys, tmp_path, tiny_model_dir, case):
    folder = tmp_path / "series"
    if case == "no-dicom":
        folder.mkdir()
        (folder / "notes.txt").write_text("not an image")
    code = main(["predict", "--model", str(tiny_model_dir), "--prompt", "liver", str(folder), "--out",
                 str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and str(folder) in err and "Traceback" not in err


def test_a_patient_folder_with_the_series_two_levels_down_says_where_to_point(capsys, tmp_path, tiny_model_dir):

    (tmp_path / "patient" / "study").mkdir(parents=True)
    dicom_series(tmp_path / "patient" / "study" / "ct", [0.0, 2.0])
    code = main(["predict", "--model", str(tiny_model_dir), "--prompt", "liver", str(tmp_path / "patient"),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "series folder itself" in err


@pytest.mark.gui
@pytest.mark.parametrize("name", ["truncated.nii.gz", "picture.nii.gz", "empty.dcm"])
def test_napari_reader_shows_the_reason_of_a_bad_file(make_napari_viewer, monkeypatch, tmp_path, name):
    pytest.importorskip("napari")
    from napari.utils import notifications

    shown = []
    monkeypatch.setattr(notifications, "show_error", shown.append)
    path = make_bad(tmp_path, name)
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin="napari-vlsm")  # File > Open with napari-vlsm's reader
    assert layers == [] and len(viewer.layers) == 0
    # one notification: a head naming the file within what napari's toast shows (texts.HEAD_MAX),
    # then one line of details with the reason (behind the toast's arrow)
    head, details = shown[0].split("\n")
    assert len(shown) == 1 and name in head and len(head) <= 40 and details.startswith("napari-vlsm: ")


@pytest.mark.gui
def test_launcher_image_that_is_bad_is_one_line_and_no_layer(make_napari_viewer, capsys, tmp_path):
    pytest.importorskip("napari")
    from napari_vlsm._napari.launch import add_image, parse_args

    viewer = make_napari_viewer()
    add_image(viewer, parse_args(["--image", str(make_bad(tmp_path, "truncated.nii.gz"))]))
    err = capsys.readouterr().err
    assert len(viewer.layers) == 0 and "truncated.nii.gz" in err and "Traceback" not in err


def test_files_of_one_series_given_one_by_one_are_segmented_once(capsys, tmp_path, tiny_model_dir, monkeypatch):
    """``predict series/*.dcm``: every file stands for the whole series, so one mask, one series read."""

    from napari_vlsm.core.medical import dicom

    folder = dicom_series(tmp_path / "series", [0.0, 2.0, 4.0], names=["c.dcm", "a.dcm", "b.dcm"])
    reads = []
    original = dicom.read_dicom
    monkeypatch.setattr(dicom, "read_dicom", lambda path: reads.append(path) or original(path))
    files = sorted(folder.iterdir())
    code = main(["predict", "--model", str(tiny_model_dir), "--device", "cpu", "--precision", "fp32",
                 "--prompt", "liver", *map(str, files), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").glob("*.nii.gz")) == ["a__liver.nii.gz"] and len(reads) == 1


@pytest.mark.parametrize("case", ["zero-sform", "nan-sform", "rank-2-sform"])
def test_nifti_with_a_broken_affine_is_one_clear_error(capsys, tmp_path, tiny_model_dir, case):
    """A header whose sform is all zeros, not finite or flat: no volume can be placed; say so (no traceback)."""
    sform = {"zero-sform": np.zeros((4, 4)), "nan-sform": np.diag([np.nan, 1.0, 1.0, 1.0]),
             "rank-2-sform": np.array([[1.0, 0, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]])}[case]
    image = nib.Nifti1Image(np.ones((6, 5, 4), np.int16), None)  # no affine: nibabel keeps the header's sform
    image.header.set_sform(sform, code=1)
    image.header.set_qform(None, code=0)
    nib.save(image, tmp_path / "broken.nii.gz")
    assert nib.load(tmp_path / "broken.nii.gz").header["sform_code"] == 1
    code = main(["predict", "--model", str(tiny_model_dir), "--prompt", "liver", str(tmp_path / "broken.nii.gz"),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "broken.nii.gz" in err and "affine" in err


def test_series_with_slices_of_another_orientation_is_refused(tmp_path):
    """A localizer (or a second stack) under the same series UID must not be stacked into the volume."""
    import pydicom

    from napari_vlsm.core.medical import DicomSeriesError

    folder = dicom_series(tmp_path / "s", [0.0, 2.0, 4.0, 6.0])
    ds = pydicom.dcmread(folder / "s003.dcm")
    ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]  # a sagittal slice
    ds.save_as(folder / "s003.dcm")
    with pytest.raises(DicomSeriesError, match="orientation") as err:
        read_volume(folder)
    assert str(folder) in str(err.value) and "own folder" in str(err.value)


def test_series_with_slices_of_another_size_names_the_reason(tmp_path):
    import pydicom

    from napari_vlsm.core.medical import DicomSeriesError

    folder = dicom_series(tmp_path / "s", [0.0, 2.0, 4.0])
    ds = pydicom.dcmread(folder / "s001.dcm")
    ds.Rows = ds.Columns = 64
    ds.PixelData = np.zeros((64, 64), np.int16).tobytes()
    ds.save_as(folder / "s001.dcm")
    with pytest.raises(DicomSeriesError, match="sizes") as err:
        read_volume(folder)
    assert str(folder) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(("size", "suffix"), [((9, 7), ".nrrd"), ((9, 7, 4, 1), ".mha")], ids=["2d-nrrd", "4d-singleton-mha"])
def test_mask_of_a_2d_or_singleton_sitk_file_has_the_shape_of_its_reference_nifti(tmp_path, size, suffix):
    """The reference: the NIfTI SimpleITK itself writes of the input."""
    import SimpleITK as sitk

    array = np.random.default_rng(0).integers(0, 500, size=size[:3][::-1]).astype(np.int16)
    image = sitk.GetImageFromArray(array)
    if len(size) == 4:  # (x, y, z, 1): one time point
        image = sitk.JoinSeries([image])
    image.SetOrigin(tuple(float(v) for v in range(3, 3 + len(size))))
    image.SetSpacing(tuple(0.5 + v for v in range(len(size))))
    sitk.WriteImage(image, str(tmp_path / f"scan{suffix}"))
    sitk.WriteImage(sitk.ReadImage(str(tmp_path / f"scan{suffix}")), str(tmp_path / "reference.nii.gz"))
    reference = nib.load(tmp_path / "reference.nii.gz")
    volume = read_volume(tmp_path / f"scan{suffix}")
    mask = np.zeros(volume.shape, np.uint8)
    mask[0, 2, 3] = 1
    back = nib.load(write_mask(tmp_path / "mask.nii.gz", mask, volume.geometry))
    assert back.shape == reference.shape
    np.testing.assert_allclose(back.affine, reference.affine, atol=1e-4)
    flat = np.asarray(back.dataobj).reshape(volume.geometry.original_shape)
    assert np.asarray(reference.dataobj).reshape(volume.geometry.original_shape)[tuple(np.argwhere(flat)[0])] \
        == volume.array[0, 2, 3]


def test_one_dicom_file_named_by_its_uid_is_read_as_its_series(tmp_path):
    """Exports often name files by SOP UID (``1.2.840...7.3``): the last dot is no suffix."""

    from napari_vlsm.core.image_files import read_input

    names = ["1.2.826.0.1.3680043.8.498.11", "1.2.826.0.1.3680043.8.498.12", "1.2.826.0.1.3680043.8.498.13"]
    folder = dicom_series(tmp_path / "s", [0.0, 2.0, 4.0], names=names)
    volume = read_input(folder / names[1])
    assert hasattr(volume, "geometry") and volume.shape[0] == 3


def test_library_errors_are_reduced_to_their_reason():
    from napari_vlsm.core.medical.errors import reason_of

    itk = RuntimeError("Exception thrown in SimpleITK ImageSeriesReader_Execute: /tmp/b/itkImageFileReader.hxx:338:\n"
                       "ImageIO returns IO region that does not fully contain the requested region.\n  Dimension: 3\n")
    assert reason_of(itk) == "ImageIO returns IO region that does not fully contain the requested region."
    sitk = RuntimeError("Exception thrown in SimpleITK ReadImage: /x/sitkImageReaderBase.cxx:97:\n"
                        "sitk::ERROR: Unable to determine ImageIO reader for \"a.mha\"")
    assert reason_of(sitk) == 'Unable to determine ImageIO reader for "a.mha"'
    assert reason_of(ValueError("plain")) == "plain" and reason_of(EOFError()) == "EOFError"


def test_gantry_tilted_series_warns_that_positions_drift(tmp_path):
    """Slices shifted sideways (gantry tilt): SimpleITK stacks them straight; say so, with the drift."""
    import pydicom

    from napari_vlsm.core.medical.errors import GantryTiltWarning

    folder = dicom_series(tmp_path / "s", [0.0, 2.0, 4.0, 6.0, 8.0])
    for i, path in enumerate(sorted(folder.iterdir())):
        ds = pydicom.dcmread(path)
        ds.ImagePositionPatient = [-10.0, -20.0 + 1.0 * i, 2.0 * i]  # 1 mm forward per 2 mm slice
        ds.save_as(path)
    with pytest.warns(GantryTiltWarning, match="gantry tilt") as record:
        read_volume(folder)
    assert "4.0" in str(record[0].message)  # 4 slices x 1 mm sideways at the last slice
