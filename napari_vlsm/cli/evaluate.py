"""``napari-vlsm evaluate``: Dice and IoU of a model (+ adapter) on a folder of images and masks.

Scores are per image at the image's own resolution (threshold 0.5 by default) and their mean, as the
VLSM papers report them. A volume pair (NIfTI / NRRD / MHA / DICOM series with a label volume) is
scored as one 3D mask, segmented slice by slice with one window for the volume (``--window``). The prediction is the shared engine's (``Segmenter.predict``), the same
one the widget and ``napari-vlsm predict`` use. An image that cannot be read is reported on one
line and skipped (exit code 1 at the end).
"""

from __future__ import annotations

import json

from ..core.errors import ImageError, MaskError
from .common import add_model_args, add_window_arg, error, progress
from .segmenters import make_segmenter


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="Dice/IoU of a model (and adapter) on images with masks",
        description="Per-image and mean Dice and IoU at the original resolution on DIR/images + DIR/masks.")
    add_model_args(p)
    p.add_argument("--data", required=True, metavar="DIR", help="folder with images/ and masks/ (same file stems)")
    p.add_argument("--ann", metavar="FILE",
                   help="medvlsm-style JSON list; without --prompt each image uses its first phrasing")
    p.add_argument("--prompt", metavar="TEXT", help="the prompt for every image, e.g. 'polyp'")
    p.add_argument("--threshold", type=float, default=0.5, help="probability threshold (default 0.5)")
    add_window_arg(p)
    p.add_argument("--json", action="store_true", help="print a JSON report on stdout")
    from .server_options import add_server_args  # --server URL

    add_server_args(p)
    p.set_defaults(func=run)


def _predict_volume(seg, sample, prompt, threshold):
    """The whole volume's mask, slice by slice with the volume's one window (as predict does)."""
    import numpy as np

    pred = np.zeros(sample.mask.shape, bool)
    for z, preds in seg.predict_stack(sample.image, [prompt], threshold=threshold, window=sample.window, rgb=False):
        pred[z] = preds[0].mask
    return pred


def run(args) -> int:
    from ..core.datasets import read_folder
    from ..core.engine import check_threshold
    from ..core.medical.windows import parse_window
    from ..core.metrics import dice, iou, mean_scores

    check_threshold(args.threshold)
    parse_window(args.window)
    samples = read_folder(args.data, prompts=[args.prompt] if args.prompt else None, ann=args.ann,
                          window=args.window)
    seg = make_segmenter(args)
    rows, failed = [], []
    with progress(len(samples), "evaluate") as bar:
        for sample in samples:
            prompt = sample.prompts[0]
            try:
                if getattr(sample, "is_volume", False):
                    mask, pred = sample.mask, _predict_volume(seg, sample, prompt, args.threshold)
                else:
                    mask = sample.mask
                    image = sample.image
                    if mask.shape != image.shape[:2]:
                        raise MaskError(f"{sample.mask_path.name} is {mask.shape}, its image {image.shape[:2]}")
                    pred = seg.predict(image, [prompt], threshold=args.threshold)[0].mask
            except (ImageError, MaskError) as err:
                error(f"{sample.name}: {err}")
                failed.append({"name": sample.name, "error": str(err)})
            else:
                rows.append({"name": sample.name, "prompt": prompt, "dice": dice(pred, mask), "iou": iou(pred, mask)})
            bar.update(1)
    report = {
        "n": len(rows),
        **(mean_scores(rows) if rows else {"mean_dice": None, "mean_iou": None}),  # the trainer's mean
        "threshold": args.threshold, "per_image": rows, "failed": failed, "provenance": seg.provenance(),
    }
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        width = max([len(r["name"]) for r in rows] + [5])
        for r in rows:
            print(f"{r['name']:<{width}}  Dice {r['dice']:.4f}  IoU {r['iou']:.4f}")
        if rows:
            print(f"{'mean':<{width}}  Dice {report['mean_dice']:.4f}  IoU {report['mean_iou']:.4f}  ({len(rows)} images)")
    return 1 if failed else 0
