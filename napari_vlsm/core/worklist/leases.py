"""Leases: several annotators on one worklist (the server's ``POST /v1/projects/{p}/next``).

An item handed out is held by its annotator until the lease expires (as in MONAI Label), so two
people never correct the same image at once; an annotator who walks away frees it by doing
nothing. Choosing and taking happen in one write transaction: two requests at the same moment
cannot get the same item, even from two processes.
"""

from __future__ import annotations

import time

from ..errors import WorklistError
from . import ordering
from .items import COLUMNS, OPEN_STATUSES, item_from_row

MAX_LEASE_S = 24 * 3600.0


def check_holder(holder: str) -> str:
    holder = str(holder or "").strip()
    if not holder or len(holder) > 128:
        raise WorklistError("a lease needs an annotator name of 1-128 characters")
    return holder


def check_seconds(seconds: float) -> float:
    if not 0 < float(seconds) <= MAX_LEASE_S:
        raise WorklistError(f"a lease lasts 0-{MAX_LEASE_S:.0f} s; got {seconds}")
    return float(seconds)


def hold(worklist, item_id: int, holder: str, seconds: float, replace=()):
    """Lease one chosen item to ``holder`` (an item opened by hand, or the one a restart resumes):
    another annotator's Next passes over it meanwhile. The holder's other lease ends, as with
    :func:`take`. An item another holder has a live lease on is refused (WorklistError naming
    who), unless that holder is in ``replace`` (one known to be gone: its lease is taken over)."""
    holder, seconds = check_holder(holder), check_seconds(seconds)
    now = time.time()
    with worklist._db.transaction() as cur:
        item = worklist._get(cur, int(item_id))  # WorklistError for an unknown id
        row = cur.execute("SELECT lease_holder FROM items WHERE id = ? AND lease_until > ?",
                          (item.id, now)).fetchone()
        other = row[0] if row else ""
        if other and other != holder and other not in replace:
            raise WorklistError(f"'{item.name}' is being corrected by {other}; pick another item or press Next")
        cur.execute("UPDATE items SET lease_holder = '', lease_until = 0 WHERE lease_holder = ?", (holder,))
        cur.execute("UPDATE items SET lease_holder = ?, lease_until = ?, last_handed = ? WHERE id = ?",
                    (holder, now + seconds, now, item.id))
        return worklist._get(cur, item.id)


def take(worklist, holder: str, seconds: float, order: str, seed: int | None = None):
    """The next open item nobody else holds, now leased to ``holder`` (None when none is left)."""
    holder = check_holder(holder)
    ordering.check_order(order)
    seconds = check_seconds(seconds)
    now = time.time()
    marks = ", ".join("?" * len(OPEN_STATUSES))
    with worklist._db.transaction() as cur:
        mine = cur.execute("SELECT id FROM items WHERE lease_holder = ? AND lease_until > ? ORDER BY id DESC",
                           (holder, now)).fetchone()
        rows = cur.execute(f"SELECT {', '.join(COLUMNS)}, last_handed FROM items WHERE status IN ({marks}) "
                           "AND NOT (lease_until > ? AND lease_holder != ?) ORDER BY id",
                           (*OPEN_STATUSES, now, holder)).fetchall()
        pool = [item_from_row(r[:-1]) for r in rows]
        handed = {r[0]: r[-1] for r in rows if r[-1] is not None}
        # Asking again means "the next one": pick skips ``after`` unless it is the only item left.
        after = mine[0] if mine else None
        chosen = ordering.pick(pool, order, after, handed, now, seed)
        cur.execute("UPDATE items SET lease_holder = '', lease_until = 0 WHERE lease_holder = ?", (holder,))
        if chosen is None:
            return None
        cur.execute("UPDATE items SET lease_holder = ?, lease_until = ?, last_handed = ?, last_opened = ?, "
                    "status = CASE status WHEN 'unseen' THEN 'in-progress' ELSE status END WHERE id = ?",
                    (holder, now + float(seconds), now, now, chosen.id))
        return worklist._get(cur, chosen.id)


def live(worklist) -> dict[int, str]:
    """Every live lease: item id -> its holder."""
    rows = worklist._db.query("SELECT id, lease_holder FROM items WHERE lease_holder != '' AND lease_until > ? "
                              "ORDER BY id", (time.time(),))
    return {int(i): h for i, h in rows}


def plan(worklist, holder: str, order: str, count: int, seed: int | None = None) -> list:
    """What ``count`` successive :func:`take` calls of ``holder`` would hand out, in order, without
    leasing anything: the worklist's own rule (``next_item``), after the item the holder holds now,
    passing over items anyone holds (that one included) and the items planned before. Exact when
    each item is left done or skipped (an item left in progress is open again and may come back)."""
    holder = check_holder(holder)
    leases = live(worklist)
    mine = [i for i, h in leases.items() if h == holder]
    after = max(mine) if mine else None  # as take(): after the highest-numbered item it holds
    exclude, out = set(leases), []
    for _ in range(int(count)):
        item = worklist.next_item(order, after=after, exclude=exclude, seed=seed)
        if item is None:
            break
        out.append(item)
        exclude.add(item.id)
        after = item.id
    return out
