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

    out, records = Path(args.out).expanduser(), []
    for (prompt, (mask, prob)), name in zip(results.items(), slugs):
        target = output_path(out, stem, name, ".nii.gz")
        write_mask(target, mask, volume.geometry, description=f"napari-vlsm: {prompt}")
        record = {"input": str(path), "prompt": prompt, "path": str(target), "shape": list(mask.shape),
                  "foreground_fraction": round(float(np.count_nonzero(mask)) / mask.size, 6),
                  "format": "nifti", "window": list(window), "modality": volume.modality,
                  "spacing_zyx": list(volume.spacing)}
        if prob is not None:
            prob_path = probability_path(out, stem, name, ".nii.gz")
            write_mask(prob_path, prob, volume.geometry, description=f"napari-vlsm probability: {prompt}")
            record["probability_path"] = str(prob_path)
        records.append(record)
    return records
