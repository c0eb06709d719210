"""``ProjectLike``: what the dock, the CLI and the server's jobs call, whoever holds the project.

Two implementations: :class:`~napari_vlsm.core.project.Project` (a folder on this computer, trained
with a model loaded here) and :class:`~napari_vlsm.client.project.RemoteProject` (a project of a
``napari-vlsm serve``, over its HTTP API). Callers never branch on which one they hold, as
magicgui's widgets never ask which backend draws them (``widgets/protocols.py``).
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..store.records import SampleInfo
from ..training.config import ProgressEvent
from .results import FinetuneRequest, FinetuneResult


@runtime_checkable
class ProjectLike(Protocol):
    name: str  # what messages call it: a folder path, or "<server url> · project <name>"
    runs_here: bool  # whether train() runs torch in this process (the dock starts it on a torch thread)

    def add_correction(self, image, mask, prompts, proposal=None, source: str = "", slice_index=None,
                       window=None) -> SampleInfo:
        """Store one correction durably; returns once it is acknowledged."""

    def corrections(self, target: str | None = None, split: str | None = None) -> list[SampleInfo]:
        """The stored corrections' records (metadata only: no image is decoded or sent)."""

    def counts(self, target: str | None = None) -> dict[str, int]:
        """``{"train": n, "val": m}``."""

    def remove_correction(self, sample_id: str) -> None: ...

    def pending(self, target: str | None = None) -> int:
        """Corrections kept on this computer, waiting to be sent (always 0 for a local folder)."""

    def adapters(self) -> list[dict]:
        """The project's adapters, oldest first: name, bytes, created, variant, before, after,
        heldout, latest (bool), or error for a damaged file."""

    def latest_adapter(self) -> str | None:
        """The name of the adapter "latest" means (the last run that improved held-out Dice)."""

    def train(self, request: FinetuneRequest, cancel=None, keep=None) -> Generator[ProgressEvent, None, FinetuneResult]:
        """Finetune on a snapshot of the corrections; yields ProgressEvents, returns a FinetuneResult.

        ``cancel`` (a threading.Event) is honoured from the first event on; nothing is saved. With
        ``keep`` also set (the dock was closed), a local project saves the best adapter so far like a
        finished one (a server project stops its job: the server keeps no stopped run).
        The adapter becomes "latest" only when it beat the starting point on held-out Dice."""

    def fetch_adapter(self, name: str, path: str | Path) -> Path:
        """Copy one of the project's adapters to ``path`` (atomic)."""
