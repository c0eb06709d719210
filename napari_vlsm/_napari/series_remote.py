"""The Series section on a server project: the server's worklist, shared by several annotators.

While the dock is connected to ``napari-vlsm serve`` and the server's project has a worklist
(added there with ``napari-vlsm worklist add``), the section works through it
(client/worklist.py): Next asks the server for the most uncertain item nobody else holds (a lease,
as MONAI Label's "next sample"), the item's pixels and geometry come from the server, the mask of
the item left or marked done is written by the server into its project's masks folder (on the
scan's own grid, which the server reads itself), and corrections name the item
(``worklist:<id>``), so the server's ``worklist export`` rebuilds from them. Item paths never
leave the server. A server project without a worklist leaves the section on this computer's.

Every call to the server runs in a worker (no network wait on the GUI thread); the section reads
the last listing the server gave (:class:`RemoteSeries`).
"""

from __future__ import annotations

import atexit
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from napari_vlsm.core.errors import WorklistError

from .series_items import ItemData, item_data


@dataclass(frozen=True)
class RemoteItem:
    """A server item with the fields of ``core.worklist.Item`` the section reads (no path: a name)."""

    id: int
    name: str
    kind: str
    status: str
    reason: str
    score: float | None
    worst_slices: tuple[int, ...]
    corrections: int
    adapter: str

    @classmethod
    def of(cls, doc: dict) -> RemoteItem:
        return cls(int(doc["id"]), str(doc.get("name", "")), str(doc.get("kind", "image")), str(doc["status"]),
                   str(doc.get("reason") or ""), doc.get("score"), tuple(doc.get("worst_slices") or ()),
                   int(doc.get("corrections") or 0), str(doc.get("adapter") or ""))

    @property
    def path(self) -> str:
        """What the item's layer names as its source, ``worklist:<id>`` (the server maps it to the file)."""
        from napari_vlsm.core.worklist.items import item_source

        return item_source(self.id)


def holder_name() -> str:
    """This napari's name for its leases (the server puts the token's name before it): the same
    after napari restarts, so the dock lands on the item it held; another one for a second napari
    running on this computer at the same time, so two windows never share items."""
    if not _SLOT:
        _SLOT.append(_take_slot())
    return _SLOT[0][1]


_SLOT: list = []  # (the lock file this process holds, its holder name), taken once


def _take_slot():
    """The first free numbered slot on this computer: a lock file held while this process lives
    (the operating system frees it when the process ends, crashed or not)."""
    host = socket.gethostname()[:80]
    try:
        import fcntl
    except ImportError:  # Windows: one name per computer
        return None, f"dock@{host}"
    from .settings import user_config_dir

    folder = user_config_dir() / "leases"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(64):
            handle = open(folder / f"napari-{n}.lock", "a")  # noqa: SIM115 - held until the process ends
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            atexit.register(handle.close)
            return handle, f"dock@{host}" + (f"#{n + 1}" if n else "")
    except OSError:
        pass
    return None, f"dock@{host}:pid{os.getpid()}"  # no slot: its own name, no resume after a restart


