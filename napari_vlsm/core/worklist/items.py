"""What a worklist row is: the statuses, the orders Next can follow, the item record.

Pure data (no database, no image library): the dock, the CLI and the server all read these.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

STATUSES = ("unseen", "in-progress", "done", "skipped", "unreadable", "missing")
ORDERS = ("in-order", "random", "most-uncertain")
KINDS = ("image", "stack", "volume")
USER_STATUSES = ("unseen", "in-progress", "done", "skipped")  # what a person (or the server) may set
OPEN_STATUSES = ("unseen", "in-progress")  # what Next may hand out
SOURCE_PREFIX = "worklist:"  # a correction made on a server's item: "worklist:<id>" (the server maps it to the item)


def item_source(item_id: int) -> str:
    """The ``source`` a correction made on a server's worklist item is sent with (one rule for the
    client, the dock and the server)."""
    return f"{SOURCE_PREFIX}{int(item_id)}"


@dataclass(frozen=True)
class Item:
    """One entry of the worklist: a 2D image, a TIFF stack, a volume file or a DICOM series."""

    id: int  # stable, increasing in the order added
    path: Path  # the file, or the DICOM series folder
    kind: str  # "image" | "stack" | "volume"
    status: str  # one of STATUSES
    reason: str  # why unreadable / missing ("" otherwise)
    score: float | None  # last uncertainty score (higher = the model doubts more); None = not scored
    score_key: str  # what the score was computed with (model, adapter, phrasings)
    worst_slices: tuple[int, ...]  # volumes: most uncertain slices first; () for 2D
    corrections: int  # corrections stored for this item
    adapter: str  # the adapter file its current masks came from ("" = none / the plain model)
    last_opened: float | None  # unix time
    name: str  # display name: file name, or the series folder's name
    shape: tuple[int, ...] = ()  # as read from the header when added (to notice a changed file)

    def as_json(self) -> dict:
        """The item as ``status --json`` / ``rank --json`` / the server give it."""
        return {"id": self.id, "path": str(self.path), "name": self.name,
                "kind": "image" if self.kind == "image" else "volume", "status": self.status,
                "score": self.score, "corrections": self.corrections, "reason": self.reason,
                "worst_slices": list(self.worst_slices), "adapter": self.adapter,
                "last_opened": self.last_opened}


@dataclass
class AddReport:
    """What ``Worklist.add`` did: new items, inputs already listed, inputs no reader can open."""

    added: list[Item] = field(default_factory=list)
    duplicates: list[Path] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)


COLUMNS = ("id", "path", "kind", "status", "reason", "score", "score_key", "worst_slices", "corrections",
           "adapter", "last_opened", "name", "shape")


def item_from_row(row) -> Item:
    """A database row (selected with COLUMNS, in that order) -> an Item."""
    (iid, path, kind, status, reason, score, score_key, worst, corrections, adapter, opened, name, shape) = row
    return Item(int(iid), Path(path), kind, status, reason or "", score, score_key or "",
                tuple(json.loads(worst or "[]")), int(corrections or 0), adapter or "", opened, name,
                tuple(json.loads(shape or "[]")))
