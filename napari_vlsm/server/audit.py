"""The audit log: who changed what, and when, as JSON lines; never pixels.

One file per project (``<project>/audit.jsonl``) for its corrections, finetunes and adapter
downloads; token changes go to ``<project-root>/.napari-vlsm/audit.jsonl``. Each line is written
with ONE ``write()`` on a file opened ``O_APPEND`` and then fsync'd before the request is answered:
a crash (SIGKILL, power cut after the fsync) leaves whole lines only, and every acknowledged change
has its line. Files are 0600, as the rest of the server's data.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

from .tokens import server_dir

FILE = "audit.jsonl"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def append_line(path: Path, record: dict) -> None:
    line = (json.dumps(record, ensure_ascii=True, separators=(",", ":")) + "\n").encode()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        written = os.write(fd, line)  # one write: a line is on disk whole or not at all
        if written != len(line):
            raise OSError(f"short write to the audit log {path}")
        os.fsync(fd)
    finally:
        os.close(fd)


class AuditLog:
    def __init__(self, project_root: Path):
        self.root = Path(project_root)
        self._lock = threading.Lock()  # lines in the order the changes happened

    def path(self, project: str | None) -> Path:
        return (self.root / project if project else server_dir(self.root)) / FILE

    def record(self, who: str, what: str, project: str | None = None, **details) -> None:
        """``what``: e.g. ``correction.added``; ``details``: ids, names, shapes, settings (no pixels)."""
        entry = {"time": now(), "who": who, "what": what, **({"project": project} if project else {}), **details}
        with self._lock:
            append_line(self.path(project), entry)


def read(path: Path) -> list[dict]:
    """The log's lines (for tests and `napari-vlsm serve audit`-style reading)."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
