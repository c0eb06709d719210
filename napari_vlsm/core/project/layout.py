"""A project folder's layout and file names, in one place (the dock, the CLI and the server use it).

::

    <project>/
      corrections/                 the CorrectionStore (store.json, .lock, samples/<id>/...)
      adapters/
        adapter-<run>.safetensors  one per finetune (+ <name>.json, a readable copy of its metadata)
        latest.json                {"path": "<adapter file name>"}: the adapter "latest" means
      jobs/<job id>.json           the server's record of each finetune job
      server-outbox/<project>/     the dock's corrections waiting to be sent to a server project
      worklist.sqlite              the series worklist (core/worklist)
      masks/                       a done series item's mask, written by the dock's Mark done/Next:
        <id:04d>_<name>.png|.tif|.nii.gz + <id:04d>_<name>.json (its legend); the file name rule
        is core/worklist/export.py's item_files, which `worklist export` copies from here

Folders written by napari-vlsm 0.x's dock kept the store in the project folder itself
(``<project>/store.json`` and ``<project>/samples/``). Such a folder is read where it is: nothing is
moved (a move could race a running older dock), so every existing correction keeps working.
"""

from __future__ import annotations

import json
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path

CORRECTIONS, ADAPTERS, JOBS, OUTBOX, MASKS = "corrections", "adapters", "jobs", "server-outbox", "masks"
LATEST = "latest.json"
ADAPTER_RE = re.compile(r"^adapter-[A-Za-z0-9._-]{1,80}\.safetensors$")


def new_run_id() -> str:
    """A sortable, unique name for one finetune run (UTC time + 8 hex)."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(4)


class ProjectLayout:
    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()

    @property
    def corrections(self) -> Path:
        """The correction store's folder; the project folder itself for the dock's older layout."""
        new = self.root / CORRECTIONS
        legacy = (self.root / "store.json").is_file()  # every store ever opened there wrote it
        return self.root if legacy and not new.exists() else new

    @property
    def adapters(self) -> Path:
        return self.root / ADAPTERS

    @property
    def latest_file(self) -> Path:
        return self.adapters / LATEST

    @property
    def masks(self) -> Path:
        """Where the dock saves each series item's mask (and `worklist export` finds it)."""
        return self.root / MASKS

    @property
    def jobs(self) -> Path:
        return self.root / JOBS

    def outbox(self, server_project: str) -> Path:
        from ..project_names import is_project_name, project_slug

        name = server_project if is_project_name(server_project) else project_slug(server_project)
        return self.root / OUTBOX / name  # a server's names pass as they are

    def adapter_file(self, run_id: str) -> Path:
        return self.adapters / f"adapter-{run_id}.safetensors"

    def adapter_files(self) -> list[Path]:
        """Finished adapter files, oldest first (an interrupted save leaves only a dot-tmp file)."""
        if not self.adapters.is_dir():
            return []
        return sorted(p for p in self.adapters.iterdir() if p.is_file() and ADAPTER_RE.match(p.name))

    # ------------------------------------------------------------------------------- latest
    def read_latest(self) -> Path | None:
        """The file ``latest.json`` points to, if it exists. Only a bare name inside adapters/ is
        followed: a damaged or hostile latest.json never leads outside the folder."""
        try:
            name = json.loads(self.latest_file.read_text(encoding="utf-8"))["path"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        path = self.adapters / Path(str(name)).name
        return path if path.is_file() else None

    def write_latest(self, adapter: Path) -> None:
        from ..atomic import write_bytes_atomic

        write_bytes_atomic(self.latest_file, json.dumps({"path": Path(adapter).name}).encode())
