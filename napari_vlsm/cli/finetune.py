"""``napari-vlsm finetune``: train a VLSM adapter on a folder of images and masks.

Without a limit it runs the paper's recipe (up to 200 epochs, plateau LR schedule, early stopping on
validation Dice); ``--budget SECONDS`` or ``--steps N`` bound it. 20 % of the samples (chosen by a
hash of their names, so always the same ones) are held out for validation. Ctrl+C stops after the
current step and saves the best adapter so far (exit code 130); a second Ctrl+C aborts at once.
Volume pairs in ``--data`` (NIfTI / NRRD / MHA / DICOM series with label volumes) are split by
volume, then trained on their axial slices, each with its volume's window (``--window``).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

from ..core.constants import DEFAULT_VARIANT
from ..core.errors import VLSMError
from .common import PROG, VARIANTS, add_model_args, add_window_arg

PAPER_EPOCHS = 200


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "finetune", help="train an adapter on a folder of images and masks",
        description="Train a VLSM adapter on DIR/images + DIR/masks (matching names) and save it to --out. "
                    "Stops at --epochs/--steps/--budget (default: the paper's recipe, up to "
                    f"{PAPER_EPOCHS} epochs with early stopping); Ctrl+C keeps the best adapter so far.")
    add_model_args(p, adapter=False)
    p.add_argument("--variant", default=None, metavar="V",
                   help=f"adapter variant: {', '.join(VARIANTS[1:])} (default {DEFAULT_VARIANT}, or the "
                        "--init-adapter's own)")
    p.add_argument("--data", required=True, metavar="DIR", help="folder with images/ and masks/ (same file stems)")
    p.add_argument("--ann", metavar="FILE", help="medvlsm-style JSON list of {img_name, mask_name, prompts}")
    p.add_argument("--prompt", nargs="+", metavar="TEXT",
                   help="prompt phrasing(s) for every sample, e.g. --prompt polyp 'pink round polyp' "
                        "(wins over the --ann file's phrasings)")
    p.add_argument("--out", required=True, metavar="FILE", help="adapter file to write (.safetensors)")
    add_window_arg(p)
    limit = p.add_mutually_exclusive_group()
    limit.add_argument("--epochs", type=int, metavar="N", help=f"up to N epochs (default {PAPER_EPOCHS})")
    limit.add_argument("--budget", type=float, metavar="SECONDS", help="stop after this much wall time")
    limit.add_argument("--steps", type=int, metavar="N", help="stop after N optimiser steps")
    p.add_argument("--init-adapter", metavar="FILE", help="continue training this adapter (its variant wins)")
    p.add_argument("--batch-size", type=int, default=8, metavar="N", help="samples per step (default 8)")
    p.add_argument("--lr", type=float, metavar="LR", help="learning rate (default 3e-4 shallow, 1e-3 dense)")
    p.add_argument("--val-fraction", type=float, default=0.2, metavar="F",
                   help="share of samples held out for validation (default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    from .remote import add_server_args  # --server URL (cli/remote.py)

    add_server_args(p)
    p.set_defaults(func=run)


def _config(args, variant: str):
    from ..core.training import TrainConfig

    limits = {"max_steps": None, "epochs": args.epochs, "budget_s": args.budget}
    if args.steps is not None:
        limits["max_steps"] = args.steps
    elif args.epochs is None and args.budget is None:
        limits["epochs"] = PAPER_EPOCHS
    config = TrainConfig(variant=variant, batch_size=args.batch_size, lr=args.lr, seed=args.seed, **limits)
    config.validate()  # a bad setting is reported before the model loads
    return config


class _Interrupt:
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


class _Bar:
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


def _check_out(out: Path) -> Path:
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


def _load_init(path, loaded):
    from ..core.adapters.checkpoint import load_adapter

    return load_adapter(Path(path).expanduser(), loaded)


def run(args) -> int:
    if args.server:  # trains on the server (cli/remote.py)
        from .remote import run_finetune

        return run_finetune(args)
    from ..core.datasets import read_folder, split_train_val
    from ..core.loading import load_model
    from ..core.medical.windows import parse_window
    from ..core.training import finetune, run_to_end
    from ..core.volume_datasets import expand_slices

    parse_window(args.window)
    samples = read_folder(args.data, prompts=args.prompt, ann=args.ann, window=args.window)  # usage errors first
    train, val = split_train_val(samples, args.val_fraction, seed=args.seed)  # a volume stays on one side
    train, val = expand_slices(train), expand_slices(val)
    out = _check_out(Path(args.out).expanduser())
    config = _config(args, args.variant or DEFAULT_VARIANT)
    loaded = load_model(args.model, device=args.device, precision=args.precision)
    init, init_meta = (None, None) if not args.init_adapter else _load_init(args.init_adapter, loaded)
    if init is not None and args.variant and args.variant != init.variant:
        raise VLSMError(f"--init-adapter is a {init.variant} adapter but --variant {args.variant} was asked for; "
                        "drop --variant or start a new adapter")
    bar = _Bar()
    try:
        with _Interrupt() as interrupt:
            gen = finetune(loaded, train, val, config, init_adapters=init, out_path=out, cancel=interrupt.event,
                           base_metadata=init_meta, save_on_cancel=True,
                           extra_metadata={"dataset": {"data": str(args.data), "ann": args.ann,
                                                       "window": args.window}})
            result = run_to_end(gen, bar)
    finally:
        bar.close()
    _report(result, args)
    return 130 if result.cancelled else 0


def _report(result, args) -> None:
    if args.json:
        summary = {
            "adapter": str(result.adapter_path) if result.adapter_path else None,
            "variant": result.metadata.get("adapter_config", {}).get("variant"),
            "before": result.before, "after": result.after, "heldout": result.heldout,
            "steps": result.steps, "best_step": result.best_step, "stopped": result.stopped,
            "cancelled": result.cancelled, "data": result.metadata.get("data"),
            "time_s": result.metadata.get("training", {}).get("time_s"), "history": result.history,
            "message": result.message,
        }
        print(json.dumps(summary, indent=2))
        return
    if result.after:
        where = "validation" if result.heldout else "training images (no validation split)"
        print(f"Dice {result.before['dice']:.3f} -> {result.after['dice']:.3f}  "
              f"IoU {result.before['iou']:.3f} -> {result.after['iou']:.3f}  ({where}, {result.after['n']} images)")
    print(f"{result.steps} steps, stopped by {result.stopped}; best at step {result.best_step}")
    print(f"adapter: {result.adapter_path}" if result.adapter_path else "no adapter saved")
