"""Fill between slices: Dice on the filled slices, per method, k and structure size; and speed.

    python benchmarks/bench_fill_between.py [--k 3 5 10] [--methods sdf aligned components]

Real label volumes (../shared/data): TotalSegmentator's example label map (41 structures, 3 mm,
resliced along each axis it has >= 30 slices on), ct_abdomen_labels.tif, and the MR tumour
(slices 11-17 only). Every k-th slice (0, k, 2k, ...) is kept, as a clinician who annotated those
slices fully would give them; ``core.volume_edit.fill_between.fill_label_map`` fills the rest.
Dice is over the filled slices only (strictly between the first and last kept slice), per
structure (3D Dice over those slices), for structures with >= 1 voxel there; structures are
grouped by size (volume in the whole map: small < 20 mL, medium 20-200 mL, large >= 200 mL).
Speed: one structure, 30 slices of 512 x 512 filled from key slices 0 and 31, and from every 5th.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
if not DATA.is_dir():
    DATA = Path("/work/shared/data")

SIZES = ((20.0, "small <20 mL"), (200.0, "medium 20-200 mL"), (float("inf"), "large >=200 mL"))


def volumes():
    """(name, label map (z, y, x), spacing) of the real label volumes here."""
    import nibabel as nib
    import tifffile

    img = nib.load(DATA / "geometry/totalseg/example_seg.nii.gz")
    seg = np.asarray(img.dataobj).astype(np.int32)  # (x, y, z) RAS, 3 mm isotropic
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    yield "totalseg axial (z)", np.transpose(seg, (2, 1, 0)), zooms[::-1]
    yield "totalseg coronal (y)", np.transpose(seg, (1, 2, 0)), (zooms[1], zooms[2], zooms[0])
    ct = tifffile.imread(DATA / "volumes/ct_abdomen_labels.tif").astype(np.int32)
    yield "ct_abdomen_labels axial", ct, (3.0, 3.0, 3.0)
    mr = tifffile.imread(DATA / "volumes/mri_brain_tumor.tif")
    yield "mri_brain_tumor axial", (mr > 0).astype(np.int32)[11:18], (6.5, 0.78, 0.78)


def dice(a, b) -> float:
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else 2.0 * np.logical_and(a, b).sum() / total


def measure(methods, ks):
    from napari_vlsm.core.volume_edit.fill_between import fill_label_map

    rows = []
    for name, labels, spacing in volumes():
        voxel_ml = float(np.prod(spacing)) / 1000.0
        for k in ks:
            keys = list(range(0, labels.shape[0], k))
            if len(keys) < 2:
                continue
            filled = np.zeros(labels.shape[0], bool)
            filled[keys[0]:keys[-1]] = True
            filled[keys] = False
            sparse = np.zeros_like(labels)
            sparse[keys] = labels[keys]
            results = {m: fill_label_map(sparse, keys, axis=0, spacing=spacing, method=m) for m in methods}
            for value in np.unique(labels[labels != 0]):
                truth = labels[filled] == value
                if not truth.any():
                    continue
                ml = float((labels == value).sum()) * voxel_ml
                size = next(label for limit, label in SIZES if ml < limit)
                row = {"volume": name, "k": k, "label": int(value), "ml": round(ml, 1), "size": size}
                row.update({m: float(dice(results[m][filled] == value, truth)) for m in methods})
                rows.append(row)
    return rows


def table(rows, methods, ks) -> str:
    lines = ["| k | size | structures | " + " | ".join(methods) + " |",
             "|---|---|---|" + "---|" * len(methods)]
    for k in ks:
        for _, size in SIZES + ((None, "all"),):
            sel = [r for r in rows if r["k"] == k and (size == "all" or r["size"] == size)]
            if not sel:
                continue
            means = [statistics.mean(r[m] for r in sel) for m in methods]
            best = max(means)
            cells = [f"**{v:.3f}**" if v == best else f"{v:.3f}" for v in means]
            lines.append(f"| {k} | {size} | {len(sel)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def speed(methods, repeats: int = 5) -> dict:
    """Median seconds to fill 30 slices of 512 x 512 for one drifting, growing structure."""
    from napari_vlsm.core.volume_edit.fill_between import fill_between

    yy, xx = np.mgrid[:512, :512]
    vol = np.zeros((32, 512, 512), bool)
    for z in range(32):
        cy, cx, r = 200 + 2 * z, 220 + 3 * z, 60 + 2 * z
        vol[z] = ((yy - cy) / 1.3) ** 2 + (xx - cx) ** 2 < r**2
    out = {}
    for keys, label in (([0, 31], "keys 0 and 31"), (list(range(0, 32, 5)) + [31], "every 5th key")):
        for m in methods:
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                fill_between(vol, keys, spacing=(3.0, 0.8, 0.8), method=m)
                times.append(time.perf_counter() - t0)
            out[f"{label}, {m}"] = round(statistics.median(times), 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, nargs="+", default=[3, 5, 10])
    parser.add_argument("--methods", nargs="+", default=["sdf", "aligned", "components"])
    parser.add_argument("--json", type=Path, help="also write every structure's row here")
    args = parser.parse_args()
    rows = measure(args.methods, args.k)
    print(table(rows, args.methods, args.k))
    for name in dict.fromkeys(r["volume"] for r in rows):
        sel = [r for r in rows if r["volume"] == name]
        print(f"{name}: " + ", ".join(f"{m} {statistics.mean(r[m] for r in sel):.3f}" for m in args.methods)
              + f" ({len(sel)} structure x k)")
    print("speed (s, median of 5):", json.dumps(speed(args.methods)))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
