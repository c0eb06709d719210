"""What the worklist endpoints share: a project's worklist, an item as a client sees it (its name,
never the server's path), whose lease is whose, and the ``worklist:<id>`` correction source.

Items are files on the server's side: a client names an item by its id, never by a path, and no
answer (errors included) carries the item's folder.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Request
from fastapi import Path as PathParam
from pydantic import Field

from ..core.errors import VLSMError
from .host import NotFound, check_project

SOURCE_PREFIX = "worklist:"  # a correction made on a server item: "worklist:<id>"
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


def public(item) -> dict:
    """An item as a client sees it: its name, never the server's path (files stay private)."""
    return {**item.as_json(), "path": item.name}


def holder_of(request: Request, name: str) -> str:
    """Leases belong to the token's name (one per annotator or laptop), so a client cannot take
    over another token's items by naming its holder; ``name`` tells apart windows of one token."""
    return f"{request.state.user}/{name}"


def check_holder(worklist, item_id: int, holder: str) -> None:
    """409 naming who, when another holder has a live lease on the item."""
    other = worklist.holder(item_id)
    if other and other != holder:
        raise HTTPException(409, f"item {item_id} is held by {other}; ask for the next item instead")


def get_item(worklist, item_id: int):
    """The item, or 404 (an id the worklist never had)."""
    from ..core.errors import WorklistError

    try:
        return worklist.get(item_id)
    except WorklistError:
        raise NotFound(f"the worklist has no item {item_id}; list them with GET .../worklist") from None


def read_public(item):
    """``read_item(item)`` with the server's folders cut from any error (the item's name stays)."""
    from ..core.worklist import read_item

    try:
        return read_item(item)
    except VLSMError as err:
        text = str(err)
        for form in (str(item.path), str(item.path.parent)):
            text = text.replace(form, item.name if form == str(item.path) else "<server folder>")
        raise type(err)(text) from None


# ---------------------------------------------------------------------------- correction sources
def source_path(request: Request, project: str, source: str) -> tuple[str, int | None]:
    """A correction's source as stored: ``worklist:<id>`` -> that item's path on the server (so
    ``worklist export`` rebuilds the item from it) and the id; any other source as it is."""
    if not source.startswith(SOURCE_PREFIX):
        return source, None
    from ..core.worklist.database import DB_NAME

    text = source[len(SOURCE_PREFIX):]
    if not text.isdecimal() or not text.isascii():
        raise VLSMError(f"source {source!r}: a worklist item is named worklist:<id>, with the item's number")
    folder = request.app.state.host.project_dir(check_project(project))
    if not (folder / DB_NAME).is_file():
        raise VLSMError(f"source {source!r}: project {project} has no worklist")
    from ..core.worklist import Worklist

    with Worklist(folder) as worklist:
        known = {i.id: i for i in worklist.items()}
    item = known.get(int(text))
    if item is None:
        raise VLSMError(f"source {source!r}: project {project}'s worklist has no item {int(text)}")
    return str(item.path), item.id


def public_sources(request: Request, project: str) -> dict[str, str]:
    """Stored source -> what a client sees: each worklist item's path -> ``worklist:<id>``."""
    from ..core.worklist import Worklist
    from ..core.worklist.database import DB_NAME

    folder = request.app.state.host.project_dir(check_project(project))
    if not (folder / DB_NAME).is_file():
        return {}
    with Worklist(folder) as worklist:
        return {str(i.path): f"{SOURCE_PREFIX}{i.id}" for i in worklist.items()}
