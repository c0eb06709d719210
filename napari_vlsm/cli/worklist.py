"""``napari-vlsm worklist``: the series worklist of a project folder, without a window.

    napari-vlsm worklist add    --project DIR INPUTS...
    napari-vlsm worklist status --project DIR [--json]
    napari-vlsm worklist rank   --project DIR --model SRC [--adapter FILE|latest] --prompt TEXT... [--json]
    napari-vlsm worklist export --project DIR --out DIR

The same ``worklist.sqlite`` the dock and the server use (core/worklist, docs/series.md).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..core.errors import VLSMError
from .common import INPUTS, add_model_args, progress


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("worklist", help="a series: add items, status, rank, export",
                              description="The worklist of a project folder: the items of a series, their status "
                                          "(unseen, in-progress, done, skipped, unreadable, missing) and how much "
                                          "the model doubts each one. See docs/series.md.")
    sub = p.add_subparsers(title="actions", metavar="ACTION")
    add = sub.add_parser("add", help="add files and folders (recursive)",
                         description="Add inputs to the worklist; a DICOM series folder is one item, files no "
                                     "reader can open are listed as unreadable with the reason.")
    _project(add)
    add.add_argument("inputs", nargs="+", metavar="INPUTS", help=INPUTS)
    add.set_defaults(func=run_add)
    status = sub.add_parser("status", help="done / total and every item's status")
    _project(status)
    status.add_argument("--json", action="store_true", help="print JSON instead of text")
    status.set_defaults(func=run_status)
    rank = sub.add_parser("rank", help="score the open items: most uncertain first",
                          description="Score every open item by how much the model doubts it (disagreement "
                                      "between phrasings of each prompt, one image pass per image) and store "
                                      "the scores in the project. Scores already computed with the same model, "
                                      "adapter and prompts are kept.")
    _project(rank)
    add_model_args(rank, adapter=False)
    rank.add_argument("--adapter", metavar="FILE|latest", help="adapter file, or 'latest' (the project's)")
    rank.add_argument("--prompt", nargs="+", required=True, metavar="TEXT", help="the structures, one per prompt")
    rank.add_argument("--threshold", type=float, default=0.5, help="mask threshold (default: 0.5)")
    rank.add_argument("--json", action="store_true", help="print JSON instead of text")
    rank.set_defaults(func=run_rank)
    export = sub.add_parser("export", help="write the masks of done items",
                            description="Write each done item's label map: the mask the dock saved for it "
                                        "(<project>/masks, copied as it is, with its own legend), else one "
                                        "rebuilt from the project's corrections: NIfTI on the scan's grid for "
                                        "volumes, TIFF for stacks, PNG for 2D images, and labels.json (label "
                                        "value -> structure).")
    _project(export)
    export.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    export.set_defaults(func=run_export)
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])


def _project(parser) -> None:
    parser.add_argument("--project", required=True, type=Path, metavar="DIR", help="the project folder")


def _open(args, create: bool = False):
    from ..core.worklist import Worklist
    from ..core.worklist.database import DB_NAME

    root = args.project.expanduser()
    if not create and not (root / DB_NAME).is_file():
        raise VLSMError(f"{root} has no worklist yet; add inputs first: "
                        f"napari-vlsm worklist add --project {root} INPUTS...")
    return Worklist(root)


def _json(worklist, items) -> str:
    return json.dumps({"items": [i.as_json() for i in items], "counts": worklist.counts()}, indent=2)


def _headline(counts: dict) -> str:
    return f"{counts['done']} / {counts['total']} done · {counts['in-progress']} in progress"


def _table(items) -> str:
    rows = [f"{'id':>4}  {'status':<11}  {'score':>6}  {'corr':>4}  name"]
    for i in items:
        score = "" if i.score is None else f"{i.score:.3f}"
        rows.append(f"{i.id:>4}  {i.status:<11}  {score:>6}  {i.corrections:>4}  {i.name}"
                    + (f"  ({i.reason})" if i.reason else ""))
    return "\n".join(rows)


def run_add(args) -> int:
    worklist = _open(args, create=True)
    report = worklist.add(Path(p) for p in args.inputs)
    print(f"Added {len(report.added)} items · {len(report.duplicates)} already listed")
    for path, reason in report.unreadable:
        print(f"unreadable: {path}: {reason}")
    print(_headline(worklist.counts()))
    return 0


def run_status(args) -> int:
    worklist = _open(args)
    worklist.refresh_missing()
    items = worklist.items()
    print(_json(worklist, items) if args.json else f"{_headline(worklist.counts())}\n{_table(items)}")
    return 0


def _adapter(args) -> str | None:
    if args.adapter != "latest":
        return args.adapter
    from ..core.worklist.project_files import latest_adapter

    found = latest_adapter(args.project.expanduser())
    if found is None:
        raise VLSMError(f"{args.project} has no latest adapter yet; finetune first, or leave out --adapter")
    return str(found)


def run_rank(args) -> int:
    from ..core.engine import Segmenter, check_threshold, clean_prompts
    from ..core.worklist.scoring import rank

    worklist = _open(args)
    prompts, threshold = clean_prompts(args.prompt), check_threshold(args.threshold)
    segmenter = Segmenter(args.model, adapter=_adapter(args), device=args.device, precision=args.precision)
    bar = None

    def show(done: int, total: int) -> None:
        nonlocal bar
        bar = bar or progress(total, "ranking")
        bar.update(1)

    items = rank(worklist, segmenter, prompts, threshold, on_progress=show)
    if bar is not None:
        bar.close()
    print(_json(worklist, items) if args.json else f"{_headline(worklist.counts())}\n{_table(items)}")
    return 0


def run_export(args) -> int:
    from ..core.project import ProjectLayout
    from ..core.store import CorrectionStore
    from ..core.worklist.export import export_done

    worklist = _open(args)
    worklist.refresh_missing()
    done = worklist.counts()["done"]
    if done == 0:
        raise VLSMError(f"no item of {args.project} is done yet; mark items done in the dock, or with the server")
    layout = ProjectLayout(args.project.expanduser())  # the dock's saved masks are copied, else rebuilt
    written = export_done(worklist, CorrectionStore(layout.corrections), args.out, masks_dir=layout.masks)
    print(f"Exported {done} done items")  # then every file written, the legend last
    for path in written:
        print(path)
    return 0
