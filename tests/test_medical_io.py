"""Medical volumes in and masks out: orientation, world positions, the original grid, bad files.

Every check of a position is made against nibabel's reading of the INPUT file (or SimpleITK's of a
DICOM series), never against the reader's own bookkeeping alone, so a flipped or swapped axis fails.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from napari_vlsm.core.medical import (
    MedicalFileError,
    ObliqueWarning,
    read_volume,
    write_mask,
)

from helpers import dicom_series

RAS_FROM_LPS = np.diag([-1.0, -1.0, 1.0])


def napari_world_ras(volume, index_zyx):
    """Where napari puts a voxel with the layer's scale and translate (LPS listed z, y, x) -> RAS."""
    lps_zyx = np.asarray(volume.origin) + np.asarray(volume.spacing) * np.asarray(index_zyx)
    return RAS_FROM_LPS @ lps_zyx[::-1]


def file_index(affine, world_ras):
    ijk = np.linalg.inv(affine) @ np.append(world_ras, 1.0)
    assert np.allclose(ijk[:3], np.round(ijk[:3]), atol=1e-3)
    return tuple(int(v) for v in np.round(ijk[:3]))


def check_orientation(volume, index=(1, 1, 1)):
    """Canonical x runs to the patient's left, y to posterior, z to superior (RAS: -x, -y, +z)."""
    g, c = volume.geometry, np.asarray(index)
    steps = [g.world_ras(c + np.eye(3, dtype=int)[a]) - g.world_ras(c) for a in range(3)]  # z, y, x steps
    assert steps[2][0] == pytest.approx(-np.linalg.norm(steps[2]), rel=0.2)  # +x -> left (RAS x falls)
    assert steps[1][1] == pytest.approx(-np.linalg.norm(steps[1]), rel=0.2)  # +y -> posterior
    assert steps[0][2] == pytest.approx(np.linalg.norm(steps[0]), rel=0.2)  # +z -> superior


def round_trip(volume, source_affine, source_data, tmp_path, exact_napari=True, n=25, seed=0):
    """Mark voxels, write, read back with nibabel: each sits where the scan's voxel is."""
    rng = np.random.default_rng(seed)
    picks = {tuple(int(rng.integers(0, s)) for s in volume.shape) for _ in range(n)}
    mask = np.zeros(volume.shape, np.uint8)
    for label, c in enumerate(sorted(picks), start=1):
        mask[c] = label
    out = write_mask(tmp_path / "mask.nii.gz", mask, volume.geometry)
    back = nib.load(out)
    assert back.shape == source_data.shape[:3]
    np.testing.assert_allclose(back.affine, source_affine, atol=1e-4)
    written = np.asarray(back.dataobj)
    for label, c in enumerate(sorted(picks), start=1):
        (ijk,) = np.argwhere(written == label)
        world = back.affine @ np.append(ijk, 1.0)
        np.testing.assert_allclose(world[:3], volume.geometry.world_ras(c), atol=1e-3)
        if exact_napari:  # axis-aligned: the layer's scale/translate say the same
            np.testing.assert_allclose(world[:3], napari_world_ras(volume, c), atol=1e-3)
            assert file_index(source_affine, napari_world_ras(volume, c)) == tuple(ijk)
        assert source_data[tuple(ijk)] == volume.array[c]  # the scan's voxel there is the shown one
    return back


# ------------------------------------------------------------------------------------ real files
@pytest.mark.parametrize("name", ["example_ct_sm.nii.gz", "example_mr_sm.nii.gz"])
def test_real_nifti_ras_and_las_round_trip(shared_data, tmp_path, name):
    path = shared_data / "geometry" / "totalseg" / name
    volume = read_volume(path)
    source = nib.load(path)
    assert volume.shape == source.shape[::-1]
    assert not volume.geometry.oblique
    check_orientation(volume)
    back = round_trip(volume, source.affine, np.asarray(source.dataobj), tmp_path)
    assert back.header["qform_code"] == source.header["qform_code"]
    assert back.header["sform_code"] == source.header["sform_code"]


def test_real_dicom_series_sorted_by_position_not_by_name(shared_data, tmp_path):
    import SimpleITK as sitk

    folder = shared_data / "geometry" / "totalseg" / "example_ct_dicom"
    volume = read_volume(folder)
    assert volume.modality == "CT" and volume.shape == (20, 512, 512)
    check_orientation(volume)
    files = sorted(folder.iterdir())  # file-name order, the REVERSE of the spatial order here
    for f in files[:: 6]:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(f))
        single = reader.Execute()
        z_lps = single.GetOrigin()[2]
        k = (z_lps - volume.origin[0]) / volume.spacing[0]
        assert k == pytest.approx(round(k), abs=1e-3)
        np.testing.assert_array_equal(volume.array[round(k)], sitk.GetArrayFromImage(single)[0])
    first_by_name = read_volume(files[0])  # any one file gives the whole series, same grid
    assert first_by_name.geometry.same_grid(volume.geometry)
    # The written mask is on the grid of the NIfTI SimpleITK makes of the series.
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    sitk.WriteImage(reader.Execute(), str(tmp_path / "series.nii.gz"))
    reference = nib.load(tmp_path / "series.nii.gz")
    round_trip(volume, reference.affine, np.asarray(reference.dataobj), tmp_path, n=10)


