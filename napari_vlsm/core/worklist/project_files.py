"""Where the project keeps what the worklist's export and ranking read: corrections, "latest".

The layout is ``core.project``'s (``ProjectLayout``: one place for every file name); these two
helpers only name what the worklist needs from it.
"""

from __future__ import annotations

from pathlib import Path


def corrections_folder(root: Path) -> Path:
    """The project's correction store (``corrections/``, or an older dock's folder read in place)."""
    from ..project import ProjectLayout

    return ProjectLayout(root).corrections


def latest_adapter(root: Path) -> Path | None:
    """The adapter file "latest" means (moved only when held-out Dice improved), or None."""
    from ..project import ProjectLayout

    return ProjectLayout(root).read_latest()
