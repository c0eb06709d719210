"""``RemoteWorklist``: one annotator's view of a server project's worklist (no torch).

    wl = RemoteWorklist(VLSMClient(url, token), "colon", holder="ana")
    item = wl.next()                                   # the most uncertain item nobody else holds
    image, item = wl.image(item["id"])                 # item["volume"]: the scan's grid, or None
    ahead = wl.plan(count=2)                           # what the next Next calls hand out (read ahead)
    ...                                                 # correct it, send corrections (source "worklist:<id>")
    wl.save_mask(item["id"], labels, [{"value": 1, "name": "polyp", "prompt": "polyp"}])
    item = wl.next(previous_id=item["id"], previous_status="done")

Items are dicts as ``napari-vlsm worklist status --json`` prints them (``path`` is the file's name
only). Errors are ``ServerError`` with ``.status`` (409 when another annotator holds the item) or
``ConnectionLost``.
"""

from __future__ import annotations

import json

from ..core.worklist.items import SOURCE_PREFIX, item_source
from .http import ServerError, VLSMClient
from .wire import MEDIA_TYPE, decode_array, encode_array

__all__ = ["SOURCE_PREFIX", "RemoteWorklist", "item_source"]  # the source rule lives in the core (items.py)


class RemoteWorklist:
    def __init__(self, client: VLSMClient, project: str, holder: str):
        self.client, self.project, self.holder = client, project, holder

    def _path(self, tail: str) -> str:
        return f"/v1/projects/{self.project}/{tail}"

    def status(self) -> dict:
        """``{"items": [...], "counts": {status: n, "total": n}, "held": [ids this holder holds]}``."""
        return self.client._request("GET", self._path("worklist"), params={"holder": self.holder}).json()

    def next(self, order: str = "most-uncertain", lease_s: float = 900.0, previous_id: int | None = None,
             previous_status: str | None = None, seed: int | None = None) -> dict | None:
        """Lease the next item (None when every open item is done or held by someone else); the
        item left behind gets ``previous_status`` (e.g. "done") and its lease ends. ``seed``: the
        random order's seed (pass the plan's to get the item it named)."""
        body = {"holder": self.holder, "lease_s": lease_s, "order": order, "previous_id": previous_id,
                "previous_status": previous_status, "seed": seed}
        return self.client._request("POST", self._path("next"), json=body).json()["item"]

    def plan(self, order: str = "most-uncertain", count: int = 2, seed: int | None = None) -> list[dict]:
        """The items this holder's next ``count`` Next calls would hand out, in order; nothing is leased."""
        body = {"holder": self.holder, "order": order, "count": count, "seed": seed}
        return self.client._request("POST", self._path("next/plan"), json=body).json()["items"]

    def hold(self, item_id: int, lease_s: float = 900.0) -> dict:
        """Lease this item (opened by hand, or resumed after a restart); 409 while another holds it."""
        body = {"holder": self.holder, "lease_s": lease_s}
        return self.client._request("POST", self._path(f"items/{item_id}/hold"), json=body).json()

    def release(self, item_id: int) -> None:
        """Give the item back (the window closes): others may be handed it again."""
        self.client._request("POST", self._path(f"items/{item_id}/release"), json={"holder": self.holder})

    def set_status(self, item_id: int, status: str) -> dict:
        body = {"holder": self.holder, "status": status}
        return self.client._request("POST", self._path(f"items/{item_id}/status"), json=body).json()

    def image(self, item_id: int):
        """(array, item): a volume comes in canonical (z, y, x), as the predict endpoints take it, and
        ``item["volume"]`` = ``{"geometry": Geometry.to_dict(), "modality", "format"}`` (None in 2D)."""
        response = self.client._request("GET", self._path(f"items/{item_id}/image"))
        return decode_array(response.content), json.loads(response.headers["X-VLSM-Item"])

    def mask(self, item_id: int):
        """(labels, legend) of the item's saved mask, same layout as its image, or None when it has
        none; legend = ``{"structures": [{"value", "name", "prompt", "color"}]}``."""
        try:
            response = self.client._request("GET", self._path(f"items/{item_id}/mask"))
        except ServerError as err:
            if err.status == 404 and "no saved mask" in str(err):
                return None
            raise
        return decode_array(response.content), json.loads(response.headers["X-VLSM-Legend"])

    def save_mask(self, item_id: int, labels, structures, timeout: float | None = None) -> dict:
        """Save ``labels`` (integers, the item's shape) as the item's mask on the server, on the item's
        own grid; ``structures``: ``[{"value", "name", "prompt"}]`` (a "color"/"colour" is kept).
        ``timeout``: seconds for this request (the client's own otherwise), e.g. while napari closes.
        -> ``{"mask": file name, "item": the item}``."""
        rows = [_structure_row(s) for s in structures]
        headers = {"Content-Type": MEDIA_TYPE, "X-VLSM-Structures": json.dumps(rows, ensure_ascii=True)}
        extra = {} if timeout is None else {"timeout": timeout}
        return self.client._request("PUT", self._path(f"items/{item_id}/mask"), params={"holder": self.holder},
                                    content=encode_array(labels), headers=headers, **extra).json()

    def rank(self, prompts, threshold: float = 0.5, adapter: str | None = None) -> dict:
        """Score the open items on the server (cached there); items most uncertain first."""
        body = {"prompts": list(prompts), "threshold": threshold, "adapter": adapter}
        return self.client._request("POST", self._path("worklist/rank"), json=body).json()


def _structure_row(structure) -> dict:
    """A dict or a ``labelmap.Structure`` -> the wire's ``{"value", "name", "prompt"(, "color")}``."""
    get = structure.get if isinstance(structure, dict) else lambda key, default=None: getattr(structure, key, default)
    row = {"value": int(get("value")), "name": str(get("name") or get("prompt")), "prompt": str(get("prompt"))}
    color = get("color") or get("colour")
    return row | ({"color": str(color)} if color else {})
