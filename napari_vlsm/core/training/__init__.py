"""Finetuning VLSM adapters on corrected masks (napari-free; see docs/training.md).

``TrainConfig``, ``ProgressEvent`` and ``TrainResult`` import without torch, so a UI can build its
controls on start-up; ``finetune`` and ``run_to_end`` load torch when first called.
"""

from __future__ import annotations

from .config import ProgressEvent, TrainConfig, TrainResult

__all__ = ["ProgressEvent", "TrainConfig", "TrainResult", "finetune", "run_to_end"]


def finetune(loaded, train_samples, val_samples, config=None, init_adapters=None, out_path=None, cancel=None,
             base_metadata=None, save_on_cancel=False, extra_metadata=None):
    """Generator of :class:`ProgressEvent` returning a :class:`TrainResult` (see ``loop.finetune``)."""
    from .loop import finetune as _finetune

    return _finetune(loaded, train_samples, val_samples, config, init_adapters=init_adapters, out_path=out_path,
                     cancel=cancel, base_metadata=base_metadata, save_on_cancel=save_on_cancel,
                     extra_metadata=extra_metadata)


def run_to_end(gen, on_event=None) -> TrainResult:
    """Drive a finetune generator to its end, calling ``on_event(event)`` for each event."""
    from .loop import run_to_end as _run

    return _run(gen, on_event)
