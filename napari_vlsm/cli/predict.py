"""``napari-vlsm predict``: masks for image files and folders, one file per input and prompt.

2D images (PNG, JPEG, 2D TIFF) give ``<stem>__<prompt>.png`` (0/255); TIFF stacks (Z, Y, X) or
(Z, Y, X, 3) give ``<stem>__<prompt>.tif``, a uint8 0/255 stack of the same (Z, Y, X) shape,
segmented with ONE intensity window for the whole volume. Medical volumes (NIfTI, DICOM series,
NRRD, MHA) give ``<stem>__<prompt>.nii.gz`` on the scan's own voxel grid (``predict_volume.py``); files
of one DICOM series given one by one (``series/*.dcm``) give one mask, named after the first.
``--window`` picks the intensity window (a preset or "lo,hi"; default auto). A file that cannot be read is reported
on one line and skipped (exit code 1 at the end; 2 when none could be read: the user's error, as a bad
file given alone is); a usage error stops before any work (exit 2).
``napari-vlsm-predict.json`` in the output folder records the outputs and their provenance.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..core.errors import ImageError, VLSMError
from . import labelmap_output
from .common import (
    INPUTS,
    add_model_args,
    add_window_arg,
    collect_inputs,
    error,
    progress,
    read_input,
    unique_slugs,
    unique_stems,
    write_bytes,
    write_png,
    write_tiff,
)
from .predict_volume import segment_volume, write_volume_outputs
from .segmenters import make_segmenter

SUMMARY = "napari-vlsm-predict.json"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "predict", help="segment image files and folders with text prompts",
        description="Write one mask per input and prompt: <stem>__<prompt>.png for 2D images, "
                    "<stem>__<prompt>.tif for TIFF stacks (same shape as the stack), <stem>__<prompt>.nii.gz "
                    "for NIfTI / DICOM / NRRD / MHA volumes (on the scan's own voxel grid).")
    add_model_args(p)
    p.add_argument("--prompt", action="append", metavar="TEXT",
                   help="what to segment, e.g. 'liver'; repeat for several structures (one image pass)")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help=INPUTS)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    p.add_argument("--threshold", type=float, default=0.5, help="probability threshold (default 0.5)")
    p.add_argument("--batch-size", type=int, default=8, metavar="N", help="slices per model call for stacks")
    add_window_arg(p)
    p.add_argument("--save-prob", action="store_true",
                   help="also write float32 probabilities (TIFF; NIfTI for volumes)")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    labelmap_output.add_arguments(p)
    from .batch import add_batch_args  # --cluster/--scheduler/--jobs/--overwrite (cli/batch.py)
    from .server_options import add_server_args  # --server URL

    add_server_args(p)
    add_batch_args(p)
    p.set_defaults(func=run)


def _window(args, data):
    """None (the engine's own automatic window) unless --window asks for another."""
    from ..core.medical.windows import AUTO, resolve_window

    return None if args.window == AUTO else resolve_window(args.window, data)


def _segment(seg, data, prompts, args, bar):
    """-> (is_stack, {prompt: probability or mask volume}) for one input array."""
    import numpy as np

    from ..core.volume import guess_rgb

    spatial = data.ndim - (1 if guess_rgb(data.shape) else 0)
    if spatial < 2:
        raise ImageError(f"expected an image or a stack; got shape {tuple(data.shape)}")
    if spatial == 2:
        preds = seg.predict(np.asarray(data), prompts, threshold=args.threshold, window=_window(args, data))
        return False, {p.prompt: p for p in preds}
    shape = tuple(data.shape[:spatial])  # the mask has the stack's shape without colour
    masks = {p: np.zeros(shape, np.uint8) for p in prompts}
    probs = {p: np.zeros(shape, np.float32) for p in prompts} if args.save_prob else {}
    total = int(np.prod(shape[:-2]))
    for n, (index, preds) in enumerate(seg.predict_stack(data, prompts, threshold=args.threshold,
                                                          batch_size=args.batch_size, window=_window(args, data)),
                                      start=1):
        bar.set_postfix_str(f"slice {n}/{total}")
        for prompt, pred in zip(prompts, preds):
            masks[prompt][index] = pred.mask * np.uint8(255)
            if probs:
                probs[prompt][index] = pred.probability
    return True, {p: (masks[p], probs.get(p)) for p in prompts}


def _write_outputs(path, stem, slugs, is_stack, results, args, provenance) -> list[dict]:
    import numpy as np

    out, records = Path(args.out), []
    for (prompt, result), name in zip(results.items(), slugs):
        if is_stack:
            mask, prob = result
            target = out / f"{stem}__{name}.tif"
            write_tiff(target, mask, metadata={"prompt": prompt, **provenance})
        else:
            mask, prob = result.mask.astype(np.uint8) * np.uint8(255), result.probability
            target = out / f"{stem}__{name}.png"
            write_png(target, mask)
        record = {"input": str(path), "prompt": prompt, "path": str(target), "shape": list(mask.shape),
                  "foreground_fraction": round(float(np.count_nonzero(mask)) / mask.size, 6)}
        if args.save_prob:
            prob_path = out / f"{stem}__{name}__prob.tif"
            write_tiff(prob_path, prob, metadata={"prompt": prompt, **provenance})
            record["probability_path"] = str(prob_path)
        records.append(record)
    return records


def _predict_labelmap(seg, path, stem, data, prompts, args, provenance, bar) -> list[dict]:
    """--multilabel: a medical volume's label map goes on its own grid as NIfTI, others as PNG/TIFF."""
    if not hasattr(data, "geometry"):
        return labelmap_output.predict_file(seg, path, stem, data, prompts, args, provenance, bar,
                                            window=_window(args, data))
    from ..core.medical import write_mask
    from .predict_volume import window_of

    def on_grid(array, target):  # the label map, and with --save-prob each structure's float32 probability
        kind = "probability" if array.dtype.kind == "f" else "label map"
        write_mask(target, array, data.geometry, description=f"napari-vlsm {kind}")

    return labelmap_output.predict_file(seg, path, stem, data.array, prompts, args, provenance, bar,
                                        writer=on_grid, suffix=".nii.gz", window=window_of(args, data), rgb=False)


def predict_input(seg, path, stem, data, prompts, slugs, args, provenance, bar) -> list[dict]:
    """One read input -> its output files and summary records: what ``predict`` writes for it.

    The batch runner's file tasks (cli/batch_tasks.py) call this too, so both give the same files.
    """
    if getattr(args, "multilabel", False):  # one label map + JSON legend per input (cli/labelmap_output.py)
        return _predict_labelmap(seg, path, stem, data, prompts, args, provenance, bar)
    if hasattr(data, "geometry"):  # a medical volume: NIfTI out, on its own grid
        results, window = segment_volume(seg, data, prompts, args, bar)
        return write_volume_outputs(path, stem, slugs, data, results, window, args, provenance)
    is_stack, results = _segment(seg, data, prompts, args, bar)
    return _write_outputs(path, stem, slugs, is_stack, results, args, provenance)


def run(args) -> int:
    from ..core.engine import check_threshold, clean_prompts
    from ..core.medical.windows import parse_window
    from .batch import run_batch, wanted

    if wanted(args):  # a dask cluster, a jobs file or --overwrite: resumable batch (cli/batch.py)
        return run_batch(args)
    if not args.prompt or not args.inputs:
        raise VLSMError("pass --prompt TEXT and one or more INPUT files or folders (or --jobs FILE)")

    prompts = clean_prompts(args.prompt)  # usage errors first: before the (slow) model load
    check_threshold(args.threshold)
    parse_window(args.window)
    labelmap_output.check(args, prompts)
    if args.batch_size < 1:
        raise VLSMError(f"--batch-size must be at least 1; got {args.batch_size}")
    inputs = collect_inputs(args.inputs)
    out = Path(args.out).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise VLSMError(f"cannot create the output folder {out}: {err.strerror or err}") from None
    seg = make_segmenter(args)
    provenance = {**seg.provenance(), "threshold": args.threshold}
    slugs, records, failed = unique_slugs(prompts), [], []
    done: set[str] = set()  # files of DICOM series already segmented (``series/*.dcm``: one mask)
    with progress(len(inputs), "predict") as bar:
        for path, stem in zip(inputs, unique_stems(inputs)):
            if os.path.realpath(path) in done:
                bar.update(1)
                continue
            try:
                data = read_input(path)
                done.update(getattr(data, "series_files", ()))
                records += predict_input(seg, path, stem, data, prompts, slugs, args, provenance, bar)
            except ImageError as err:  # this file only: report, go on with the others
                message = str(err) if str(path) in str(err) else f"{path}: {err}"
                error(message)
                failed.append({"input": str(path), "error": message})
            bar.update(1)
    summary = {"outputs": records, "failed": failed, "provenance": provenance}
    write_bytes(out / SUMMARY, json.dumps(summary, indent=2, ensure_ascii=False).encode())
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        for r in records:
            print(f"{r['path']}  {tuple(r['shape'])}  foreground {100 * r['foreground_fraction']:.1f}%")
    if failed:
        return 2 if len(failed) == len(inputs) else 1
    return 0
