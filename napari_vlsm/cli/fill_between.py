"""``napari-vlsm fill-between SPARSE --out DENSE``: a sparse label map (some slices annotated) made
dense by shape-based interpolation (core.volume_edit.fill_between), on the input's own grid.

Every non-zero label is filled on its own between the annotated slices. A slice that holds any
label counts as annotated for every label (``--keys annotated``: a structure absent there ends
before it); ``--keys own`` uses only each label's own slices (each structure annotated on its own
slices). Annotated slices and slices outside the first..last annotated one are written unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..core.errors import VLSMError

AXES = {"z": 0, "axial": 0, "y": 1, "coronal": 1, "x": 2, "sagittal": 2}


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "fill-between", help="fill the slices between annotated slices of a label map",
        description="Interpolate a sparse label map (every few slices annotated) into a dense one on the "
                    "input's own voxel grid: every non-zero label on its own, annotated slices unchanged.")
    p.add_argument("input", metavar="SPARSE", help="label map: NIfTI, NRRD, MHA or a DICOM series")
    p.add_argument("--out", required=True, metavar="DENSE", help="output NIfTI (.nii.gz or .nii)")
    p.add_argument("--axis", default="z", choices=sorted(AXES),
                   help="the axis the slices were annotated along, in patient terms: z (axial, default), "
                        "y (coronal) or x (sagittal)")
    p.add_argument("--keys", default="annotated", choices=("annotated", "own"),
                   help="annotated (default): a slice holding any label is annotated for all labels; "
                        "own: each label is filled between its own slices only")
    p.add_argument("--method", default=None, choices=("sdf", "aligned", "components"),
                   help="interpolation (default components, the best measured; docs/volumes.md)")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.set_defaults(func=run)


def label_array(array, path) -> "np.ndarray":  # noqa: F821 (numpy is imported lazily)
    """The file's voxels as whole non-negative label values, or a one-line error."""
    import numpy as np

    data = np.asarray(array)
    if data.dtype.kind == "f":
        if not np.all(np.isfinite(data)) or not np.array_equal(data, np.round(data)):
            raise VLSMError(f"{path} holds fractional values; pass a label map (whole numbers, 0 = background)")
        data = data.astype(np.int64)
    if data.size and data.min() < 0:
        raise VLSMError(f"{path} holds negative values; pass a label map (0 = background, labels 1 and up)")
    return data


def run(args) -> int:
    import numpy as np

    from ..core.medical import read_volume, write_mask
    from ..core.volume_edit.fill_between import DEFAULT_METHOD, annotated_slices, fill_between, fill_label_map

    out = Path(args.out).expanduser()
    if not out.name.lower().endswith((".nii", ".nii.gz")):
        raise VLSMError(f"--out {out}: the dense label map is written as NIfTI; name it .nii.gz or .nii")
    volume = read_volume(args.input)  # MedicalFileError (a VLSMError): one line, exit 2
    labels = label_array(volume.array, args.input)
    axis, method = AXES[args.axis], args.method or DEFAULT_METHOD
    keys = annotated_slices(labels, axis)
    if len(keys) < 2:
        raise VLSMError(f"{args.input} has {len(keys)} annotated slice(s) along {args.axis}; fill between "
                        "needs at least two (or pick the axis they were drawn on with --axis)")
    if args.keys == "own":
        dense = labels.copy()
        for value in np.unique(labels[labels != 0]):
            own = annotated_slices(labels == value, axis)
            dense[fill_between(labels == value, own, axis, volume.spacing, method) & (dense == 0)] = value
    else:
        dense = fill_label_map(labels, keys, axis, volume.spacing, method)
    dense = dense.astype(np.uint8 if dense.max(initial=0) < 256 else np.uint16)
    write_mask(out, dense, volume.geometry, description="napari-vlsm fill-between")
    summary = {"input": str(args.input), "output": str(out), "axis": args.axis, "method": method,
               "annotated_slices": keys, "labels": [int(v) for v in np.unique(dense) if v],
               "filled_slices": int(keys[-1] - keys[0] + 1 - len(keys))}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{out}  {len(summary['labels'])} label(s), {summary['filled_slices']} slice(s) filled between "
              f"{len(keys)} annotated ones along {args.axis}")
    return 0