def test_totalsegmentator_label_map_lands_on_the_series(shared_data):
    """The LAS label map of the series and the LPS series come out on one canonical grid."""
    base = shared_data / "geometry" / "totalseg"
    ct, seg = read_volume(base / "example_ct_dicom"), read_volume(base / "example_seg_dicom.nii.gz")
    assert seg.shape == ct.shape
    np.testing.assert_allclose(seg.origin, ct.origin, atol=1e-3)
    np.testing.assert_allclose(seg.spacing, ct.spacing, atol=1e-4)
    labelled = np.asarray(seg.array) > 0
    assert labelled.any() and (np.asarray(ct.array)[labelled] > -500).mean() > 0.95  # organs, not air


# ------------------------------------------------------------------------------------ synthetic
def _affine(rotation_deg=0.0, perm=(0, 1, 2), flips=(1, 1, 1), spacing=(0.8, 1.3, 2.5), shear=0.0):
    rot = np.deg2rad(rotation_deg)
    r = np.array([[np.cos(rot), -np.sin(rot), 0], [np.sin(rot), np.cos(rot), 0], [0, 0, 1]])
    m = np.zeros((3, 3))
    for src, dst in enumerate(perm):
        m[dst, src] = flips[src] * spacing[src]
    m = r @ m
    m[:, 1] += shear * m[:, 0]
    affine = np.eye(4)
    affine[:3, :3], affine[:3, 3] = m, (-40.0, 25.0, 12.5)
    return affine


CASES = {
    "ras": _affine(),
    "permuted-flipped": _affine(perm=(2, 0, 1), flips=(-1, 1, -1)),
    "pir": _affine(perm=(1, 2, 0), flips=(-1, -1, 1)),
    "oblique-20deg": _affine(rotation_deg=20.0, perm=(1, 0, 2), flips=(1, -1, 1)),
    "sheared": _affine(shear=0.15),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_synthetic_nifti_permuted_and_oblique(tmp_path, case, suffix):
    affine = CASES[case]
    data = np.random.default_rng(1).integers(-1000, 1000, size=(7, 9, 11)).astype(np.int16)
    path = tmp_path / f"scan{suffix}"
    nib.save(nib.Nifti1Image(data, affine), path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        volume = read_volume(path)
        read_volume(path)  # the warning comes once per file
    oblique = [w for w in caught if issubclass(w.category, ObliqueWarning)]
    assert len(oblique) == (1 if case in ("oblique-20deg", "sheared") else 0)
    if oblique:
        assert path.name in str(oblique[0].message)
    check_orientation(volume)
    round_trip(volume, affine, data, tmp_path, exact_napari=not oblique)


def test_uncompressed_nifti_is_memory_mapped(tmp_path):
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    nib.save(nib.Nifti1Image(data, CASES["permuted-flipped"]), tmp_path / "big.nii")
    volume = read_volume(tmp_path / "big.nii")
    assert isinstance(volume.array, np.memmap)


def test_nrrd_and_mha_through_simpleitk(tmp_path):
    import SimpleITK as sitk

    data = np.random.default_rng(2).integers(0, 500, size=(6, 8, 10)).astype(np.int16)  # (k, j, i)
    image = sitk.GetImageFromArray(data)
    image.SetSpacing((0.7, 1.1, 3.0))
    image.SetOrigin((10.0, -20.0, 30.0))
    image.SetDirection((0, 0, 1, -1, 0, 0, 0, -1, 0))  # permuted and flipped
    for suffix in (".nrrd", ".mha"):
        path = tmp_path / f"scan{suffix}"
        sitk.WriteImage(image, str(path))
        sitk.WriteImage(image, str(tmp_path / "ref.nii.gz"))
        reference = nib.load(tmp_path / "ref.nii.gz")
        volume = read_volume(path)
        check_orientation(volume)
        round_trip(volume, reference.affine, np.asarray(reference.dataobj), tmp_path, n=10)


def test_multiframe_dicom_file(tmp_path):
    from pydicom.data import get_testdata_file

    source = get_testdata_file("rtdose.dcm", download=False)
    shutil.copy(source, tmp_path / "dose.dcm")
    volume = read_volume(tmp_path / "dose.dcm")
    assert volume.shape == (15, 10, 10)


# ------------------------------------------------------------------------------------ bad files
def _one_line_naming(err, path):
    text = str(err.value)
    assert "\n" not in text and Path(path).name in text, text
    return text


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_truncated_nifti(tmp_path, suffix):
    data = np.random.default_rng(3).integers(0, 1000, size=(30, 30, 30)).astype(np.int16)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / f"full{suffix}")
    raw = (tmp_path / f"full{suffix}").read_bytes()
    (tmp_path / f"cut{suffix}").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(MedicalFileError) as err:
        read_volume(tmp_path / f"cut{suffix}")
    assert "copy" in _one_line_naming(err, tmp_path / f"cut{suffix}")


def test_not_an_image(tmp_path):
    (tmp_path / "notes.nii.gz").write_text("not a scan")
    with pytest.raises(MedicalFileError) as err:
        read_volume(tmp_path / "notes.nii.gz")
    _one_line_naming(err, tmp_path / "notes.nii.gz")
    (tmp_path / "notes.dcm").write_text("not a scan either")
    with pytest.raises(MedicalFileError) as err:
        read_volume(tmp_path / "notes.dcm")
    assert "not a DICOM" in _one_line_naming(err, tmp_path / "notes.dcm")


def test_four_d_nifti_names_the_fix(tmp_path):
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 3), np.int16), np.eye(4)), tmp_path / "fmri.nii.gz")
    with pytest.raises(MedicalFileError) as err:
        read_volume(tmp_path / "fmri.nii.gz")
    assert "extract one volume" in _one_line_naming(err, tmp_path / "fmri.nii.gz")


