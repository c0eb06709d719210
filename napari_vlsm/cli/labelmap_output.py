"""``predict --multilabel``: one label map per input instead of one mask per prompt.

For prompts ``liver``, ``spleen``, ``left kidney`` (``--prompt`` repeated, in that order) an input
``scan.png`` gives ``OUT/scan__labels.png`` (0 background, 1 liver, 2 spleen, 3 left kidney; uint8,
uint16 beyond 255 structures) and ``OUT/scan__labels.json`` (value -> name, prompt, colour, plus
the overlap rule, threshold and provenance). A TIFF stack gives ``scan__labels.tif`` of the stack's
(Z, Y, X) shape, composed slice by slice: memory holds the label volume, not N probability volumes.
Overlaps follow ``core.labelmap``: the highest probability wins, below the threshold is background.

Other formats (NIfTI, DICOM) plug in through ``writer(array, path)`` and ``suffix``: the caller that
reads a medical volume passes a writer that puts the array on the input's grid, e.g.
``writer=lambda array, path: write_mask_like(array, source, path), suffix=".nii.gz"``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from .outputs import (
    LABELS,
    legend_path,
    output_path,
    probability_path,
    unique_slugs,
    write_bytes,
    write_png,
    write_tiff,
)

RULE = ("value i+1 = the i-th --prompt; a pixel takes the structure with the highest probability "
        "if that is >= the threshold, else 0 (background); ties go to the prompt listed first")


def add_arguments(parser) -> None:
    parser.add_argument("--multilabel", action="store_true",
                        help="write ONE label map per input (<stem>__labels.png/.tif, value i = i-th --prompt) "
                             "plus <stem>__labels.json (value -> name, prompt, colour)")


def check(args, prompts) -> None:
    """Usage errors before the model loads: with --multilabel each structure is listed once."""
    if getattr(args, "multilabel", False):
        from ..core import labelmap as LM

        LM.legend(prompts)  # PromptError naming the repeat


def compose_input(seg, data, prompts, threshold: float, batch_size: int, bar=None, keep_prob: bool = False,
                  window=None, rgb: bool | None = None):
    """-> (is_stack, label map, probabilities (N, ...) or None) for one input array (``rgb``: the
    colour guess's override; False for medical volumes, whose last axis is x even at 3 or 4 voxels)."""
    import numpy as np

    from ..core import labelmap as LM
    from ..core.errors import ImageError
    from ..core.stack_arrays import stack_arrays
    from ..core.volume import guess_rgb

    spatial = data.ndim - (1 if guess_rgb(data.shape, rgb) else 0)
    if spatial < 2:
        raise ImageError(f"expected an image or a stack; got shape {tuple(data.shape)}")
    if spatial == 2:
        prob = np.stack([p.probability for p in seg.predict(np.asarray(data), prompts, threshold=threshold, window=window)])
        return False, LM.compose(prob, threshold), prob if keep_prob else None
    shape = tuple(data.shape[:spatial])
    total = int(np.prod(shape[:-2]))
    results = seg.predict_stack(data, prompts, threshold=threshold, batch_size=batch_size, window=window, rgb=rgb)
    arrays = stack_arrays(results, shape[:-2], len(prompts), label_threshold=threshold, probabilities=keep_prob,
                          plane=shape[-2:], on_slice=None if bar is None else
                          (lambda n: bar.set_postfix_str(f"slice {n}/{total}")))
    return True, arrays.labels, arrays.probabilities


def write_labelmap(out: Path, stem: str, label_map, prompts, is_stack: bool, info: dict,
                   writer: Callable | None = None, suffix: str | None = None) -> dict:
    """Write ``<stem>__labels<suffix>`` and ``<stem>__labels.json``; returns the summary record.

    ``writer(array, path)`` replaces the default PNG (2D) / TIFF (stack) writer, e.g. for NIfTI.
    """
    import numpy as np

    from ..core import labelmap as LM

    structures = LM.legend(prompts)
    doc = LM.legend_document(structures, rule=RULE, **info)
    suffix = suffix or (".tif" if is_stack else ".png")
    path, legend = output_path(out, stem, LABELS, suffix), legend_path(out, stem)
    if writer is not None:
        writer(label_map, path)
    elif is_stack:
        write_tiff(path, label_map, metadata={"legend": json.dumps(doc["labels"], ensure_ascii=False)})
    else:
        write_png(path, label_map)
    doc["label_map"] = path.name
    write_bytes(legend, json.dumps(doc, indent=2, ensure_ascii=False).encode())
    counts = np.bincount(np.asarray(label_map).ravel(), minlength=len(prompts) + 1)
    size = max(1, int(np.asarray(label_map).size))
    return {"input": info.get("input"), "prompts": list(prompts), "path": str(path), "legend_path": str(legend),
            "shape": list(np.shape(label_map)), "foreground_fraction": round(1 - counts[0] / size, 6),
            "fractions": {s.name: round(float(counts[s.value]) / size, 6) for s in structures}}


def predict_file(seg, path: Path, stem: str, data, prompts, args, provenance: dict, bar=None,
                 writer: Callable | None = None, suffix: str | None = None, window=None,
                 rgb: bool | None = None) -> list[dict]:
    """One input -> its label map + legend (and ``--save-prob`` maps); returns summary records."""
    is_stack, label_map, probs = compose_input(seg, data, prompts, args.threshold, args.batch_size, bar,
                                               keep_prob=args.save_prob, window=window, rgb=rgb)
    out = Path(args.out).expanduser()
    info = {"input": str(path), "threshold": args.threshold, "provenance": provenance}
    record = write_labelmap(out, stem, label_map, prompts, is_stack, info, writer=writer, suffix=suffix)
    if probs is not None:
        record["probability_paths"] = []
        for prompt, name, prob in zip(prompts, unique_slugs(prompts), probs):
            if writer is not None:  # e.g. a medical volume: float32 NIfTI on its grid, as its masks
                prob_path = probability_path(out, stem, name, suffix)
                writer(prob, prob_path)
            else:
                prob_path = probability_path(out, stem, name, ".tif")
                write_tiff(prob_path, prob, metadata={"prompt": prompt, **provenance})
            record["probability_paths"].append(str(prob_path))
    return [record]
