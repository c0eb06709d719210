"""What the segmentation workers run (worker threads: no layer writes, no Qt calls here)."""

from __future__ import annotations

import numpy as np

from .layers import Plane, read_plane


def probabilities(predictions) -> np.ndarray:
    """One prompt's probability (H, W), or N prompts' stacked (N, H, W) for a label map."""
    if len(predictions) == 1:
        return predictions[0].probability
    return np.stack([p.probability for p in predictions])


def predict_plane(segmenter, session, image, plane: Plane, prompts: list[str]):
    """One slice, all structures from ONE image pass -> [(plane, probability (H, W) or (N, H, W))]."""
    window = session.window_for(image)
    pixels = read_plane(image.data, image.ndim, plane)
    return [(plane, probabilities(segmenter.predict(pixels, list(prompts), window=window)))]


def stack_view(data, ndim: int, axes: tuple[int, int]):
    """``data`` arranged for ``Segmenter.predict_stack``: (stack, axis) whose planes are ``axes``."""
    others = [a for a in range(ndim) if a not in axes]
    if ndim == 3:
        return data, others[0]
    if tuple(axes) == (ndim - 2, ndim - 1):
        return data, 0
    # A resliced nD view: move the plane axes last (a view for numpy, lazy for dask); the other
    # axes keep their order, so predict_stack's index tuples match Plane.index.
    return np.moveaxis(data, list(axes), [ndim - 2, ndim - 1]), 0


def predict_planes(segmenter, session, image, axes: tuple[int, int], prompts: list[str], batch_size: int,
                   cancel, indices=None):
    """Every slice along the non-displayed axes (or those at ``indices``), batched; yields (plane,
    probability) per slice."""
    window = session.window_for(image)
    stack, axis = stack_view(image.data, image.ndim, axes)
    results = segmenter.predict_stack(stack, list(prompts), batch_size=batch_size, window=window, axis=axis,
                                      indices=indices, rgb=image.rgb)
    for index, predictions in results:
        index = tuple(int(i) for i in index) if isinstance(index, tuple) else (int(index),)
        yield Plane(tuple(axes), index), probabilities(predictions)
        if cancel.is_set():  # the batch in flight is finished and delivered first
            return
