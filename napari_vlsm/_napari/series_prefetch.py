"""Next is instant: the items Next will open are read, and their image pass run, in the background.

The plan is what Next will take (the worklist's own rule: ``next_item`` with the order in use and
the same random seed the lease will use), ``DEPTH`` items ahead, one job at a time, each on a torch
thread of its own at the lowest CPU priority (series_items.prefetch). The engine keeps the image
features in its cache; this keeps the pixels read, so Next neither reads nor encodes the image.

It gives way to the user: any model job of the dock (Segment, a finetune's start) and any mouse
press on the canvas (a brush stroke) pause it -- a job not yet past its read stops there -- and it
goes on when the dock is idle and the mouse is released.
"""

from __future__ import annotations

import random
import threading

from napari_vlsm.core import labelmap as LM

from . import workers
from .series_items import ItemData, keep_alive, prefetch, read_or_fail

DEPTH = 2  # items read ahead (a volume's pixels are kept until Next takes them)


class Prefetcher:
    def __init__(self, panel):
        self.panel = panel
        self.enabled = True  # benchmarks measure Next without it
        self._seeds = [random.randrange(2**31) for _ in range(DEPTH)]
        self._plan: list[int] = []
        self._ready: dict[int, ItemData] = {}
        self._worker = None
        self._cancel: threading.Event | None = None
        self._paused = self._stopped = False
        self._asked = False  # a server series: its plan was asked for (until the next replan)
        panel.viewer.mouse_drag_callbacks.append(self._mouse)

    @property
    def seed(self) -> int:
        """The random seed the next lease uses, so the random order takes the item read ahead."""
        return self._seeds[0]

    def planned(self) -> list[int]:
        return list(self._plan)

    def ready(self) -> list[int]:
        return list(self._ready)

    def busy(self) -> bool:
        return self._worker is not None

    # ------------------------------------------------------------------------------ plan
    def replan(self) -> None:
        """What Next will open from here (after an item opened, the order changed, a status changed)."""
        panel, wl = self.panel, self.panel.worklist
        if wl is None or not self.enabled:
            self._plan, self._ready = [], {}
            return
        if panel.item is not None and self._plan and self._plan[0] == panel.item.id:
            self._seeds = self._seeds[1:] + [random.randrange(2**31)]  # Next took the first: shift
        if panel.remote:  # the server's own plan, asked in the worker (series_remote.prefetch_remote)
            self._plan, self._asked = [], False
            return self._kick()
        plan, after, others = [], panel.item.id if panel.item else None, set()
        for seed in self._seeds:
            item = wl.next_item(panel.order_key(), after=after, exclude=others | set(plan), seed=seed)
            while item is not None and wl.holder(item.id) not in ("", panel._holder):  # noqa: SLF001
                others.add(item.id)  # held by another window: Next never gets it
                item = wl.next_item(panel.order_key(), after=after, exclude=others | set(plan), seed=seed)
            if item is None or (panel.item is not None and item.id == panel.item.id):
                break
            plan.append(item.id)
            after = item.id
        self._plan = plan
        self._ready = {k: v for k, v in self._ready.items() if k in plan}
        self._kick()

    def reset(self) -> None:
        """Another project (or server): nothing read for the one left may be shown for this one
        (item ids repeat between projects)."""
        if self._cancel is not None:
            self._cancel.set()
        self._plan, self._ready, self._asked = [], {}, False

    def take(self, item_id: int) -> ItemData | None:
        return self._ready.pop(item_id, None)

    # ------------------------------------------------------------------------------ running
    def pause(self) -> None:
        self._paused = True
        if self._cancel is not None:
            self._cancel.set()

    def resume(self) -> None:
        self._paused = False
        self._kick()

    def stop(self) -> None:
        self._stopped = True
        self.pause()
        try:
            self.panel.viewer.mouse_drag_callbacks.remove(self._mouse)
        except ValueError:
            pass

    def _mouse(self, _viewer, event):
        """A press on the canvas (a brush stroke, a pan): give way until the button is released."""
        self.pause()
        self.panel.learning.pause_rank()
        yield
        while event.type == "mouse_move":
            yield
        if not self.panel.session.job:
            self.resume()
            self.panel.learning.kick_rank()

    def _kick(self) -> None:
        s = self.panel.session
        if self._worker is not None or self._paused or self._stopped or s.closed or not self.enabled:
            return
        if self.panel.remote:
            return self._kick_remote()
        todo = [i for i in self._plan if i not in self._ready]
        if not todo or s.job:
            return
        item = self.panel.worklist.get(todo[0])
        if item.status not in ("unseen", "in-progress"):
            return
        local = s.remote is None and s.segmenter is not None and not s.finetuning
        segmenter = s.segmenter if local else None  # finetuning: read only, the CPU is the training's
        prompts = LM.split_structures(self.panel.segment.prompt.currentText())
        self._cancel = cancel = threading.Event()
        source = self.panel.worklist
        self._worker = keep_alive(workers.start(
            read_or_fail, prefetch, segmenter, item, prompts, s.window_preset, cancel, what="reading ahead",
            on_return=lambda found: self._done(item.id, cancel, found, source), on_finish=self._finished,
            group=s.workers, torch_job=True,
        ))

    def _kick_remote(self) -> None:
        """Read ahead what the server's Next will hand out (its pixels; the proposal is the server's)."""
        from .series_remote import prefetch_remote

        if self._asked or self.panel.opening:
            return  # asked already for the item on screen (until the next replan)
        panel, s = self.panel, self.panel.session
        self._asked = True
        self._cancel = cancel = threading.Event()
        segmenter = None if s.finetuning or s.job else s.segmenter  # the server's engine (RemoteEngine)
        prompts = LM.split_structures(panel.segment.prompt.currentText())
        source = panel.worklist
        self._worker = keep_alive(workers.start(
            read_or_fail, prefetch_remote, source, panel.order_key(), DEPTH, self.seed, set(self._ready),
            segmenter, prompts, s.window_preset, cancel, what="reading ahead",
            on_return=lambda ready: self._remote_done(ready, cancel, source),
            on_finish=self._finished, group=panel.session.workers))

    def _remote_done(self, found, cancel, source) -> None:
        if self.panel.worklist is not source:
            return  # read for a series left meanwhile
        if cancel.is_set():
            self._asked = False  # asked again when it resumes
        elif isinstance(found, tuple):  # (an error is left for Next, which says it)
            plan, ready = found
            self._plan = list(plan)
            self._ready = {i: ready.get(i) or self._ready.get(i) for i in plan if i in ready or i in self._ready}

    def _done(self, item_id: int, cancel, found, source) -> None:
        # An item that cannot be read is left for Next, which says so when the user gets there.
        if self.panel.worklist is not source:
            return  # read for a series left meanwhile
        if isinstance(found, ItemData) and item_id in self._plan and not cancel.is_set():
            self._ready[item_id] = found

    def _finished(self) -> None:
        self._worker = self._cancel = None
        self._kick()
        if self._worker is None:
            self.panel.learning.kick_rank()  # the read-ahead is done: the ranking may use the CPU
