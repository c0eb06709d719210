"""Out-of-memory: take fewer items per model call instead of failing (prediction and training).

A GPU (or a small machine) may not hold a batch of 8 image passes, let alone their backward pass.
A model call over a list of items (slices to predict, samples to encode or evaluate) halves the
number of items per call until it fits and keeps that size. Only when a single item does not fit
is it the user's problem, with a message (from the caller: it knows what to advise) that says
what to change. The engine and the trainer both use this one implementation.
"""

from __future__ import annotations

from collections.abc import Callable


def is_out_of_memory(err: BaseException) -> bool:
    import torch

    # Older torch versions and some backends raise a plain RuntimeError for the same condition.
    return isinstance(err, torch.OutOfMemoryError) or (
        isinstance(err, RuntimeError) and "out of memory" in str(err).lower()
    )


def free_memory(device) -> None:
    """Hand the failed call's cached blocks back to the device before trying a smaller call."""
    import torch

    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()


class MemoryLimit:
    """The most items one model call may take; halved at each out-of-memory, never raised again.

    ``too_big()`` builds the error raised when even one item does not fit (a ``VLSMError`` whose
    message names the fix for that caller).
    """

    def __init__(self, size: int, device, too_big: Callable[[], Exception]):
        self.size, self.device, self.too_big = int(size), device, too_big

    def run(self, items: list, fn) -> list:
        """``fn(chunk)`` over consecutive chunks of ``items``; the results in order."""
        out, pos = [], 0
        while pos < len(items):
            chunk = items[pos : pos + self.size]
            try:
                out.append(fn(chunk))
            except Exception as err:
                if not is_out_of_memory(err):
                    raise
                self.shrink(len(chunk), err)
                continue
            pos += len(chunk)
        return out

    def shrink(self, tried: int, err: BaseException) -> None:
        free_memory(self.device)
        if tried <= 1:
            raise self.too_big() from err
        self.size = max(1, min(self.size, tried) // 2)
