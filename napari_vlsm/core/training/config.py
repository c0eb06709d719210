"""What a finetune is asked to do (TrainConfig), what it reports (ProgressEvent), what it returns.

No torch here: the napari dock imports these names on start-up to build its controls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ..constants import DEFAULT_VARIANT, TRAINABLE
from ..errors import TrainingError
from ..validation import check_positive_int

LOSSES = ("dice+bce",)
# The paper's learning rates: 3e-4 for shallow adapters, 1e-3 for dense ones.
DEFAULT_LR = {"shallow": 3e-4, "dense": 1e-3}
EVENT_KINDS = ("start", "prepare", "step", "eval", "done")


@dataclass
class TrainConfig:
    """Settings of one finetune. Stops at whichever limit comes first: ``max_steps``, ``epochs``,
    ``budget_s`` (wall time from the call, feature preparation included) or early stopping.

    ``epochs`` set: the paper's full recipe, one evaluation per epoch, ``max_steps`` ignored.
    ``max_steps=None``: no step limit (then ``epochs`` or ``budget_s`` must be set).
    Plateau scheduling and early stopping count evaluations (= epochs in epoch mode).
    """

    variant: str = DEFAULT_VARIANT
    max_steps: int | None = 200
    budget_s: float | None = None
    epochs: int | None = None
    lr: float | None = None  # None -> 3e-4 (shallow) / 1e-3 (dense)
    weight_decay: float = 1e-3
    batch_size: int = 8
    grad_clip: float = 0.5
    eval_every: int | None = None  # None -> about 10 evaluations per run (each epoch with epochs)
    seed: int = 0
    loss: str = "dice+bce"
    plateau_factor: float = 0.3
    plateau_patience: int = 5
    early_stop_patience: int = 20
    # False runs the reference way (VLSMModel.forward every step: image and text encoders) even
    # where their outputs could be cached; only benchmarks and tests that compare both ways set it.
    cache_features: bool = True

    def validate(self) -> None:
        """Raise TrainingError naming the first bad setting."""
        if self.variant not in TRAINABLE:
            raise TrainingError(f"variant {self.variant!r} cannot be trained; choose one of {', '.join(TRAINABLE)}")
        if self.loss not in LOSSES:
            raise TrainingError(f"loss {self.loss!r} is not supported; use one of {', '.join(LOSSES)}")
        _positive_int(self.max_steps, "max_steps", allow_none=True)
        _positive_int(self.epochs, "epochs", allow_none=True)
        _positive_int(self.eval_every, "eval_every", allow_none=True)
        _positive_int(self.batch_size, "batch_size")
        _positive_int(self.early_stop_patience, "early_stop_patience")
        _positive_int(self.plateau_patience, "plateau_patience")
        for name in ("budget_s", "lr"):
            value = getattr(self, name)
            if value is not None and not _positive_number(value):
                raise TrainingError(f"{name} must be a positive number of {'seconds' if name == 'budget_s' else 'units'}; got {value!r}")
        for name in ("weight_decay", "grad_clip"):
            value = getattr(self, name)
            if not (_positive_number(value) or value == 0):
                raise TrainingError(f"{name} must be a number >= 0; got {value!r}")
        if not (0 < self.plateau_factor < 1):
            raise TrainingError(f"plateau_factor must lie between 0 and 1; got {self.plateau_factor!r}")
        if self.max_steps is None and self.epochs is None and self.budget_s is None:
            raise TrainingError("no limit to stop at: set max_steps, epochs or budget_s")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TrainingError(f"seed must be an integer; got {self.seed!r}")

    @property
    def style(self) -> str:
        return self.variant.partition("-")[0]

    def resolved_lr(self) -> float:
        return float(self.lr) if self.lr is not None else DEFAULT_LR[self.style]


def _positive_int(value, name: str, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    check_positive_int(value, name, TrainingError)


def _positive_number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@dataclass(frozen=True)
class ProgressEvent:
    """One report of a running finetune.

    kind "start": yielded at once, before any heavy work. "prepare": image features being
    precomputed; here ``step``/``total`` count prepared samples, not training steps. "step": one
    optimiser step done (``loss`` = its training loss). "eval": validation done (``val_dice``,
    ``val_iou`` at the images' own resolution); the first one, at ``step`` 0, scores the starting
    point (the adapter continued from, or the base model). "done": the last event, ``message`` says
    before -> after. ``total`` is None when only a time budget limits the run.
    """

    kind: str
    step: int = 0
    total: int | None = None
    epoch: int = 0
    loss: float | None = None
    val_dice: float | None = None
    val_iou: float | None = None
    elapsed_s: float = 0.0
    eta_s: float | None = None
    message: str = ""
    lr: float | None = None

    @property
    def fraction(self) -> float | None:
        """Progress in [0, 1] for a progress bar (None when the total is unknown)."""
        if not self.total:
            return None
        return min(1.0, self.step / self.total)


@dataclass
class TrainResult:
    """What a finetune produced. ``adapters`` is the best adapter set by validation Dice (None when
    cancelled before anything was evaluated); ``adapter_path`` is where it was saved (None when not
    saved). ``before``/``after``: {"dice", "iou", "n"} of the starting point and of ``adapters``,
    on validation samples when ``heldout``, else on the training samples themselves."""

    adapters: object | None
    adapter_path: Path | None
    metadata: dict
    before: dict
    after: dict
    steps: int
    best_step: int | None
    cancelled: bool
    history: list[dict] = field(default_factory=list)
    heldout: bool = True
    stopped: str = ""  # why it stopped: "max_steps", "epochs", "budget", "early_stopping", "cancelled"
    message: str = ""

    @property
    def improved(self) -> bool:
        """True when the kept adapter scores a higher Dice than the starting point."""
        return bool(self.after) and self.after.get("dice", -1.0) > self.before.get("dice", -1.0)
