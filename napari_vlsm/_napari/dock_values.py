"""The dock's UI values as one evented model (psygnal), as napari's ``components/camera.py``.

Panels bind their controls to these fields (a control writes its field; the field's event sets the
control), the settings are read from and written to the model, and workers receive plain values
copied from it. Nothing here imports Qt.
"""

from __future__ import annotations

from dataclasses import dataclass

from psygnal import evented

from napari_vlsm.core.constants import DEFAULT_MODEL, DEFAULT_VARIANT


@evented
@dataclass
class DockValues:
    model_source: str = DEFAULT_MODEL
    device: str = "auto"
    precision: str = "auto"
    variant: str = DEFAULT_VARIANT
    adapter: str = "none"  # "none", "latest", or a file path
    threshold: float = 0.5
    autosave: bool = True  # a correction is stored ~1 s after the last stroke, by default
    show_probability: bool = False
    window_preset: object = "auto"  # core/medical/windows.py: auto, CT presets, percentiles, (lo, hi)
    batch_size: int = 8  # slices per batch when segmenting a stack
    train_batch_size: int = 8  # corrections per finetune step
    max_steps: int = 0  # 0: no step limit (the time budget ends the run)
    budget_s: float | None = None  # None: auto (finetune_panel.auto_budget)
    series_order: str = ""  # the order Next follows, as the user picked it ("": the default, per adapter)


def bind(values: DockValues, name: str, changed_signal, setter, convert=lambda v: v) -> None:
    """Two-way: the control's ``changed_signal`` writes the field; the field's event calls
    ``setter`` (both emit only on a change, so neither echoes forever)."""
    changed_signal.connect(lambda v: setattr(values, name, convert(v)))
    getattr(values.events, name).connect(lambda value: setter(value))  # a Python callable: psygnal reads its arity
