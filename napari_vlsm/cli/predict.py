"""``napari-vlsm predict``: masks for image files and folders, one file per input and prompt.

2D images (PNG, JPEG, 2D TIFF) give ``<stem>__<prompt>.png`` (0/255); TIFF stacks (Z, Y, X) or
(Z, Y, X, 3) give ``<stem>__<prompt>.tif``, a uint8 0/255 stack of the same (Z, Y, X) shape,
segmented with ONE intensity window for the whole volume. A file that cannot be read is reported
on one line and skipped (exit code 1 at the end); a usage error stops before any work (exit 2).
``napari-vlsm-predict.json`` in the output folder records the outputs and their provenance.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..core.errors import ImageError, VLSMError
from .common import (add_model_args, collect_inputs, error, make_segmenter, progress, read_image, unique_slugs,
                     unique_stems, write_bytes, write_png, write_tiff)

SUMMARY = "napari-vlsm-predict.json"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "predict", help="segment image files and folders with text prompts",
        description="Write one mask per input and prompt: <stem>__<prompt>.png for 2D images, "
                    "<stem>__<prompt>.tif for TIFF stacks (same shape as the stack).")
    add_model_args(p)
    p.add_argument("--prompt", action="append", metavar="TEXT",
                   help="what to segment, e.g. 'liver'; repeat for several structures (one image pass)")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="image files (PNG, JPEG, TIFF) or folders of them")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    p.add_argument("--threshold", type=float, default=0.5, help="probability threshold (default 0.5)")
    p.add_argument("--batch-size", type=int, default=8, metavar="N", help="slices per model call for stacks")
    p.add_argument("--save-prob", action="store_true", help="also write float32 probability TIFFs")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    from .batch import add_batch_args  # --cluster/--scheduler/--jobs/--overwrite (cli/batch.py)
    from .remote import add_server_args  # --server URL (cli/remote.py)

    add_server_args(p)
    add_batch_args(p)
    p.set_defaults(func=run)


def _segment(seg, data, prompts, args, bar):
    """-> (is_stack, {prompt: probability or mask volume}) for one input array."""
    import numpy as np

    from ..core.volume import guess_rgb

    spatial = data.ndim - (1 if guess_rgb(data.shape) else 0)
    if spatial < 2:
        raise ImageError(f"expected an image or a stack; got shape {tuple(data.shape)}")
    if spatial == 2:
        preds = seg.predict(np.asarray(data), prompts, threshold=args.threshold)
        return False, {p.prompt: p for p in preds}
    shape = tuple(data.shape[:spatial])  # the mask has the stack's shape without colour
    masks = {p: np.zeros(shape, np.uint8) for p in prompts}
    probs = {p: np.zeros(shape, np.float32) for p in prompts} if args.save_prob else {}
    total = int(np.prod(shape[:-2]))
    for n, (index, preds) in enumerate(seg.predict_stack(data, prompts, threshold=args.threshold,
                                                          batch_size=args.batch_size), start=1):
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


def run(args) -> int:
    from ..core.engine import check_threshold, clean_prompts
    from .batch import run_batch, wanted

    if wanted(args):  # a dask cluster, a jobs file or --overwrite: resumable batch (cli/batch.py)
        return run_batch(args)
    if not args.prompt or not args.inputs:
        raise VLSMError("pass --prompt TEXT and one or more INPUT files or folders (or --jobs FILE)")

    prompts = clean_prompts(args.prompt)  # usage errors first: before the (slow) model load
    check_threshold(args.threshold)
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
    with progress(len(inputs), "predict") as bar:
        for path, stem in zip(inputs, unique_stems(inputs)):
            try:
                is_stack, results = _segment(seg, read_image(path), prompts, args, bar)
            except ImageError as err:  # this file only: report, go on with the others
                message = str(err) if str(path) in str(err) else f"{path}: {err}"
                error(message)
                failed.append({"input": str(path), "error": message})
            else:
                records += _write_outputs(path, stem, slugs, is_stack, results, args, provenance)
            bar.update(1)
    summary = {"outputs": records, "failed": failed, "provenance": provenance}
    write_bytes(out / SUMMARY, json.dumps(summary, indent=2, ensure_ascii=False).encode())
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        for r in records:
            print(f"{r['path']}  {tuple(r['shape'])}  foreground {100 * r['foreground_fraction']:.1f}%")
    return 1 if failed else 0
