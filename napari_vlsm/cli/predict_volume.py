"""``napari-vlsm predict`` for medical volumes: NIfTI masks on the scan's own voxel grid.

The volume is segmented in its canonical orientation (LPS, axial slices, docs/volumes.md) with ONE
window for the whole scan (``--window``), slice by slice through the engine's ``predict_stack``;
each mask is written as ``<stem>__<prompt>.nii.gz`` (uint8, 0/1) with the input's shape and affine
(a NIfTI input's own header), so it lies on the scan in any viewer.
"""

from __future__ import annotations

from pathlib import Path

from .outputs import output_path, probability_path


def window_of(args, volume) -> tuple[float, float]:
    from ..core.medical.windows import window_for

    # rgb=False: a volume's last axis is x, even when it has 3 or 4 voxels (napari's colour guess)
    return window_for(getattr(args, "window", None), volume.array, volume.modality, rgb=False)


def segment_volume(seg, volume, prompts, args, bar) -> dict:
    """-> {prompt: (mask (z, y, x) uint8 0/1, probability float32 or None)} and the window used."""
    from ..core.stack_arrays import stack_arrays

    window = window_of(args, volume)
    shape = volume.shape
    results = seg.predict_stack(volume.array, prompts, threshold=args.threshold, batch_size=args.batch_size,
                                window=window, rgb=False)
    arrays = stack_arrays(results, shape[:1], len(prompts), probabilities=args.save_prob, plane=shape[1:],
                          on_slice=lambda n: bar.set_postfix_str(f"slice {n}/{shape[0]}"))
    probs = arrays.probabilities
    return {p: (arrays.masks[k], None if probs is None else probs[k]) for k, p in enumerate(prompts)}, window


def write_volume_outputs(path, stem, slugs, volume, results, window, args, provenance) -> list[dict]:
    import numpy as np

    from ..core.medical import write_mask
    from .statistics_output import attach, statistics_row, wanted

    out, records, stats = Path(args.out).expanduser(), [], []
    for (prompt, (mask, prob)), name in zip(results.items(), slugs):
        target = output_path(out, stem, name, ".nii.gz")
        mask = clean_volume(mask, volume, args, f"{stem}: {prompt}")
        write_mask(target, mask, volume.geometry, description=f"napari-vlsm: {prompt}")
        record = {"input": str(path), "prompt": prompt, "path": str(target), "shape": list(mask.shape),
                  "foreground_fraction": round(float(np.count_nonzero(mask)) / mask.size, 6),
                  "format": "nifti", "window": list(window), "modality": volume.modality,
                  "spacing_zyx": list(volume.spacing)}
        if prob is not None:
            prob_path = probability_path(out, stem, name, ".nii.gz")
            write_mask(prob_path, prob, volume.geometry, description=f"napari-vlsm probability: {prompt}")
            record["probability_path"] = str(prob_path)
        if wanted(args):  # each prompt's mask on its own (masks may overlap): one row each
            stats.append(statistics_row(mask, volume.spacing, volume.array, prompt))
        records.append(record)
    if wanted(args):
        attach(records, stats, out, stem)
    return records


# ---------------------------------------------------------------- clean-up and statistics (volumes)
def add_volume_args(p) -> None:
    """predict's options for medical volumes: 3D clean-up per structure and statistics."""
    g = p.add_argument_group("volumes (NIfTI, DICOM, NRRD, MHA): clean-up and statistics")
    g.add_argument("--keep-largest", action="store_true",
                   help="keep only the largest 3D connected part of each structure")
    g.add_argument("--fill-holes", action="store_true", help="fill holes enclosed in 3D in each structure")
    g.add_argument("--min-size-mm3", type=_mm3, default=0.0, metavar="V",
                   help="remove islands smaller than V mm³ (from the voxel spacing; default 0: off)")
    g.add_argument("--statistics", action="store_true",
                   help="write <stem>__statistics.csv (any input): per structure voxels, volume (mL) or "
                        "area (mm² when the spacing is known, else pixels), mean and std of the image "
                        "inside (HU for CT), slice range")


def _mm3(text: str) -> float:
    import argparse
    import math

    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"a volume in mm³, 0 or more; got {text!r}")
    return value


def cleanup_options(args):
    from ..core.volume_edit.cleanup import CleanupOptions

    return CleanupOptions(bool(getattr(args, "keep_largest", False)), bool(getattr(args, "fill_holes", False)),
                          float(getattr(args, "min_size_mm3", 0.0) or 0.0))


def clean_volume(labels, volume, args, what: str):
    """``labels`` (mask 0/1 or label map) cleaned as the options ask; a structure the clean-up
    would remove entirely is kept as predicted, with a warning."""
    import warnings

    from ..core.volume_edit.cleanup import clean_labels

    options = cleanup_options(args)
    if not options.any:
        return labels
    spared: list = []
    out = clean_labels(labels, options, volume.spacing, spared=spared)
    for value in spared:
        warnings.warn(f"{what}: {options.describe()} would remove structure {value} entirely; "
                      "it is written as predicted", stacklevel=2)
    return out


def finish_label_map(array, volume, args, stem, finished: dict | None = None):
    """predict --multilabel's label map of a volume, cleaned as the options ask; ``finished`` (a dict)
    keeps it under "labels" for its statistics (``statistics_output.attach_label_map``)."""
    if array.dtype.kind == "f":  # a probability map: written as it is
        return array
    array = clean_volume(array, volume, args, stem)
    if finished is not None:
        finished["labels"] = array
    return array
