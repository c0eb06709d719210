"""``RemoteWorklist``: one annotator's view of a server project's worklist (no torch).

    wl = RemoteWorklist(VLSMClient(url, token), "colon", holder="ana")
    item = wl.next()                                   # the most uncertain item nobody else holds
    image, item = wl.image(item["id"])
    ...                                                 # correct it, send corrections
    item = wl.next(previous_id=item["id"], previous_status="done")

Items are dicts as ``napari-vlsm worklist status --json`` prints them. Errors are ``ServerError``
(409 when another annotator holds the item).
"""

from __future__ import annotations

import json

from .http import VLSMClient
from .wire import decode_array


class RemoteWorklist:
    def __init__(self, client: VLSMClient, project: str, holder: str):
        self.client, self.project, self.holder = client, project, holder

    def _path(self, tail: str) -> str:
        return f"/v1/projects/{self.project}/{tail}"

    def status(self) -> dict:
        """``{"items": [...], "counts": {status: n, "total": n}}``."""
        return self.client._request("GET", self._path("worklist")).json()

    def next(self, order: str = "most-uncertain", lease_s: float = 900.0, previous_id: int | None = None,
             previous_status: str | None = None) -> dict | None:
        """Lease the next item (None when every open item is done or held by someone else); the
        item left behind gets ``previous_status`` (e.g. "done") and its lease ends."""
        body = {"holder": self.holder, "lease_s": lease_s, "order": order, "previous_id": previous_id,
                "previous_status": previous_status}
        return self.client._request("POST", self._path("next"), json=body).json()["item"]

    def set_status(self, item_id: int, status: str) -> dict:
        body = {"holder": self.holder, "status": status}
        return self.client._request("POST", self._path(f"items/{item_id}/status"), json=body).json()

    def image(self, item_id: int):
        """(array, item): a volume comes in canonical (z, y, x), as the predict endpoints take it."""
        response = self.client._request("GET", self._path(f"items/{item_id}/image"))
        return decode_array(response.content), json.loads(response.headers["X-VLSM-Item"])

    def rank(self, prompts, threshold: float = 0.5, adapter: str | None = None) -> dict:
        """Score the open items on the server (cached there); items most uncertain first."""
        body = {"prompts": list(prompts), "threshold": threshold, "adapter": adapter}
        return self.client._request("POST", self._path("worklist/rank"), json=body).json()