def test_folder_with_two_series(tmp_path):
    from pydicom.data import get_testdata_file

    for name in ("CT_small.dcm", "MR_small.dcm"):
        shutil.copy(get_testdata_file(name, download=False), tmp_path / name)
    with pytest.raises(MedicalFileError) as err:
        read_volume(tmp_path)
    assert "2 DICOM series" in _one_line_naming(err, tmp_path)
    assert read_volume(tmp_path / "MR_small.dcm").modality == "MR"  # one file picks its series


def test_dicom_without_pixel_data(tmp_path):
    from pydicom.data import get_testdata_file

    shutil.copy(get_testdata_file("reportsi.dcm", download=False), tmp_path / "report.dcm")
    with pytest.raises(MedicalFileError) as err:
        read_volume(tmp_path / "report.dcm")
    assert "without pixel data" in _one_line_naming(err, tmp_path / "report.dcm")


def test_compressed_transfer_syntax_without_codec(tmp_path):
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.encaps import encapsulate

    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm", download=False))
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.201"  # HTJ2K: GDCM here has no decoder
    ds.PixelData = encapsulate([b"\0" * 64])
    ds["PixelData"].VR = "OB"
    ds.save_as(tmp_path / "htj2k.dcm", enforce_file_format=True)
    with pytest.raises(MedicalFileError) as err:
        read_volume(tmp_path / "htj2k.dcm")
    text = _one_line_naming(err, tmp_path / "htj2k.dcm")
    assert "compressed transfer syntax" in text and "gdcmconv" in text


def test_series_sorted_by_position_whatever_names_and_instance_numbers(tmp_path):
    positions = [6.0, -2.0, 2.0, 0.0, 4.0]
    names = ["e.dcm", "a.dcm", "d.dcm", "b.dcm", "c.dcm"]  # name order: -2, 0, 4, 2, 6
    folder = dicom_series(tmp_path / "s", positions, names=names, instance_numbers=[1, 2, 3, 4, 5])
    volume = read_volume(folder)
    by_position = np.argsort(positions)  # inferior (low z) first
    assert [int(volume.array[z, 0, 0]) for z in range(5)] == [100 * int(n) for n in by_position]
    assert volume.origin[0] == pytest.approx(-2.0) and volume.spacing[0] == pytest.approx(2.0)


def test_series_with_two_slices_at_one_position_is_refused(tmp_path):
    from napari_vlsm.core.medical import DicomSeriesError

    folder = dicom_series(tmp_path / "s", [0.0, 2.0, 2.0, 4.0])
    with pytest.raises(DicomSeriesError, match="same position"):
        read_volume(folder)


def test_series_with_a_gap_warns(tmp_path):
    from napari_vlsm.core.medical.errors import SliceGapWarning

    folder = dicom_series(tmp_path / "s", [0.0, 2.0, 4.0, 8.0, 10.0])
    with pytest.warns(SliceGapWarning, match="unevenly spaced"):
        read_volume(folder)
