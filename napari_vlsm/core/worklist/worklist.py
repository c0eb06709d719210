"""``Worklist(project_dir)``: the ordered items of a series, their statuses, scores and leases.

Every method is one SQLite transaction (see :mod:`.database`), so whatever moment napari, the CLI
or the server dies at, the list is as it was before the change or after it. Listing reads rows
only: no image is decoded. See docs/series.md.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path

from ..errors import WorklistError
from . import ordering
from .database import Database
from .discover import discover, stamp
from .items import COLUMNS, OPEN_STATUSES, STATUSES, USER_STATUSES, AddReport, Item, item_from_row

_SELECT = f"SELECT {', '.join(COLUMNS)} FROM items"


class Worklist:
    def __init__(self, project_dir):
        self.root = Path(project_dir).expanduser().resolve()
        self._db = Database(self.root)

    def __repr__(self) -> str:
        return f"Worklist({str(self.root)!r})"

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Worklist:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------------------ adding
    def add(self, paths: Iterable) -> AddReport:
        """Add files and folders (recursive). Unreadable files become ``unreadable`` items with their
        reason; an input already listed (or given twice) adds nothing."""
        paths = [Path(p).expanduser() for p in paths]
        gone = [p for p in paths if not p.exists()]
        if gone:
            raise WorklistError(f"{gone[0]} does not exist; pass image files, volumes, DICOM series or folders")
        found = discover(paths, skip=self.root)
        report = AddReport()
        now = time.time()
        with self._db.transaction() as cur:
            known = {row[0] for row in cur.execute("SELECT identity FROM items")}
            for c in found:
                if c.identity in known:
                    report.duplicates.append(c.path)
                    continue
                known.add(c.identity)
                status = "unreadable" if c.reason else "unseen"
                cur.execute("INSERT INTO items (path, identity, kind, status, reason, name, shape, stamp, added) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (str(c.path), c.identity, c.kind, status, c.reason, c.name, json.dumps(list(c.shape)),
                             stamp(c.path), now))
                report.added.append(self._get(cur, cur.lastrowid))
                if c.reason:
                    report.unreadable.append((c.path, c.reason))
        return report

    # ----------------------------------------------------------------------------- reading
    def items(self) -> list[Item]:
        return [item_from_row(r) for r in self._db.query(f"{_SELECT} ORDER BY id")]

    def get(self, item_id: int) -> Item:
        rows = self._db.query(f"{_SELECT} WHERE id = ?", (int(item_id),))
        if not rows:
            raise WorklistError(f"the worklist has no item {item_id}; list them with `napari-vlsm worklist status`")
        return item_from_row(rows[0])

    def counts(self) -> dict[str, int]:
        found = dict(self._db.query("SELECT status, COUNT(*) FROM items GROUP BY status"))
        out = {s: int(found.get(s, 0)) for s in STATUSES}
        out["total"] = sum(out.values())
        return out

    @staticmethod
    def _get(cur, item_id: int) -> Item:
        row = cur.execute(f"{_SELECT} WHERE id = ?", (int(item_id),)).fetchone()
        if row is None:
            raise WorklistError(f"the worklist has no item {item_id}; list them with `napari-vlsm worklist status`")
        return item_from_row(row)

    def _update(self, item_id: int, sql: str, params=()) -> Item:
        with self._db.transaction() as cur:
            self._get(cur, item_id)
            cur.execute(f"UPDATE items SET {sql} WHERE id = ?", (*params, int(item_id)))
            return self._get(cur, item_id)

    # ---------------------------------------------------------------------------- changing
    def set_status(self, item_id: int, status: str) -> Item:
        """``done``, ``skipped``, ``in-progress`` or ``unseen`` (the others are found, not set)."""
        if status not in USER_STATUSES:
            raise WorklistError(f"status {status!r} cannot be set; use one of {', '.join(USER_STATUSES)}")
        item = self.get(item_id)
        if item.status in ("unreadable", "missing"):
            raise WorklistError(f"{item.name} is {item.status} ({item.reason}); fix the file, then add it again")
        return self._update(item_id, "status = ?", (status,))

    def mark_opened(self, item_id: int) -> Item:
        """The user opened it: ``in-progress`` if it was ``unseen``, and ``last_opened`` = now."""
        return self._update(item_id, "status = CASE status WHEN 'unseen' THEN 'in-progress' ELSE status END, "
                                     "last_opened = ?", (time.time(),))

    def mark_unreadable(self, item_id: int, reason: str) -> Item:
        """A reader failed when the item was opened (e.g. a DICOM codec is missing)."""
        return self._update(item_id, "status = 'unreadable', reason = ?", (" ".join(str(reason).split())[:300],))

    def set_adapter(self, item_id: int, adapter_name: str) -> Item:
        return self._update(item_id, "adapter = ?", (str(adapter_name or ""),))

    def add_corrections(self, item_id: int, n: int = 1) -> Item:
        return self._update(item_id, "corrections = MAX(0, corrections + ?)", (int(n),))

    def record_score(self, item_id: int, score: float, score_key: str, worst_slices=()) -> Item:
        return self._update(item_id, "score = ?, score_key = ?, worst_slices = ?",
                            (float(score), str(score_key), json.dumps([int(s) for s in worst_slices])))

    def refresh_missing(self) -> list[Item]:
        """Items whose file went away become ``missing``; those that came back get their status back.
        A file that changed loses its score. Returns the items whose status changed."""
        changed = []
        with self._db.transaction() as cur:
            rows = cur.execute("SELECT id, path, status, before_missing, stamp FROM items").fetchall()
            for iid, path, status, before, old_stamp in rows:
                now_stamp = stamp(Path(path))
                if not now_stamp and status != "missing":
                    cur.execute("UPDATE items SET status = 'missing', before_missing = ?, reason = ? WHERE id = ?",
                                (status, f"{path} is gone (moved or deleted)", iid))
                    changed.append(iid)
                elif now_stamp and status == "missing":
                    cur.execute("UPDATE items SET status = ?, before_missing = '', reason = '' WHERE id = ?",
                                (before or "unseen", iid))
                    changed.append(iid)
                if now_stamp and now_stamp != old_stamp:
                    cur.execute("UPDATE items SET stamp = ?, score = NULL, score_key = '', worst_slices = '[]' "
                                "WHERE id = ?", (now_stamp, iid))
            return [self._get(cur, i) for i in changed]

    # ------------------------------------------------------------------------------- order
    def _open_items(self, exclude=()) -> list[Item]:
        skip = {int(i) for i in exclude}
        marks = ", ".join("?" * len(OPEN_STATUSES))
        rows = self._db.query(f"{_SELECT} WHERE status IN ({marks}) ORDER BY id", OPEN_STATUSES)
        return [i for i in map(item_from_row, rows) if i.id not in skip]

    def next_item(self, order: str = "in-order", after: int | None = None, exclude=(), seed: int | None = None):
        """The item Next opens (only ``unseen`` / ``in-progress``), or None when none is left."""
        ordering.check_order(order)
        handed = dict(self._db.query("SELECT id, last_handed FROM items WHERE last_handed IS NOT NULL"))
        return ordering.pick(self._open_items(exclude), order, after, handed, time.time(), seed)

    def ranked(self) -> list[Item]:
        """Every item, most uncertain first (unscored after, in order)."""
        return ordering.ranked(self.items())

    def current(self) -> int | None:
        rows = self._db.query("SELECT value FROM state WHERE key = 'current'")
        return int(rows[0][0]) if rows else None

    def set_current(self, item_id: int | None) -> None:
        """Where the user is: napari reopens this item after a restart."""
        with self._db.transaction() as cur:
            if item_id is None:
                cur.execute("DELETE FROM state WHERE key = 'current'")
                return
            self._get(cur, item_id)
            cur.execute("INSERT OR REPLACE INTO state (key, value) VALUES ('current', ?)", (str(int(item_id)),))

    # ------------------------------------------------------------------------------ leases
    def lease(self, holder: str, seconds: float, order: str = "most-uncertain", seed: int | None = None):
        """Hand ``holder`` the next item nobody else holds, for ``seconds`` (as MONAI Label's next
        sample). The holder's previous lease ends. None when every open item is held or done."""
        from .leases import take

        return take(self, holder, seconds, order, seed)

    def hold(self, item_id: int, holder: str, seconds: float, replace=()) -> Item:
        """Lease this item to ``holder`` (opened by hand, not through lease): nobody else's lease()
        hands it out meanwhile. Refused (WorklistError) while another holder not in ``replace``
        has a live lease on it; the holder's previous lease ends."""
        from .leases import hold

        return hold(self, item_id, holder, seconds, replace)

    def leases(self) -> dict[int, str]:
        """Live leases: item id -> holder."""
        from .leases import live

        return live(self)

    def plan(self, holder: str, order: str = "most-uncertain", count: int = 2, seed: int | None = None) -> list[Item]:
        """What successive lease() calls of ``holder`` would hand out, without leasing (leases.plan)."""
        from .leases import plan

        return plan(self, holder, order, count, seed)

    def release(self, item_id: int, holder: str) -> None:
        with self._db.transaction() as cur:
            cur.execute("UPDATE items SET lease_holder = '', lease_until = 0 WHERE id = ? AND lease_holder = ?",
                        (int(item_id), str(holder)))

    def holder(self, item_id: int) -> str:
        """Who holds a live lease on the item ("" = nobody)."""
        rows = self._db.query("SELECT lease_holder FROM items WHERE id = ? AND lease_until > ?",
                              (int(item_id), time.time()))
        return rows[0][0] if rows else ""

    def output_path(self, item: Item, out_dir) -> Path:
        from .export import output_path

        return output_path(item, out_dir)