class RemoteSeries:
    """A server project's worklist: the last listing (GUI thread) and the calls (workers)."""

    remote = True
    root = None  # no folder on this computer

    def __init__(self, client, project: str, holder: str | None = None):
        from napari_vlsm.client.worklist import RemoteWorklist

        self.api = RemoteWorklist(client, project, holder or holder_name())
        self.key = ("server", client.url, project)
        self._items: dict[int, RemoteItem] = {}
        self._counts: dict = {}
        self.held: list[int] = []

    # ------------------------------------------------------------------ the last listing (GUI thread)
    def items(self) -> list[RemoteItem]:
        return list(self._items.values())

    def counts(self) -> dict:
        return dict(self._counts)

    def get(self, item_id: int) -> RemoteItem:
        try:
            return self._items[int(item_id)]
        except KeyError:
            raise WorklistError(f"item {item_id} is not in the server's list; press Next") from None

    def current(self) -> int | None:
        return self.held[0] if self.held else None

    def update(self, listing: dict | None = None, item: RemoteItem | None = None) -> None:
        """Take a listing the server gave (or one item's new state)."""
        if listing is not None:
            self._items = {int(d["id"]): RemoteItem.of(d) for d in listing["items"]}
            self._counts = dict(listing.get("counts", {}))
            if "held" in listing:  # a ranking's listing does not say
                self.held = [int(i) for i in listing["held"]]
        if item is not None:
            self._items[item.id] = item

    def add_corrections(self, item_id: int, n: int = 1) -> RemoteItem:
        """The server counts them as they arrive; this keeps the table in step until the next listing."""
        from dataclasses import replace

        item = replace(self.get(item_id), corrections=self.get(item_id).corrections + n)
        self._items[item.id] = item
        return item

    def close(self) -> None:
        pass

    # ------------------------------------------------------------------ the calls (workers)
    def fetch(self) -> dict:
        return self.api.status()

    def read(self, item_id: int) -> ItemData:
        """Worker: an item's pixels and geometry from the server (no saved mask: :meth:`saved`)."""
        array, doc = self.api.image(item_id)
        item = RemoteItem.of(doc)
        return item_data(item, array, volume_of(array, item, doc.get("volume")))

    def saved(self, item_id: int):
        """Worker: (label map, prompts) the server saved for the item, or None."""
        found = self.api.mask(item_id)
        if found is None:
            return None
        labels, legend = found  # legend: {"structures": [{"value", "name", "prompt", ...}]}
        return labels, [row["prompt"] for row in sorted(legend["structures"], key=lambda row: int(row["value"]))]

    def _with_pixels(self, item_id: int, have):
        """Worker: (the item read, or None when its pixels were read ahead (``have``), its saved mask)."""
        found = None if item_id in have else self.read(item_id)
        return found, self.saved(item_id)

    def _leave(self, leave, lease_s: float) -> str:
        """Worker: send the mask of the item left; "" when sent, else why not (the item was taken
        by someone else after this dock's lease ended: the corrections are stored all the same)."""
        from napari_vlsm.client import ServerError

        if leave is None:
            return ""
        try:
            self.save(*leave, lease_s=lease_s)
        except ServerError as err:
            if err.status != 409:
                raise
            return str(err)
        return ""

    def take_next(self, order: str, seed: int | None, lease_s: float, leave=None, left: int | None = None,
                  status: str | None = None, have=()):
        """Worker: send the mask of the item left (``leave``: (item id, labels, structures)), lease
        the next item (the item ``left`` gets ``status``, e.g. skipped), read it unless read ahead
        (``have``) -> (RemoteItem | None, ItemData | None, saved, listing, why the mask was not sent)."""
        lost = self._leave(leave, lease_s)
        if lost or status is None:
            left = None  # no longer ours: its status is the new holder's
        doc = self.api.next(order=order, lease_s=lease_s, previous_id=left, previous_status=status if left else None,
                            seed=seed)
        if doc is None:
            return None, None, None, self.fetch(), lost
        return (RemoteItem.of(doc), *self._with_pixels(int(doc["id"]), have), self.fetch(), lost)

    def open(self, item_id: int, lease_s: float, leave=None, have=()):
        """Worker: send the mask of the item left, hold ``item_id`` for this dock, read it (as take_next)."""
        lost = self._leave(leave, lease_s)
        item = RemoteItem.of(self.api.hold(item_id, lease_s))
        return (item, *self._with_pixels(item_id, have), self.fetch(), lost)

    def renew(self, item_id: int, lease_s: float) -> RemoteItem:
        """Worker: the item on screen stays this dock's while it is worked on (409 if it was taken)."""
        return RemoteItem.of(self.api.hold(item_id, lease_s))

    def save(self, item_id: int, labels, structures, lease_s: float, timeout: float | None = None) -> str:
        """Worker: the server writes the mask (its masks folder, on the scan's grid); -> file name.
        A lease that ended with nobody else taking the item is taken again first (a laptop asleep)."""
        from napari_vlsm.client import ServerError

        rows = [{"value": s.value, "name": s.name, "prompt": s.prompt} for s in structures]
        try:
            return self.api.save_mask(item_id, labels, rows, timeout=timeout)["mask"]
        except ServerError as err:
            if err.status != 409:
                raise
            self.api.hold(item_id, lease_s)  # 409 again (naming who) when someone else holds it now
            return self.api.save_mask(item_id, labels, rows, timeout=timeout)["mask"]

    def mark_done(self, item_id: int, labels, structures, lease_s: float):
        """Worker: the mask first, then the status (done only once the mask is on the server's disk)."""
        name = self.save(item_id, labels, structures, lease_s)
        return name, RemoteItem.of(self.api.set_status(item_id, "done")), self.fetch()

    def plan(self, order: str, count: int, seed: int | None) -> list[int]:
        return [int(d["id"]) for d in self.api.plan(order=order, count=count, seed=seed)]


def volume_of(array, item: RemoteItem, doc: dict | None):
    """The server's description of a scan -> a MedicalVolume here (the same layer as a local scan's:
    spacing, origin and the grid a saved mask is written on); None for a 2D image or a stack."""
    if not doc:
        return None
    from napari_vlsm.core.medical.geometry import Geometry
    from napari_vlsm.core.medical.reading import MedicalVolume

    geometry = Geometry.from_dict(doc["geometry"])
    if tuple(geometry.shape) != tuple(array.shape):
        raise WorklistError(f"the server sent {item.name} as {array.shape} with a grid of {geometry.shape}")
    return MedicalVolume(array, geometry, Path(item.name), str(doc.get("format", "")), str(doc.get("modality", "")))


def prefetch_remote(series: RemoteSeries, order: str, count: int, seed: int | None, have, segmenter, prompts,
                    preset, cancel):
    """Worker (niced): what Next will hand out (the server's own rule), read ahead with the server's
    proposal for the slice each opens on -> (plan, {id: ItemData})."""
    from .series_items import lower_priority, propose_ahead

    lower_priority()
    plan, ready = series.plan(order, count, seed), {}
    for item_id in plan:
        if cancel.is_set():
            break
        if item_id not in have:
            ready[item_id] = propose_ahead(series.read(item_id), segmenter, prompts, preset, cancel)
    return plan, ready



