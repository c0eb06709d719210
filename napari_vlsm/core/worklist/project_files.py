"""Where the project keeps what the worklist's export and ranking read: corrections, "latest".

The project's layout belongs to ``core.project`` (``ProjectLayout``) when that package is present;
until then the same rules are followed here: the correction store in ``<project>/corrections``
(or, for folders written by older docks, the project folder itself), and "latest" is the adapter
``<project>/adapters/latest.json`` names (moved only when held-out Dice improved).
"""

from __future__ import annotations

import json
from pathlib import Path


def _layout(root: Path):
    try:
        from ..project import ProjectLayout
    except ImportError:
        return None
    return ProjectLayout(root)


def corrections_folder(root: Path) -> Path:
    layout = _layout(root)
    if layout is not None:
        return layout.corrections
    new = root / "corrections"
    legacy = (root / "store.json").is_file() or (root / "samples").is_dir()
    return root if legacy and not new.exists() else new


def latest_adapter(root: Path) -> Path | None:
    """The adapter file "latest" means, or None. Only a bare name inside adapters/ is followed."""
    layout = _layout(root)
    if layout is not None:
        return layout.read_latest()
    try:
        name = json.loads((root / "adapters" / "latest.json").read_text(encoding="utf-8"))["path"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    path = root / "adapters" / Path(str(name)).name
    return path if path.is_file() else None
