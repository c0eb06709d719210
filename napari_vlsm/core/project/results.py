"""What one asks of a finetune and what it gives back: the same types for a local and a server project.

Torch-free (the client imports them). ``FinetuneResult.to_json``/``from_json`` is the server's wire form.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..constants import DEFAULT_VARIANT


@dataclass(frozen=True)
class FinetuneRequest:
    """A finetune's settings. ``init_adapter``: continue from this adapter (a name in the project,
    ``"latest"``, or, for a local project, a file path); its variant wins over ``variant``."""

    variant: str = DEFAULT_VARIANT
    max_steps: int | None = 200
    epochs: int | None = None
    budget_s: float | None = None
    batch_size: int = 8
    lr: float | None = None
    seed: int = 0
    init_adapter: str | None = None

    def config(self):
        """The trainer's TrainConfig (validated: a bad setting is an error before any work)."""
        from ..training.config import TrainConfig

        config = TrainConfig(variant=self.variant, max_steps=self.max_steps, epochs=self.epochs,
                             budget_s=self.budget_s, batch_size=self.batch_size, lr=self.lr, seed=self.seed)
        config.validate()
        return config

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class FinetuneResult:
    """One finetune's outcome. ``adapter`` is the saved file's name in the project's adapters/ (None:
    nothing saved); ``latest`` says whether it became the project's latest (it beat the starting
    point on held-out Dice). ``adapter_path`` and ``adapters`` (the weights) exist for a local project."""

    adapter: str | None
    before: dict
    after: dict
    heldout: bool = True
    improved: bool = False
    latest: bool = False
    cancelled: bool = False
    stopped: str = ""
    steps: int = 0
    best_step: int | None = None
    message: str = ""
    history: list = field(default_factory=list)
    variant: str | None = None
    adapter_path: Path | None = None
    adapters: object = None
    metadata: dict = field(default_factory=dict)

    WIRE = ("adapter", "before", "after", "heldout", "improved", "latest", "cancelled", "stopped", "steps",
            "best_step", "message", "history", "variant")

    def to_json(self) -> dict:
        return {name: getattr(self, name) for name in self.WIRE}

    @classmethod
    def from_json(cls, doc: dict) -> FinetuneResult:
        known = {f.name for f in fields(cls)} & set(cls.WIRE)
        values = {k: v for k, v in doc.items() if k in known}
        values.setdefault("adapter", None)
        values["before"], values["after"] = values.get("before") or {}, values.get("after") or {}
        values["history"] = values.get("history") or []
        return cls(**values)
