"""What the worklist endpoints share: a project's worklist, an item as a client sees it (its name,
never the server's path), whose lease is whose, and the ``worklist:<id>`` correction source.

Items are files on the server's side: a client names an item by its id, never by a path, and no
answer (errors included) carries the item's folder: ``redact`` is the one rule, ``public`` and
``redacting`` apply it to an item and to any error about one.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

from fastapi import HTTPException, Request
from fastapi import Path as PathParam
from pydantic import Field

from ..core.errors import VLSMError
from ..core.worklist.items import SOURCE_PREFIX, item_source
from .host import NotFound, check_project

# SQLite integers are 64-bit: a larger id is a 422 here, never an overflow in the database
ItemId = Annotated[int, PathParam(ge=1, lt=2**63, description="the item's id (its worklist number)")]
Holder = Annotated[str, Field(min_length=1, max_length=128, description="the annotator's name (one per window)")]


def open_worklist(request: Request, project: str):
    """The project's worklist; 404 naming the command that makes one when it has none."""
    from ..core.worklist import Worklist
    from ..core.worklist.database import DB_NAME

    folder = request.app.state.host.project_dir(check_project(project))
    if not (folder / DB_NAME).is_file():
        raise NotFound(f"project {project} has no worklist; on the server, run "
                       f"napari-vlsm worklist add --project <project-root>/{project} INPUTS...")
    return Worklist(folder)


def redact(text: str, item, root=None) -> str:
    """``text`` about ``item`` with the server's folders cut: the item's path -> its name, each folder
    above it -> ``<server folder>``, the project's root -> ``<project>``. A reason stored with the item
    (``<path> is gone``, a reader's error) or any error text built from it leaves the server this way."""
    text = str(text)
    path = Path(item.path)
    forms = [(path, item.name), *((folder, "<server folder>") for folder in path.parents if folder != folder.parent)]
    if root is not None:
        forms.append((Path(root), "<project>"))
    for where, shown in forms:
        for form in dict.fromkeys((str(where), str(where.resolve()))):
            text = text.replace(form, shown)
    return text


def public(item, root=None) -> dict:
    """An item as a client sees it: its name, never the server's path (files stay private), and its
    reason without the server's folders."""
    return {**item.as_json(), "path": item.name, "reason": redact(item.reason, item, root)}


@contextmanager
def redacting(item, root=None):
    """A VLSMError raised inside (a 422) names the item, never the server's folders."""
    try:
        yield
    except VLSMError as err:
        raise type(err)(redact(str(err), item, root)) from None


def holder_of(request: Request, name: str) -> str:
    """Leases belong to the token's name (one per annotator or laptop), so a client cannot take
    over another token's items by naming its holder; ``name`` tells apart windows of one token."""
    return f"{request.state.user}/{name}"


def check_holder(worklist, item_id: int, holder: str, own_lease: bool = False) -> None:
    """409 naming who, when another holder has a live lease on the item (what ``hold`` checks: an
    item nobody holds may be taken). ``own_lease``: also 409 unless ``holder`` has one itself."""
    other = worklist.holder(item_id)  # one read: the lease may end between two
    if other and other != holder:
        raise HTTPException(409, f"item {item_id} is held by {other}; ask for the next item instead")
    if own_lease and other != holder:
        raise HTTPException(409, f"you no longer hold item {item_id} (its lease ended); hold it again or press Next")


def check_lease(worklist, item_id: int, holder: str) -> None:
    """409 unless ``holder`` has a live lease on the item: what a write needs (a mask, a status), so
    a window whose lease ended cannot overwrite what a colleague did meanwhile (``hold`` takes it back)."""
    check_holder(worklist, item_id, holder, own_lease=True)


def get_item(worklist, item_id: int):
    """The item, or 404 (an id the worklist never had)."""
    from ..core.errors import WorklistError

    try:
        return worklist.get(item_id)
    except WorklistError:
        raise NotFound(f"the worklist has no item {item_id}; list them with GET .../worklist") from None


def read_public(item, root=None):
    """``read_item(item)`` with the server's folders cut from any error (the item's name stays)."""
    from ..core.worklist import read_item

    with redacting(item, root):
        return read_item(item)


# ---------------------------------------------------------------------------- correction sources
# "worklist:<id>" names a correction made on a server item; "worklist:<id>#axes=0,2" one made on a
# resliced view of it (the dock's planes.source_id: another set of slices). Stored as the item's
# path + the same suffix, so `worklist export` (which matches the exact path) rebuilds the item from
# its own slices only, and every answer shows the public form again.
def source_path(request: Request, project: str, source: str) -> tuple[str, str, int | None]:
    """A correction's source -> (as stored, as shown, the item's id): ``worklist:<id>[#view]`` -> that
    item's path on the server (+ ``#view``), ``worklist:<id>[#view]``, the id; any other source as it is."""
    if not source.startswith(SOURCE_PREFIX):
        return source, source, None
    from ..core.worklist.database import DB_NAME

    number, hash_, view = source[len(SOURCE_PREFIX):].partition("#")
    if not number.isdecimal() or not number.isascii():
        raise VLSMError(f"source {source!r}: a worklist item is named worklist:<id>, with the item's number "
                        "(and #... for a resliced view)")
    folder = request.app.state.host.project_dir(check_project(project))
    if not (folder / DB_NAME).is_file():
        raise VLSMError(f"source {source!r}: project {project} has no worklist")
    from ..core.errors import WorklistError
    from ..core.worklist import Worklist

    with Worklist(folder) as worklist:
        try:
            item = worklist.get(int(number))  # one row, not the whole list, for every correction
        except WorklistError:
            raise VLSMError(f"source {source!r}: project {project}'s worklist has no item {int(number)}") from None
    return f"{item.path}{hash_}{view}", f"{item_source(item.id)}{hash_}{view}", item.id


def public_source(stored: str, paths: dict[str, str]) -> str:
    """A stored source as a client sees it: an item's path (+ ``#view``) -> ``worklist:<id>`` (+ ``#view``);
    ``paths`` = :func:`public_sources`."""
    if stored in paths:
        return paths[stored]
    for cut in (i for i, c in enumerate(stored) if c == "#"):  # a file's name may hold a "#" too
        if stored[:cut] in paths:
            return paths[stored[:cut]] + stored[cut:]
    return stored


def public_sources(request: Request, project: str) -> dict[str, str]:
    """Each worklist item's stored path -> ``worklist:<id>``."""
    from ..core.worklist import Worklist
    from ..core.worklist.database import DB_NAME

    folder = request.app.state.host.project_dir(check_project(project))
    if not (folder / DB_NAME).is_file():
        return {}
    with Worklist(folder) as worklist:
        return {str(i.path): item_source(i.id) for i in worklist.items()}
