"""Out-of-memory during finetuning: take fewer samples at once instead of failing.

A GPU (or a small machine) may not hold a batch of 8 image passes, let alone their backward pass.
Model calls that go over a list of samples (preparing features, evaluating) halve the number of
samples per call until it fits and keep that size; a training step splits its batch into smaller
pieces whose gradients add up to the full batch's (see ``run.TrainingRun``). Only when a single
sample does not fit is it the user's problem, with a message that says what to change.
"""

from __future__ import annotations

import torch

from ..errors import TrainingError


def is_out_of_memory(err: BaseException) -> bool:
    # Older torch versions and some backends raise a plain RuntimeError for the same condition.
    return isinstance(err, torch.OutOfMemoryError) or (
        isinstance(err, RuntimeError) and "out of memory" in str(err).lower()
    )


def free_memory(device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()


def one_sample_too_big(device, what: str) -> TrainingError:
    return TrainingError(
        f"out of {device.type} memory while {what}, even one sample at a time; "
        "use a shallow variant (no backward pass through the encoder), --precision bf16/fp16, "
        "or --device cpu (uses main memory)"
    )


class MemoryLimit:
    """The most samples one model call may take; halved at each out-of-memory, never raised again."""

    def __init__(self, size: int, device, what: str):
        self.size, self.device, self.what = size, device, what

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
            raise one_sample_too_big(self.device, self.what) from err
        self.size = max(1, min(self.size, tried) // 2)
