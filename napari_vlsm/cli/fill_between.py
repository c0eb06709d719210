"""``napari-vlsm fill-between SPARSE --out DENSE``: a sparse label map (some slices annotated) made
dense by shape-based interpolation (core.volume_edit.fill_between), on the input's own grid.

Every non-zero label is filled on its own between the annotated slices. A slice that holds any
label counts as annotated for every label (``--keys annotated``: a structure absent there ends
before it); ``--keys own`` uses only each label's own slices (each structure annotated on its own
slices). Annotated slices and slices outside the first..last annotated one are written unchanged.
``--probability VALUE=PROB`` (a model's probability map of that structure on the same grid, e.g.
``predict --save-prob``'s ``<stem>__<prompt>__prob.nii.gz``) guides that label's fill where the model
agrees with the annotated slices (core.volume_edit.fill_guided; measured in docs/volumes.md).
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
    p.add_argument("--probability", action="append", default=[], metavar="VALUE=PROB",
                   help="a model's probability map (0..1, on the same grid; predict --save-prob) for label "
                        "VALUE: blended into its fill when the model agrees with the annotated slices "
                        "(Dice >= 0.7 there), else ignored; repeat per label")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.set_defaults(func=run)


def read_probabilities(items, volume, path) -> dict:
    """--probability VALUE=PROB -> {value: probability (canonical grid)}, or a one-line error."""
    import numpy as np

    from ..core.medical import read_volume

    out = {}
    for item in items:
        value, sep, file = item.partition("=")
        if not sep or not value.strip().isdigit() or int(value) == 0 or not file:
            raise VLSMError(f"--probability {item!r}: write VALUE=FILE, e.g. 1=scan__liver__prob.nii.gz")
        prob = read_volume(file)
        if prob.shape != volume.shape or not np.allclose(prob.geometry.canonical_affine, volume.geometry.canonical_affine, atol=1e-3):
            raise VLSMError(f"{file} is not on the voxel grid of {path} ({prob.shape} vs {volume.shape}); "
                            "pass the probability map predict --save-prob wrote for this scan")
        data = np.asarray(prob.array, np.float32)
        if not np.all(np.isfinite(data)) or data.min(initial=0) < 0 or data.max(initial=0) > 1:
            raise VLSMError(f"{file} holds values outside 0..1; pass a probability map (predict --save-prob)")
        out[int(value)] = data
    return out


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
    from ..core.volume_edit.fill_guided import fill_between_guided

    out = Path(args.out).expanduser()
    if not out.name.lower().endswith((".nii", ".nii.gz")):
        raise VLSMError(f"--out {out}: the dense label map is written as NIfTI; name it .nii.gz or .nii")
    volume = read_volume(args.input)  # MedicalFileError (a VLSMError): one line, exit 2
    labels = label_array(volume.array, args.input)
    probabilities = read_probabilities(args.probability, volume, args.input)
    axis, method = AXES[args.axis], args.method or DEFAULT_METHOD
    weights: dict[int, float] = {}

    def fill_one(mask, value, keys):
        if value not in probabilities:
            return fill_between(mask, keys, axis, volume.spacing, method)
        filled, weights[value] = fill_between_guided(mask, keys, probabilities[value], axis, volume.spacing, method)
        return filled

    keys = annotated_slices(labels, axis)
    if len(keys) < 2:
        raise VLSMError(f"{args.input} has {len(keys)} annotated slice(s) along {args.axis}; fill between "
                        "needs at least two (or pick the axis they were drawn on with --axis)")
    if args.keys == "own":
        dense = labels.copy()
        for value in np.unique(labels[labels != 0]):
            own = annotated_slices(labels == value, axis)
            dense[fill_one(labels == value, int(value), own) & (dense == 0)] = value
    else:
        dense = fill_label_map(labels, keys, axis, volume.spacing, method, fill_structure=fill_one)
    dense = dense.astype(np.uint8 if dense.max(initial=0) < 256 else np.uint16)
    write_mask(out, dense, volume.geometry, description="napari-vlsm fill-between")
    summary = {"input": str(args.input), "output": str(out), "axis": args.axis, "method": method,
               "annotated_slices": keys, "labels": [int(v) for v in np.unique(dense) if v],
               "filled_slices": int(keys[-1] - keys[0] + 1 - len(keys)),
               "model_weight": {str(v): w for v, w in sorted(weights.items())}}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{out}  {len(summary['labels'])} label(s), {summary['filled_slices']} slice(s) filled between "
              f"{len(keys)} annotated ones along {args.axis}")
        for value, weight in sorted(weights.items()):
            print(f"label {value}: " + ("guided by the model's probability (it agrees with the annotated slices)"
                                        if weight else "the model disagrees with the annotated slices; plain fill"))
    return 0
