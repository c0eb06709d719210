"""Fill between slices guided by a model's probability: does blending it in help, and when?

    python benchmarks/bench_fill_guided.py [--k 3 5 10] [--noise 0 0.15 0.3 0.45 0.6]

The only models here are random-weight ones, so a real model's probability cannot be measured. A
simulated model stands in for it, per structure: the true mask blurred (Gaussian, sigma 1 pixel: a
soft edge) plus spatially correlated noise (white noise smoothed with sigma 2 pixels, scaled to a
standard deviation of ``--noise`` in probability units: blobby false positives and holes, as a
slice-wise model makes them), clipped to [0.001, 0.999] (``--blur`` sets a vaguer edge). Its own Dice on the filled slices
(threshold 0.5) is printed beside each noise level, to say which level is realistic for a model.

Blend: on each slice between two key slices, inside where
``(1 - w) * d / pixel + w * logit(p) > 0``, d the interpolated signed distance of the default fill
(``fill_between.interpolated_distance``, mm; -inf far from both keys, so the model never adds
anything there), pixel the in-plane pixel size (d in pixels), p the model's probability. ``w`` 0 is
the fill as it is; "mid" weights the model most half-way between the keys (w = w_max * 4 t (1 - t),
w_max 0.5), where interpolation is least sure; "gated" uses w = 0.5 only for a structure whose
key slices (corrected, so known) the model already gets right (Dice >= 0.7 near the structure), else
w = 0: ``core.volume_edit.fill_guided.fill_between_guided`` itself, what ``fill-between --probability``
runs ("gate open": for how many structures the model got its share). Same data and Dice as bench_fill_between.py (every
k-th slice kept, Dice over the filled slices per structure, mean over structures), each structure
filled on its own.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
from bench_fill_between import dice, volumes

WEIGHTS = (("fill (w=0)", 0.0), ("w=0.25", 0.25), ("w=0.5", 0.5), ("mid", "mid"))


def simulated_probability(truth: np.ndarray, noise: float, rng, blur: float = 1.0) -> np.ndarray:
    from scipy import ndimage

    soft = ndimage.gaussian_filter(truth.astype(np.float32), sigma=(0, blur, blur))
    if noise > 0:
        blobs = ndimage.gaussian_filter(rng.standard_normal(truth.shape).astype(np.float32), sigma=(0, 2, 2))
        soft += blobs * (noise / max(float(blobs.std()), 1e-6))
    return np.clip(soft, 1e-3, 1 - 1e-3)


def measure(ks, noises, seed: int = 0, blur: float = 1.0):
    from napari_vlsm.core.volume_edit.fill_between import interpolated_distance
    from napari_vlsm.core.volume_edit.fill_guided import fill_between_guided

    rows = []
    rng = np.random.default_rng(seed)
    for name, labels, spacing in volumes():
        if name.startswith("ct_abdomen"):  # the same map as totalseg axial (bench_fill_between.py)
            continue
        pixel = float(np.mean(spacing[1:]))
        for k in ks:
            keys = list(range(0, labels.shape[0], k))
            if len(keys) < 2:
                continue
            filled = [z for z in range(keys[0], keys[-1]) if z not in keys]
            for value in np.unique(labels[labels != 0]):
                truth = labels == value
                if not truth[filled].any():
                    continue
                fields, ts = {}, {}
                for lo, hi in zip(keys, keys[1:]):
                    between = list(range(lo + 1, hi))
                    t = [(z - lo) / (hi - lo) for z in between]
                    for z, tz, f in zip(between, t, interpolated_distance(truth[lo], truth[hi], t, spacing[1:])):
                        fields[z], ts[z] = f / pixel, tz
                span = list(range(keys[0], keys[-1] + 1))
                for noise in noises:
                    prob_all = simulated_probability(truth[span], noise, rng, blur)
                    prob = prob_all[[z - keys[0] for z in filled]]
                    logit = np.log(prob / (1 - prob))
                    row = {"volume": name, "k": k, "label": int(value), "noise": noise,
                           "model alone": dice(prob > 0.5, truth[filled])}
                    sparse = np.zeros_like(truth)
                    sparse[keys] = truth[keys]
                    volume_prob = np.zeros(truth.shape, np.float32)
                    volume_prob[span] = prob_all
                    guided, weight = fill_between_guided(sparse, keys, volume_prob, spacing=spacing)
                    row["gated"], row["gate open"] = dice(guided[filled], truth[filled]), weight > 0
                    for label, w in WEIGHTS:
                        pred = np.stack([
                            (1 - wz) * fields[z] + wz * logit[i] > 0
                            for i, z in enumerate(filled)
                            for wz in [0.5 * 4 * ts[z] * (1 - ts[z]) if w == "mid" else w]])
                        row[label] = dice(pred, truth[filled])
                    rows.append(row)
    return rows


def table(rows, ks, noises) -> str:
    columns = ["model alone"] + [label for label, _ in WEIGHTS] + ["gated"]
    lines = ["| k | noise | structures | " + " | ".join(columns) + " | gate open |",
             "|---|---|---|" + "---|" * (len(columns) + 1)]
    for k in ks:
        for noise in noises:
            sel = [r for r in rows if r["k"] == k and r["noise"] == noise]
            if not sel:
                continue
            means = [statistics.mean(r[c] for r in sel) for c in columns]
            best = max(means[1:])
            cells = [f"{means[0]:.3f}"] + [f"**{v:.3f}**" if v == best else f"{v:.3f}" for v in means[1:]]
            opened = sum(r["gate open"] for r in sel)
            lines.append(f"| {k} | {noise:g} | {len(sel)} | " + " | ".join(cells) + f" | {opened} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, nargs="+", default=[3, 5, 10])
    parser.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.2, 0.3, 0.45])
    parser.add_argument("--blur", type=float, default=1.0,
                        help="sigma (pixels) of the simulated model's soft edge (larger: a vaguer model)")
    args = parser.parse_args()
    rows = measure(args.k, args.noise, blur=args.blur)
    print(table(rows, args.k, args.noise))


if __name__ == "__main__":
    main()
