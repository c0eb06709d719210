"""Agreement of the faster image-encoder paths with torch fp32 on real images, full architecture.

    python benchmarks/bench_agreement.py [--model DIR] [--per-set 6] [--threads 1]

For each 2D set in ../shared/data (kvasir, ph2, nuclei, em_membrane; its natural prompt), the first
``--per-set`` images are segmented by ``Segmenter`` with the image encoder computed by torch fp32
(the reference), ONNX Runtime fp32, ONNX Runtime int8 (``core/runtime``) and torch's own int8
dynamic quantisation of the vision model's Linear layers. Per image: max and mean |probability
difference| against the reference, the fraction of pixels whose mask (threshold 0.5) agrees, the
Dice between the two masks, and the image encoder's CPU time. Random weights (unless ``--model``)
exaggerate the disagreement: their probabilities sit near the threshold, where a small error flips
a pixel. Results: a table on stdout, JSON in benchmarks/results/.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SETS = {"kvasir": "polyp", "ph2": "skin lesion", "nuclei": "cell nuclei", "em_membrane": "cell membrane"}


def torch_int8(folder):
    """fp32 torch with the vision model's Linear layers dynamically quantised to int8 (torch.ao)."""
    import warnings

    import torch

    from napari_vlsm.core.loading import load_model

    loaded = load_model(folder, device="cpu", precision="fp32", backend="torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notice
        torch.ao.quantization.quantize_dynamic(loaded.model.clip.vision_model, {torch.nn.Linear},
                                               dtype=torch.qint8, inplace=True)
    return loaded


def main() -> int:
    import numpy as np

    from napari_vlsm.core.datasets import read_folder
    from napari_vlsm.core.engine import Segmenter
    from napari_vlsm.core.loading import load_model
    from napari_vlsm.core.metrics import dice

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="CLIPSeg folder (default: random-weight full architecture)")
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--per-set", type=int, default=6)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    common.setup_torch(args.threads)
    folder = common.model_folder(args.model)
    sides = {
        "torch-fp32": load_model(folder, device="cpu", precision="fp32", backend="torch"),
        "onnx-fp32": load_model(folder, device="cpu", precision="fp32", backend="onnx-fp32"),
        "onnx-int8": load_model(folder, device="cpu", backend="onnx-int8"),
        "torch-int8": torch_int8(folder),
    }
    segs = {name: Segmenter(loaded=lm, cache_bytes=0) for name, lm in sides.items()}
    rows, per_image = [], []
    for name, prompt in SETS.items():
        files = read_folder(Path(args.data) / name, prompts=[prompt])[: args.per_set]
        for f in files:
            results = {}
            for side, seg in segs.items():
                start = time.process_time()
                results[side] = (seg.predict(f.image, prompt)[0], time.process_time() - start)
            ref = results["torch-fp32"][0]
            entry = {"set": name, "image": f.name, "shape": list(f.image.shape),
                     "expert_dice_torch_fp32": float(dice(ref.mask, f.mask))}
            for side, (pred, seconds) in results.items():
                diff = np.abs(pred.probability - ref.probability)
                entry[side] = {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
                               "mask_agreement": float((pred.mask == ref.mask).mean()),
                               "mask_dice_vs_torch": float(dice(pred.mask, ref.mask)), "cpu_s": seconds,
                               "probability_range": [float(pred.probability.min()), float(pred.probability.max())]}
            per_image.append(entry)
    for side, side_loaded in sides.items():
        if side == "torch-fp32":
            continue
        vals = [e[side] for e in per_image]
        rows.append((side, side_loaded.backend, f"{max(v['max_abs_diff'] for v in vals):.4f}",
                     f"{statistics.mean(v['mean_abs_diff'] for v in vals):.5f}",
                     f"{min(v['mask_agreement'] for v in vals):.4f}",
                     f"{statistics.mean(v['mask_agreement'] for v in vals):.5f}",
                     f"{min(v['mask_dice_vs_torch'] for v in vals):.4f}",
                     f"{statistics.median(v['cpu_s'] for v in vals):.3f}"))
    ref_s = statistics.median(e["torch-fp32"]["cpu_s"] for e in per_image)
    print(common.table(rows, ("path", "backend loaded", "max |dp|", "mean |dp|", "min mask agreement",
                              "mean mask agreement", "min mask Dice", "median CPU s / image")))
    print(f"torch fp32 reference: median {ref_s:.3f} CPU s per image; {len(per_image)} images from "
          f"{', '.join(SETS)}; probabilities of the reference span "
          f"[{min(e['torch-fp32']['probability_range'][0] for e in per_image):.3f}, "
          f"{max(e['torch-fp32']['probability_range'][1] for e in per_image):.3f}]")
    meta = {name: lm.backend for name, lm in sides.items()}
    path = common.save("agreement", {"benchmark": "agreement", "machine": common.machine(), "model": str(folder),
                                     "backends": meta, "images": per_image})
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
