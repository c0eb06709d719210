"""Which open item comes next: in order, at random, or the one the model doubts most.

Pure functions over rows already read (no database here), so the rule is one place for the dock's
Next, the CLI's ``rank`` and the server's leases.

- ``in-order``: the first open item after ``after`` (wrapping round to the start).
- ``random``: weighted by how long ago the item was last handed out (never handed out weighs
  most), as MONAI Label's random strategy, so two annotators rarely collide.
- ``most-uncertain``: the highest score first; unscored items last, in order.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ..errors import WorklistError
from .items import ORDERS

NEVER_HANDED_S = 7 * 24 * 3600.0  # weight of an item never handed out: as if handed out a week ago


def check_order(order: str) -> str:
    if order not in ORDERS:
        raise WorklistError(f"unknown order {order!r}; use one of {', '.join(ORDERS)}")
    return order


def ranked(items: Sequence) -> list:
    """Most uncertain first; unscored items after every scored one, in the order added."""
    scored = sorted((i for i in items if i.score is not None), key=lambda i: (-i.score, i.id))
    return scored + [i for i in items if i.score is None]


def pick(candidates: Sequence, order: str, after: int | None, handed: dict[int, float] | None = None,
         now: float = 0.0, seed: int | None = None):
    """The next item among ``candidates`` (open items, in the order added), or None."""
    check_order(order)
    pool = [c for c in candidates if c.id != after] or list(candidates)
    if not pool:
        return None
    if order == "in-order":
        later = [c for c in pool if after is None or c.id > after]
        return (later or pool)[0]
    if order == "most-uncertain":
        return ranked(pool)[0]
    handed = handed or {}
    weights = [max(1.0, now - handed[c.id]) if handed.get(c.id) else NEVER_HANDED_S for c in pool]
    return random.Random(seed).choices(pool, weights=weights, k=1)[0]
