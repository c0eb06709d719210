"""Every sentence of the Series section. A notification is written "head\ndetail": the head is what a
toast shows (at most texts.HEAD_MAX characters, meaning first; ``texts.toast`` keeps it so), the
detail (which file, what to do) opens with the toast's arrow."""

from __future__ import annotations

TIP_NEXT = ("Save this item's mask and corrections, then open the next item of the series with the "
            "model's proposal (Shift+N in the viewer).")
TIP_DONE = "Write this item's mask into the project's masks folder and mark it done."
TIP_SKIP = "Leave this item out of Next (its status becomes 'skipped'); double-click it to come back."
TIP_ORDER = ("Which item Next opens: in the order added, at random, or the one the model doubts most "
             "(default once an adapter exists).")
TIP_WORST = "Show the slice of this scan the model is least sure about (again: the next one)."
TIP_LEARN = ("Finetune the adapter in the background after this many new corrections (all stored "
             "corrections of the project are used; a new adapter is kept only if it does better).")
EMPTY_TITLE = "Empty mask"
EMPTY_ASK = "The mask of '{name}' is empty. Mark it done anyway (it is saved as an empty mask)?"


def counts(c: dict) -> str:
    """'12 / 40 done · 3 in progress' (plus what else the series holds)."""
    text = f"{c.get('done', 0)} / {c.get('total', 0)} done · {c.get('in-progress', 0)} in progress"
    extra = [f"{c[k]} {k}" for k in ("skipped", "unreadable", "missing") if c.get(k)]
    return text + (" · " + " · ".join(extra) if extra else "")


def note(head: str, detail: str = "") -> str:
    """A notification: a short first line, the detail under it (shown through texts.toast)."""
    return f"{head}\n{detail}" if detail else head


def added(n: int, duplicates: int, unreadable: list) -> str:
    head = f"Series: {n} item(s) added"
    lines = []
    if duplicates:
        lines.append(f"{duplicates} already in the list.")
    if unreadable:
        first = "; ".join(f"{path.name}: {reason}" for path, reason in unreadable[:3])
        more = f" (and {len(unreadable) - 3} more)" if len(unreadable) > 3 else ""
        lines.append(f"{len(unreadable)} cannot be read, listed as 'unreadable': {first}{more}")
    return note(head, " ".join(lines))


def missing(name: str, path) -> str:
    return note("Series: a file is missing", f"{path} is gone; '{name}' is listed as 'missing'. "
                "Put the file back to work on it again.")


def unreadable(name: str, reason: str) -> str:
    return note("Series: cannot read an item", f"'{name}': {reason}. It is listed as 'unreadable'.")


def finished() -> str:
    return note("Series finished", "Every item is done, skipped or cannot be read. Double-click a row "
                "to go back to one.")


def saved_mask(target) -> str:
    return note("Mask saved", str(target))


def stale_mask(name: str, moved) -> str:
    return note("Saved mask no longer fits", f"'{name}' changed shape since its mask was saved; the old mask "
                f"is kept as {moved} and the item gets a new proposal.")


def worklist_problem(err) -> str:
    return note("Series unavailable", " ".join(str(err).split()))


def no_prompt() -> str:
    return "Type a prompt (Segment) to get proposals."


def finetune_started(n: int) -> str:
    return note("Finetuning in the background", f"{n} new corrections since the last one.")
