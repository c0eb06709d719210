"""Files and folders -> worklist candidates, classified from headers only (no image is decoded).

- A folder is walked recursively (hidden entries and the project's own folder skipped).
- A folder holding DICOM files is one item per series in it: the folder itself when it holds one
  series, else one file of each series (any one file of a series stands for the whole series).
  A DICOM series' identity is its SeriesInstanceUID, so the folder and one of its files are one item.
- NIfTI / NRRD / MHA: a volume; a TIFF with several planes: a stack; PNG / JPEG / 2D TIFF: an image.
- Anything else, or a file whose header cannot be read: a candidate with the reason it is unreadable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..image_files import IMAGE_SUFFIXES, TIFF_SUFFIXES
from ..medical import formats


@dataclass(frozen=True)
class Candidate:
    path: Path
    identity: str  # what makes two inputs the same item
    kind: str  # "image" | "stack" | "volume"
    shape: tuple[int, ...] = ()
    reason: str = ""  # non-empty: unreadable, and why

    @property
    def name(self) -> str:
        return self.path.name


def stamp(path: Path) -> str:
    """Size and modification time: a file that changes loses its cached score."""
    try:
        st = path.stat()
    except OSError:
        return ""
    if path.is_dir():
        return f"dir:{st.st_mtime_ns}"
    return f"{st.st_size}:{st.st_mtime_ns}"


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0][:200] if text else type(err).__name__)


def _dicom_uid(path: Path) -> str | None:
    """The SeriesInstanceUID from the header (pixels never read); None when not DICOM or damaged."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SeriesInstanceUID"])
        return str(ds.SeriesInstanceUID)
    except Exception:  # noqa: BLE001 - pydicom raises many kinds on damaged or non-DICOM files
        return None


def _dicom_folder(folder: Path, files: list[Path]) -> list[Candidate]:
    series: dict[str, list[Path]] = {}
    out = []
    for f in files:
        uid = _dicom_uid(f)
        if uid is None:
            out.append(Candidate(f, str(f), "volume", reason="not a readable DICOM file (damaged or not DICOM)"))
        else:
            series.setdefault(uid, []).append(f)
    if len(series) == 1:
        uid, members = next(iter(series.items()))
        return out + [Candidate(folder, f"dicom:{uid}", "volume", (len(members),))]
    return out + [Candidate(members[0], f"dicom:{uid}", "volume", (len(members),)) for uid, members in series.items()]


def _image_header(path: Path) -> Candidate:
    suffix = formats.full_suffix(path)
    if suffix in TIFF_SUFFIXES:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            shape = tuple(int(n) for n in tif.series[0].shape)
            # as image_files reads it: RGB (interleaved or planar, unsigned) is one colour image
            rgb_tag = tif.pages[0].photometric == 2 and tif.pages[0].dtype.kind == "u"
        rgb = len(shape) == 3 and (shape[-1] in (3, 4) or (rgb_tag and shape[0] in (3, 4)))
        kind = "stack" if len(shape) >= 3 and not rgb and max(shape[:-2]) > 1 else "image"
        return Candidate(path, str(path), kind, shape)
    from PIL import Image

    with Image.open(path) as im:  # the header only; pixels are decoded on first use
        return Candidate(path, str(path), "image", (im.height, im.width))


def _volume_header(path: Path) -> Candidate:
    if formats.kind(path) == "nifti":
        import nibabel as nib

        shape = nib.load(path).shape  # header only: the data stays on disk
    else:
        from ..medical.sitk_files import sitk

        reader = sitk().ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        shape = reader.GetSize()[::-1]
    return Candidate(path, str(path), "volume", tuple(int(n) for n in shape))


def classify_file(path: Path) -> Candidate:
    """One file -> a candidate; never raises (a failure is the candidate's reason)."""
    suffix = formats.full_suffix(path)
    try:
        if suffix in formats.DICOM_SUFFIXES or (suffix not in formats.VOLUME_SUFFIXES + IMAGE_SUFFIXES
                                                and formats.looks_like_dicom(path)):
            uid = _dicom_uid(path)
            if uid is None:
                return Candidate(path, str(path), "volume", reason="not a readable DICOM file (damaged or not DICOM)")
            return Candidate(path, f"dicom:{uid}", "volume")
        if suffix in formats.VOLUME_SUFFIXES:
            return _volume_header(path)
        if suffix in IMAGE_SUFFIXES:
            return _image_header(path)
    except Exception as err:  # noqa: BLE001 - any reader failure is this file's problem, said in its row
        return Candidate(path, str(path), "volume" if suffix in formats.VOLUME_SUFFIXES else "image",
                         reason=f"cannot read its header: {_first_line(err)}")
    what = suffix or "no suffix"
    return Candidate(path, str(path), "image", reason=f"not an image or volume ({what}); "
                     "napari-vlsm reads PNG, JPEG, TIFF, NIfTI, NRRD, MHA and DICOM")


def _walk(folder: Path, skip: Path | None) -> list[Candidate]:
    out: list[Candidate] = []
    for root, dirs, names in os.walk(folder):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (skip is None or here / d != skip))
        # DICOMDIR: the index of a DICOM medium, not an image (its series are in the folders below)
        files = [here / n for n in sorted(names) if not n.startswith(".") and n.upper() != "DICOMDIR"]
        dicom = [f for f in files if formats.looks_like_dicom(f)]
        rest = [f for f in files if f not in set(dicom)]
        if dicom:
            out.extend(_dicom_folder(here, dicom))
        out.extend(classify_file(f) for f in rest)
    return out


def discover(paths, skip: Path | None = None) -> list[Candidate]:
    """Expand and classify inputs, in the order given (folders sorted). Paths must exist."""
    out: list[Candidate] = []
    for raw in paths:
        path = Path(raw).expanduser().resolve()
        if path.is_dir():
            out.extend(_walk(path, skip))
        else:
            out.append(classify_file(path))
    return out
