"""``napari-vlsm finetune``: train a VLSM adapter on a folder of images and masks.

Without a limit it runs the paper's recipe (up to 200 epochs, plateau LR schedule, early stopping on
validation Dice); ``--budget SECONDS`` or ``--steps N`` bound it. 20 % of the samples (chosen by a
hash of their names, so always the same ones) are held out for validation. Ctrl+C stops after the
current step and saves the best adapter so far (exit code 130); a second Ctrl+C aborts at once.
Volume pairs in ``--data`` (NIfTI / NRRD / MHA / DICOM series with label volumes) are split by
volume, then trained on their axial slices, each with its volume's window (``--window``).
With ``--project`` (a folder here) or ``--server URL`` (a server project) the samples are stored as
the project's corrections and the project trains (``cli/project_finetune.py``), as the dock does.
"""

from __future__ import annotations

from pathlib import Path

from ..core.constants import DEFAULT_VARIANT
from ..core.errors import VLSMError
from .common import VARIANTS, add_model_args, add_window_arg
from .server_options import add_server_args
from .training_report import Interrupt, check_out, drive, report

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
    p.add_argument("--init-adapter", metavar="FILE",
                   help="continue training this adapter (its variant wins); with --project also a name of the "
                        "project's adapters or 'latest'")
    p.add_argument("--batch-size", type=int, default=8, metavar="N", help="samples per step (default 8)")
    p.add_argument("--lr", type=float, metavar="LR", help="learning rate (default 3e-4 shallow, 1e-3 dense)")
    p.add_argument("--val-fraction", type=float, default=0.2, metavar="F",
                   help="share of samples held out for validation (default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    add_server_args(p, project_help="train in a project: a folder here (its corrections, adapters/ and latest), "
                                    "or with --server a project name there (default: the --data folder's name)")
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


def _load_init(path, loaded):
    from ..core.adapters.checkpoint import load_adapter

    return load_adapter(Path(path).expanduser(), loaded)


def run(args) -> int:
    if args.server or args.project:  # a project trains (here or on the server): cli/project_finetune.py
        from .project_finetune import run_on_project

        return run_on_project(args)
    from ..core.datasets import read_folder, split_train_val
    from ..core.loading import load_model
    from ..core.medical.windows import parse_window
    from ..core.project.training import from_train_result
    from ..core.training import finetune
    from ..core.volume_datasets import expand_slices

    parse_window(args.window)
    samples = read_folder(args.data, prompts=args.prompt, ann=args.ann, window=args.window)  # usage errors first
    train, val = split_train_val(samples, args.val_fraction, seed=args.seed)  # a volume stays on one side
    train, val = expand_slices(train), expand_slices(val)
    out = check_out(Path(args.out).expanduser())
    config = _config(args, args.variant or DEFAULT_VARIANT)
    loaded = load_model(args.model, device=args.device, precision=args.precision)
    init, init_meta = (None, None) if not args.init_adapter else _load_init(args.init_adapter, loaded)
    if init is not None and args.variant and args.variant != init.variant:
        raise VLSMError(f"--init-adapter is a {init.variant} adapter but --variant {args.variant} was asked for; "
                        "drop --variant or start a new adapter")
    with Interrupt() as interrupt:
        gen = finetune(loaded, train, val, config, init_adapters=init, out_path=out, cancel=interrupt.event,
                       base_metadata=init_meta, save_on_cancel=True,
                       extra_metadata={"dataset": {"data": str(args.data), "ann": args.ann, "window": args.window}})
        result = from_train_result(drive(gen), latest=False)  # no project: no "latest" to move
    report(result, args)
    return 130 if result.cancelled else 0
