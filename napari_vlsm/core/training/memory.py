"""Out-of-memory during finetuning: ``core.memory.MemoryLimit`` with the trainer's advice.

Model calls that go over a list of samples (preparing features, evaluating) halve the number of
samples per call until it fits and keep that size; a training step splits its batch into smaller
pieces whose gradients add up to the full batch's (see ``run.TrainingRun``).
"""

from __future__ import annotations

from ..errors import TrainingError
from ..memory import MemoryLimit as _MemoryLimit
from ..memory import free_memory, is_out_of_memory

__all__ = ["MemoryLimit", "free_memory", "is_out_of_memory", "one_sample_too_big"]


def one_sample_too_big(device, what: str) -> TrainingError:
    return TrainingError(
        f"out of {device.type} memory while {what}, even one sample at a time; "
        "use a shallow variant (no backward pass through the encoder), --precision bf16/fp16, "
        "or --device cpu (uses main memory)"
    )


class MemoryLimit(_MemoryLimit):
    """Samples per model call while ``what`` (e.g. "training"), with the trainer's message."""

    def __init__(self, size: int, device, what: str):
        super().__init__(size, device, lambda: one_sample_too_big(device, what))
        self.what = what
