"""What ``finetune`` shows while and after it trains, the same for a folder run, a local project
and a server project: the tqdm bar, Ctrl+C handling, the checks on --out, and the one report."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

from ..core.errors import VLSMError
from .common import PROG


class Interrupt:
    """First Ctrl+C: ask the trainer to stop after the current step. Second: abort at once."""

    def __init__(self):
        self.event = threading.Event()
        self._old = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.event.is_set():
            raise KeyboardInterrupt
        self.event.set()
        print(f"\n{PROG}: stopping after this step and keeping the best adapter so far "
              "(Ctrl+C again to abort)", file=sys.stderr)

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


class Bar:
    """One tqdm bar on stderr: samples while preparing, then steps with loss and validation Dice."""

    def __init__(self):
        from tqdm import tqdm

        self.bar = tqdm(total=None, desc="preparing", unit="", file=sys.stderr, disable=None, leave=False)
        self.phase, self.dice = None, None

    def __call__(self, event) -> None:
        if event.kind in ("prepare", "step") and event.kind != self.phase:
            self.phase = event.kind
            self.bar.reset(total=event.total)
            self.bar.set_description("training" if event.kind == "step" else "preparing")
        if event.kind in ("prepare", "step"):
            self.bar.update(event.step - self.bar.n)
        if event.kind == "eval":
            self.dice = event.val_dice
        if event.kind == "step":
            dice = "" if self.dice is None else f" val Dice {self.dice:.3f}"
            self.bar.set_postfix_str(f"loss {event.loss:.3f}{dice}", refresh=False)

    def close(self):
        self.bar.close()


def drive(gen):
    """Run a finetune generator to its end with the bar; its result."""
    bar = Bar()
    try:
        while True:
            try:
                event = next(gen)
            except StopIteration as stop:
                return stop.value
            bar(event)
    finally:
        bar.close()


def check_out(out: Path) -> Path:
    """Fail before training, not after it, when the adapter could not be written."""
    import os

    if out.suffix != ".safetensors":
        out = out.with_suffix(".safetensors")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise VLSMError(f"cannot create the folder of --out {out}: {err.strerror or err}") from None
    if not os.access(out.parent, os.W_OK) or out.is_dir():
        raise VLSMError(f"cannot write the adapter to {out}; pass a writable file path to --out")
    return out


def report(result, args) -> None:
    """The one report of a finetune (a FinetuneResult; ``adapter_path`` = the --out file, if saved)."""
    if args.json:
        summary = {
            "adapter": str(result.adapter_path) if result.adapter_path else None,
            "variant": result.variant, "before": result.before, "after": result.after, "heldout": result.heldout,
            "steps": result.steps, "best_step": result.best_step, "stopped": result.stopped,
            "cancelled": result.cancelled, "data": result.metadata.get("data"),
            "time_s": result.metadata.get("training", {}).get("time_s"), "history": result.history,
            "message": result.message,
        }
        if getattr(args, "project", None):
            summary.update({"project": args.project, "project_adapter": result.adapter, "latest": result.latest})
        print(json.dumps(summary, indent=2))
        return
    if result.after:
        where = "validation" if result.heldout else "training images (no validation split)"
        print(f"Dice {result.before['dice']:.3f} -> {result.after['dice']:.3f}  "
              f"IoU {result.before['iou']:.3f} -> {result.after['iou']:.3f}  ({where}, {result.after['n']} images)")
    print(f"{result.steps} steps, stopped by {result.stopped}; best at step {result.best_step}")
    print(f"adapter: {result.adapter_path}" if result.adapter_path else "no adapter saved")
    if getattr(args, "project", None) and result.adapter:
        state = "now the project's latest" if result.latest else "not the project's latest (it did not improve)"
        print(f"project {args.project}: {result.adapter}, {state}")
