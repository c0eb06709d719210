"""One read input -> its output files: what ``napari-vlsm predict`` writes for one image, stack or
volume, and what the batch runner's file tasks write for it too (``batch_tasks.file_task``), so both
give the same files. A 2D image gives PNG masks, a TIFF stack TIFF masks of its shape (one window
for the whole stack), a medical volume NIfTI masks on its grid (``predict_volume.py``), and with
``--multilabel`` one label map + legend (``labelmap_output.py``). Names and writers: ``outputs.py``.
"""

from __future__ import annotations

from ..core.errors import ImageError
from . import labelmap_output, statistics_output
from .outputs import write_outputs
from .predict_volume import finish_label_map, segment_volume, write_volume_outputs


def _window(args, data):
    """--window for an image or a TIFF stack (``core.medical.windows.window_for``: None for a 2D image
    under auto, the engine's own window for it; one window for a whole stack)."""
    from ..core.medical.windows import window_for

    return window_for(args.window, data)


def _segment(seg, data, prompts, args, bar):
    """-> (is_stack, {prompt: probability or mask volume}) for one input array."""
    import numpy as np

    from ..core.stack_arrays import stack_arrays
    from ..core.volume import guess_rgb

    spatial = data.ndim - (1 if guess_rgb(data.shape) else 0)
    if spatial < 2:
        raise ImageError(f"expected an image or a stack; got shape {tuple(data.shape)}")
    if spatial == 2:
        preds = seg.predict(np.asarray(data), prompts, threshold=args.threshold, window=_window(args, data))
        return False, {p.prompt: p for p in preds}
    shape = tuple(data.shape[:spatial])  # the mask has the stack's shape without colour
    total = int(np.prod(shape[:-2]))
    results = seg.predict_stack(data, prompts, threshold=args.threshold, batch_size=args.batch_size,
                                window=_window(args, data))
    arrays = stack_arrays(results, shape[:-2], len(prompts), mask_value=255, probabilities=args.save_prob,
                          plane=shape[-2:], on_slice=lambda n: bar.set_postfix_str(f"slice {n}/{total}"))
    probs = arrays.probabilities
    return True, {p: (arrays.masks[k], None if probs is None else probs[k]) for k, p in enumerate(prompts)}


def _predict_labelmap(seg, path, stem, data, prompts, args, provenance, bar) -> list[dict]:
    """--multilabel: a medical volume's label map goes on its own grid as NIfTI, others as PNG/TIFF."""
    if not hasattr(data, "geometry"):
        records = labelmap_output.predict_file(seg, path, stem, data, prompts, args, provenance, bar,
                                               window=_window(args, data))
        return label_map_statistics(records, path, stem, data, prompts, args)
    from ..core.medical import write_mask
    from .predict_volume import window_of

    finished: dict = {}

    def on_grid(array, target):  # the label map, and with --save-prob each structure's float32 probability
        kind = "probability" if array.dtype.kind == "f" else "label map"
        array = finish_label_map(array, data, args, stem, finished)  # clean-up (predict_volume.py)
        write_mask(target, array, data.geometry, description=f"napari-vlsm {kind}")

    records = labelmap_output.predict_file(seg, path, stem, data.array, prompts, args, provenance, bar,
                                           writer=on_grid, suffix=".nii.gz", window=window_of(args, data), rgb=False)
    return label_map_statistics(records, path, stem, data, prompts, args, finished.get("labels"))


def label_map_statistics(records, path, stem, data, prompts, args, labels=None) -> list[dict]:
    """--statistics of a --multilabel label map: its CSV, and its rows in its record. ``labels``: the
    volume's label map as written (canonical grid); a 2D/stack label map is read back from its file.
    The batch runner's write task calls this too."""
    if not getattr(args, "statistics", False):
        return records
    from ..core.image_files import read_image
    from .statistics_output import attach, image_spacing, label_map_rows

    if hasattr(data, "geometry"):
        spacing, image = data.spacing, data.array
    else:
        spacing, image = image_spacing(path), data
        labels = read_image(records[0]["path"])
    attach(records, label_map_rows(labels, spacing, image, prompts), args.out, stem, label_map=True)
    return records


def predict_input(seg, path, stem, data, prompts, slugs, args, provenance, bar) -> list[dict]:
    """One read input -> its output files and summary records: what ``predict`` writes for it.

    The batch runner's file tasks (cli/batch_tasks.py) call this too, so both give the same files.
    """
    if getattr(args, "multilabel", False):  # one label map + JSON legend per input (cli/labelmap_output.py)
        return _predict_labelmap(seg, path, stem, data, prompts, args, provenance, bar)
    if hasattr(data, "geometry"):  # a medical volume: NIfTI out, on its own grid
        results, window = segment_volume(seg, data, prompts, args, bar)
        return write_volume_outputs(path, stem, slugs, data, results, window, args, provenance)
    is_stack, results = _segment(seg, data, prompts, args, bar)
    records = write_outputs(path, stem, slugs, is_stack, results, args, provenance)
    return statistics_output.of_masks(records, path, stem, results, args, image=data)
