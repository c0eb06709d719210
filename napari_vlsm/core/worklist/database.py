"""The worklist's SQLite file: schema, connection settings, one transaction per change.

Why SQLite in WAL mode: every change is one transaction that either happened or did not, whatever
moment the process dies at (power cut, kill -9); readers never block the writer; two windows (or
the CLI next to the dock) can share one project, and ``busy_timeout`` lets a writer wait for the
other instead of failing at once. ``synchronous=FULL``: a committed change survives a power cut.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path

from ..errors import WorklistError

DB_NAME = "worklist.sqlite"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 10_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL,
    identity TEXT NOT NULL UNIQUE,      -- resolved path, or "dicom:<SeriesInstanceUID>"
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    before_missing TEXT NOT NULL DEFAULT '',  -- the status to go back to when the file returns
    reason TEXT NOT NULL DEFAULT '',
    score REAL,
    score_key TEXT NOT NULL DEFAULT '',
    worst_slices TEXT NOT NULL DEFAULT '[]',
    corrections INTEGER NOT NULL DEFAULT 0,
    adapter TEXT NOT NULL DEFAULT '',
    last_opened REAL,
    last_handed REAL,
    name TEXT NOT NULL,
    shape TEXT NOT NULL DEFAULT '[]',
    stamp TEXT NOT NULL DEFAULT '',     -- size and mtime when added: a changed file loses its score
    added REAL NOT NULL,
    lease_holder TEXT NOT NULL DEFAULT '',
    lease_until REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def _explain(err: sqlite3.Error, path: Path) -> WorklistError:
    text = str(err).lower()
    if "locked" in text or "busy" in text:
        return WorklistError(f"the worklist {path} is busy in another window or process for over "
                             f"{BUSY_TIMEOUT_MS // 1000} s; try again, or close the other one")
    if "readonly" in text or "read-only" in text or "unable to open" in text or "disk i/o" in text:
        return WorklistError(f"cannot write the worklist {path} (read-only folder or disk?); "
                             "choose a project folder you can write to")
    if "malformed" in text or "not a database" in text:
        return WorklistError(f"the worklist {path} is damaged ({err}); move it away and add the inputs again")
    return WorklistError(f"the worklist {path} failed: {err}")


class Database:
    """One connection, shared by the threads of one process under a lock (the dock's workers)."""

    def __init__(self, folder: Path):
        self.path = folder / DB_NAME
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise WorklistError(f"cannot create the project folder {folder}: {err.strerror or err}; "
                                "choose a folder you can write to") from None
        self._lock = threading.RLock()
        try:
            # isolation_level=None: no hidden transactions; each change opens its own BEGIN IMMEDIATE
            self._conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                         check_same_thread=False)
            self._conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            if self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() != "wal":
                raise WorklistError(f"the worklist {self.path} cannot use SQLite's WAL journal here "
                                    "(a network share?); put the project on a local disk")
            self._conn.execute("PRAGMA synchronous=FULL")
            with self.transaction() as cur:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        cur.execute(statement)
                version = cur.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise WorklistError(f"the worklist {self.path} was written by a newer napari-vlsm "
                                        f"(schema {version}); update napari-vlsm")
                cur.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as err:
            raise _explain(err, self.path) from None

    @contextlib.contextmanager
    def transaction(self):
        """``with db.transaction() as cur:`` -- all of it is committed, or none of it."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")  # take the write lock now: no upgrade deadlock
            except sqlite3.Error as err:
                raise _explain(err, self.path) from None
            cur = self._conn.cursor()
            try:
                yield cur
            except BaseException as err:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                if isinstance(err, sqlite3.Error):
                    raise _explain(err, self.path) from None
                raise
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as err:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                raise _explain(err, self.path) from None

    def query(self, sql: str, params=()) -> list[tuple]:
        """A read (one consistent snapshot): never blocks on a writer in WAL mode."""
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as err:
                raise _explain(err, self.path) from None

    def close(self) -> None:
        with self._lock:
            self._conn.close()
