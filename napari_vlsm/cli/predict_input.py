"""One read input -> its output files: what ``napari-vlsm predict`` writes for one image, stack or
volume, and what the batch runner's file tasks write for it too (``batch_tasks.file_task``), so both
give the same files. A 2D image gives PNG masks, a TIFF stack TIFF masks of its shape (one window
for the whole stack), a medical volume NIfTI masks on its grid (``predict_volume.py``), and with
``--multilabel`` one label map + legend (``labelmap_output.py``). Names and writers: ``outputs.py``.
"""

from __future__ import annotations

from ..core.errors import ImageError
from . import labelmap_output
from .outputs import write_outputs
from .predict_volume import segment_volume, write_volume_outputs


def _window(args, data):
    """None (the engine's own automatic window) unless --window asks for another."""
    from ..core.medical.windows import AUTO, resolve_window

    return None if args.window == AUTO else resolve_window(args.window, data)


def _segment(seg, data, prompts, args, bar):
    """-> (is_stack, {prompt: probability or mask volume}) for one input array."""
    import numpy as np

    from ..core.volume import guess_rgb

    spatial = data.ndim - (1 if guess_rgb(data.shape) else 0)
    if spatial < 2:
        raise ImageError(f"expected an image or a stack; got shape {tuple(data.shape)}")
    if spatial == 2:
        preds = seg.predict(np.asarray(data), prompts, threshold=args.threshold, window=_window(args, data))
        return False, {p.prompt: p for p in preds}
    shape = tuple(data.shape[:spatial])  # the mask has the stack's shape without colour
    masks = {p: np.zeros(shape, np.uint8) for p in prompts}
    probs = {p: np.zeros(shape, np.float32) for p in prompts} if args.save_prob else {}
    total = int(np.prod(shape[:-2]))
    for n, (index, preds) in enumerate(seg.predict_stack(data, prompts, threshold=args.threshold,
                                                          batch_size=args.batch_size, window=_window(args, data)),
                                      start=1):
        bar.set_postfix_str(f"slice {n}/{total}")
        for prompt, pred in zip(prompts, preds):
            masks[prompt][index] = pred.mask * np.uint8(255)
            if probs:
                probs[prompt][index] = pred.probability
    return True, {p: (masks[p], probs.get(p)) for p in prompts}


def _predict_labelmap(seg, path, stem, data, prompts, args, provenance, bar) -> list[dict]:
    """--multilabel: a medical volume's label map goes on its own grid as NIfTI, others as PNG/TIFF."""
    if not hasattr(data, "geometry"):
        return labelmap_output.predict_file(seg, path, stem, data, prompts, args, provenance, bar,
                                            window=_window(args, data))
    from ..core.medical import write_mask
    from .predict_volume import window_of

    def on_grid(array, target):  # the label map, and with --save-prob each structure's float32 probability
        kind = "probability" if array.dtype.kind == "f" else "label map"
        write_mask(target, array, data.geometry, description=f"napari-vlsm {kind}")

    return labelmap_output.predict_file(seg, path, stem, data.array, prompts, args, provenance, bar,
                                        writer=on_grid, suffix=".nii.gz", window=window_of(args, data), rgb=False)


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
    return write_outputs(path, stem, slugs, is_stack, results, args, provenance)
