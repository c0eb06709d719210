"""Model work of a predict request (runs on a torch thread of its own, never on the event loop).

A 2D image is one engine call; a volume is segmented in slice batches (``Segmenter.predict_stack``)
with one intensity window for the whole volume, as the CLI and the dock do. The model lock is taken
per call / per batch, so a long volume or a finetune never holds the device for the whole request.
"""

from __future__ import annotations

import numpy as np

from ..core.medical.windows import AUTO
from ..core.medical.windows import window_for as _window_for
from ..core.stack_arrays import stack_arrays
from ..core.volume import guess_rgb


def window_for(array, rgb):
    """The volume's window (None for one 2D image: the engine windows it by itself)."""
    return _window_for(AUTO, array, rgb=rgb)


def predict_array(lock, engine, array, prompts, threshold, output, rgb=None, window=None, batch_size=8,
                  index=None) -> np.ndarray:
    """-> (P, H, W) or (P, Z, H, W): bool masks or float32 probabilities, in prompt order."""
    from ..core.errors import ImageError

    is_rgb = guess_rgb(array.shape, rgb)
    spatial = array.ndim - (1 if is_rgb else 0)
    if index is not None:
        if spatial != 3:
            raise ImageError(f"index= needs a (Z, H, W) volume; this one is {tuple(array.shape)}")
        if not 0 <= index < array.shape[0]:
            raise ImageError(f"slice index {index} is outside 0..{array.shape[0] - 1}")
        array, spatial = array[index], 2
    want_mask = output == "mask"
    if spatial == 2:
        with lock:
            preds = engine.predict(array, prompts, threshold=threshold, window=window)
        return np.stack([p.mask if want_mask else p.probability for p in preds])
    if spatial != 3:
        raise ImageError(f"expected a 2D image or a (Z, H, W[, 3]) volume; got shape {tuple(array.shape)}")
    shape = tuple(array.shape[:3])
    gen = engine.predict_stack(array, prompts, threshold=threshold, batch_size=batch_size, window=window,
                               rgb=is_rgb)
    arrays = stack_arrays(_one_batch_at_a_time(lock, gen), shape[:1], len(prompts), masks=want_mask,
                          mask_dtype=bool, probabilities=not want_mask, plane=shape[1:])
    return arrays.masks if want_mask else arrays.probabilities


def _one_batch_at_a_time(lock, gen):
    """``gen``'s items, the model lock held while each is computed (a finetune may run in between)."""
    while True:
        with lock:
            item = next(gen, None)
        if item is None:
            return
        yield item
