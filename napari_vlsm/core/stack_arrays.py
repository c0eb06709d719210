"""A stack's predictions gathered into arrays: the one loop over ``Segmenter.predict_stack``.

``predict_stack`` yields ``(index, [Prediction per prompt])`` slice by slice (batched inside); the
CLI (``predict``, its volumes, its label maps, its batch tasks), ``evaluate`` and the server all
want whole arrays back. :func:`stack_arrays` fills them: masks ``(P, *lead, H, W)`` (0 or
``mask_value``), probabilities ``(P, *lead, H, W)`` float32, or one label map ``(*lead, H, W)``
composed slice by slice (``core.labelmap.compose``: memory holds the label volume, not P
probability volumes). ``lead`` is the stack's shape without the planes; the plane's (H, W) comes
from the first prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class StackArrays:
    masks: np.ndarray | None  # (P, *lead, H, W) in mask_dtype; None unless asked
    probabilities: np.ndarray | None  # (P, *lead, H, W) float32; None unless asked
    labels: np.ndarray | None  # (*lead, H, W) label map; None unless label_threshold was given


def stack_arrays(results, lead: tuple[int, ...], prompts: int, *, masks: bool = True, mask_value=1,
                 mask_dtype=np.uint8, probabilities: bool = False, label_threshold: float | None = None,
                 start: int = 0, plane: tuple[int, int] | None = None, on_slice=None) -> StackArrays:
    """Fill arrays from ``results`` (``predict_stack``'s iterator, or any of its items).

    ``plane``: the slices' (H, W) when known (the arrays exist even for no slice), else the first
    prediction's. ``start``: the first slice's index when ``results`` covers slices ``[start, ...)``
    only (a batch task's part). ``on_slice(n)`` is called before the n-th slice (1-based) is stored.
    """
    from . import labelmap as LM

    lead = tuple(int(s) for s in lead)
    out = StackArrays(None, None, None)
    if plane is not None:
        _allocate(out, (*lead, *plane), prompts, masks, mask_dtype, probabilities, label_threshold)
    on = np.dtype(mask_dtype).type(mask_value)
    for n, (index, preds) in enumerate(results, start=1):
        if on_slice is not None:
            on_slice(n)
        at = tuple(int(i) for i in index) if isinstance(index, tuple) else (int(index),)
        at = (at[0] - start, *at[1:])
        if plane is None and n == 1:
            _allocate(out, (*lead, *np.shape(preds[0].probability)), prompts, masks, mask_dtype, probabilities,
                      label_threshold)
        if out.labels is not None:
            out.labels[at] = LM.compose(np.stack([p.probability for p in preds]), label_threshold)
        for k, pred in enumerate(preds):
            if out.masks is not None:
                out.masks[(k, *at)] = pred.mask if out.masks.dtype == bool else pred.mask * on
            if out.probabilities is not None:
                out.probabilities[(k, *at)] = pred.probability
    return out


def _allocate(out: StackArrays, full: tuple, prompts: int, masks: bool, mask_dtype, probabilities: bool,
              label_threshold) -> None:
    from . import labelmap as LM

    if label_threshold is not None:
        out.labels = np.zeros(full, LM.label_dtype(prompts))
    elif masks:
        out.masks = np.zeros((prompts, *full), mask_dtype)
    if probabilities:
        out.probabilities = np.zeros((prompts, *full), np.float32)
