"""The project root: private to the server's user, and served by one server at a time.

``open_root`` runs before the model loads, so a mistake is one line at once:
- a missing root is created 0700 (the server process runs with umask 077: every folder it makes is
  0700 and every file 0600, whatever the user's umask; corrections are patient data);
- a root that others can write to (group or world ``w``) is refused: anyone there could swap a
  correction or an adapter;
- a lock file (``.napari-vlsm/server.lock``, ``fcntl.flock``) with the owner's pid and host: a second
  server on the same root is refused with one line naming the first. The kernel drops the lock
  when its process dies, so a stale file left by a killed server is simply taken over.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import time
from pathlib import Path

from ..core.errors import VLSMError
from .tokens import server_dir

PRIVATE_UMASK = 0o077


def check_private(root: Path) -> None:
    mode = stat.S_IMODE(root.stat().st_mode)
    if mode & 0o022:
        raise VLSMError(f"the project root {root} can be written by other users (mode {mode:o}); "
                        f"run: chmod go-w {root} (better: chmod 700), or pass another --project-root")


class RootLock:
    def __init__(self, root: Path):
        self.path = server_dir(root) / "server.lock"
        self.fd: int | None = None

    def acquire(self) -> RootLock:
        import fcntl

        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = _read_owner(fd)
            os.close(fd)
            raise VLSMError(f"another napari-vlsm server ({owner}) serves the project root {self.path.parents[1]}; "
                            "stop it, or pass another --project-root") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                  "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode(), 0)
        os.fsync(fd)
        self.fd = fd  # held open (and locked) for the life of the process
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _read_owner(fd: int) -> str:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {data.get('pid')} on {data.get('host')}, since {data.get('started')}"
    except (OSError, ValueError):
        return "its lock file is unreadable"


def open_root(root: Path) -> RootLock:
    """Create (0700) or check the root, then lock it; -> the held lock."""
    os.umask(PRIVATE_UMASK)  # this process is the server: everything it writes is the user's alone
    root = Path(root).expanduser()
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as err:
        raise VLSMError(f"cannot create the project root {root}: {err.strerror or err}") from None
    if os.name == "posix":
        check_private(root)
    return RootLock(root).acquire()
