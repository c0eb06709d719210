"""A simulated clinician works through a series with the worklist: does the order matter, and does
learning along the way make the next proposals better?

    python benchmarks/bench_series.py [--model DIR] [--frames 40] [--per-round 8] [--budget 20]

40 frames of Kvasir-SEG (prompt "polyp") go into a project's worklist. Each round the next 8 items
(by the order under test: in order, random, most uncertain first) get a proposal; the expert masks
stand in for the corrections; the items are marked done; then, with learning, the adapter is
finetuned on EVERY correction so far (the real trainer, continuing from the last adapter) and
adopted only when its held-out Dice improved, as the dock does. Reported per round and order:
the proposals' Dice with and without learning, the Dice on 16 frames outside the series, and how
many corrections it took to reach a held-out Dice target. A PNG of the curves goes to docs/images.

Also measured: the uncertainty signals against the proposals' real error (Spearman of each part
with 1 - Dice, a horizontal-flip agreement included for comparison), where deliberately corrupted
frames rank, and the cost of ranking N items against predicting them once with one prompt.

Without ``--model`` a tiny random CLIPSeg made able to draw (as simulated_clinician.py) runs
everything in minutes on a CPU: its numbers test the machinery; random weights limit what any
order or score can show.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import simulated_clinician  # noqa: E402
from line_plot import line_chart  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "kvasir"
PLOT = Path(__file__).resolve().parents[1] / "docs" / "images" / "series-learning-curve.png"
ORDERS = ("in-order", "random", "most-uncertain")


class Correction:
    def __init__(self, image, mask, prompt, name):
        self.image, self.mask, self.prompts, self.name = image, mask, (prompt,), name


def prepare(args, folder: Path) -> tuple[list[Path], dict, list]:
    """The series (frames written small into ``folder``, as files the worklist adds), their expert
    masks, and the held-out frames (image, mask) outside the series."""
    import imageio.v3 as iio
    from PIL import Image

    from napari_vlsm.core.datasets import read_folder

    files = read_folder(args.data, prompts=[args.prompt])
    order = np.random.default_rng(args.seed).permutation(len(files))
    chosen = [files[i] for i in order[: args.frames + args.heldout]]

    def small(array, mask=False):
        im = Image.fromarray(array)
        scale = args.side / max(im.size)
        size = (round(im.width * scale), round(im.height * scale))
        return np.asarray(im.resize(size, Image.NEAREST if mask else Image.BILINEAR))

    paths, masks, heldout = [], {}, []
    for n, f in enumerate(chosen):
        image, mask = small(f.image), small(f.mask.astype(np.uint8) * 255, mask=True) > 127
        if n < args.frames:
            path = folder / f"{n:02d}_{f.name}.png"
            iio.imwrite(path, image)
            paths.append(path)
            masks[path.resolve()] = mask
        else:
            heldout.append((image, mask))
    return paths, masks, heldout


def mean_dice(seg, pairs, prompt) -> float:
    from napari_vlsm.core.metrics import dice

    return statistics.mean(dice(seg.predict(img, [prompt])[0].mask, m) for img, m in pairs)


def pick_round(wl, seg, order, per_round, prompt, seed, last):
    from napari_vlsm.core.worklist.scoring import rank

    if order == "most-uncertain":
        rank(wl, seg, [prompt])  # only items not yet scored with this adapter are scored
    picked = []
    for k in range(per_round):
        item = wl.next_item(order, after=picked[-1].id if picked else last, exclude=[i.id for i in picked],
                            seed=seed + k)
        if item is None:
            break
        picked.append(item)
    return picked


def finetune_round(loaded, corrections, state, args):
    from napari_vlsm.core.datasets import split_train_val
    from napari_vlsm.core.training import TrainConfig, finetune, run_to_end

    train, val = split_train_val(corrections, 0.2, seed=0)
    config = TrainConfig(variant=args.variant, max_steps=args.steps, budget_s=args.budget, batch_size=4,
                         lr=simulated_clinician.TINY_LR if not args.model else None, seed=args.seed)
    t0 = time.perf_counter()
    result = run_to_end(finetune(loaded, train, val, config, init_adapters=state.get("adapters"),
                                 base_metadata=state.get("meta")))
    adopted = result.improved and result.adapters is not None
    if adopted:
        state["adapters"], state["meta"] = result.adapters, result.metadata
    return {"seconds": round(time.perf_counter() - t0, 1), "steps": result.steps, "adopted": adopted,
            "val_before": result.before.get("dice"), "val_after": result.after.get("dice")}


def run_order(loaded, order, learn, paths, masks, heldout, args, root: Path) -> dict:
    from napari_vlsm.core.engine import Segmenter
    from napari_vlsm.core.image_files import read_image
    from napari_vlsm.core.metrics import dice
    from napari_vlsm.core.worklist import Worklist

    wl = Worklist(root / f"{order}-{'learn' if learn else 'fixed'}")
    wl.add(paths)
    seg, state, corrections, rounds, last = Segmenter(loaded=loaded), {}, [], [], None
    base_heldout = mean_dice(seg, heldout, args.prompt)
    for r in range(args.frames // args.per_round):
        t0 = time.perf_counter()
        picked = pick_round(wl, seg, order, args.per_round, args.prompt, args.seed * 1000 + r * 100, last)
        pick_s = time.perf_counter() - t0
        dices = []
        for item in picked:
            image, truth = read_image(item.path), masks[item.path]
            dices.append(dice(seg.predict(image, [args.prompt])[0].mask, truth))
            wl.set_status(item.id, "done")
            wl.add_corrections(item.id, 1)
            corrections.append(Correction(image, truth, args.prompt, item.name))
        last = picked[-1].id
        row = {"round": r + 1, "corrections": len(corrections), "proposal_dice": statistics.mean(dices),
               "pick_s": round(pick_s, 2)}
        if learn:
            row["finetune"] = finetune_round(loaded, corrections, state, args)
            if row["finetune"]["adopted"]:
                seg.set_adapters(state["adapters"], state["meta"])
            row["heldout_dice"] = mean_dice(seg, heldout, args.prompt)
        else:
            row["heldout_dice"] = base_heldout
        rounds.append(row)
        print(f"{order:>14} {'learn' if learn else 'fixed'} round {r + 1}: proposal Dice {row['proposal_dice']:.3f}, "
              f"held-out {row['heldout_dice']:.3f}", file=sys.stderr)
    return {"order": order, "learn": learn, "base_heldout": base_heldout, "rounds": rounds}


def corrections_to_reach(run: dict, target: float):
    return next((r["corrections"] for r in run["rounds"] if r["heldout_dice"] >= target), None)


def signals(loaded, paths, masks, prompt, args) -> dict:
    """Each uncertainty signal against the real error of the plain model's proposal (Spearman)."""
    from scipy.stats import spearmanr

    from napari_vlsm.core.engine import Segmenter
    from napari_vlsm.core.image_files import read_image
    from napari_vlsm.core.metrics import dice
    from napari_vlsm.core.worklist import scoring

    seg = Segmenter(loaded=loaded)
    flat, parts = scoring._request([prompt])
    rows = []
    for path in paths:
        image, truth = read_image(path), masks[path.resolve()]
        probs = scoring._by_structure(seg.predict(image, flat), parts)[0]
        disagreement, near = scoring.map_parts(probs)
        mask = probs[0] > 0.5
        flipped = seg.predict(np.ascontiguousarray(image[:, ::-1]), [prompt])[0].mask[:, ::-1]
        rows.append({"error": 1 - dice(mask, truth), "disagreement": disagreement, "near": near,
                     "combined": scoring.combine(disagreement, near), "flip": 1 - dice(mask, flipped)})
    errors = [r["error"] for r in rows]
    out = {}
    for key in ("disagreement", "near", "combined", "flip"):
        values = [r[key] for r in rows]
        rho = spearmanr(values, errors).statistic if len(set(values)) > 1 else float("nan")
        out[key] = round(float(rho), 3)
    # deliberately corrupted frames: where do they rank among the clean ones?
    rng = np.random.default_rng(args.seed)
    clean = [scoring.image_score(scoring._by_structure(seg.predict(read_image(p), flat), parts)) for p in paths]
    corrupted = []
    for p in paths[:4]:
        image = read_image(p).astype(np.float32)
        noisy = np.clip(image * 0.3 + rng.normal(128, 70, image.shape), 0, 255).astype(np.uint8)
        corrupted.append(scoring.image_score(scoring._by_structure(seg.predict(noisy, flat), parts)))
    all_scores = sorted(clean + corrupted, reverse=True)
    out["corrupted_ranks"] = [all_scores.index(s) + 1 for s in corrupted]
    out["corrupted_out_of"] = len(all_scores)
    out["mean_score_clean"], out["mean_score_corrupted"] = statistics.mean(clean), statistics.mean(corrupted)
    return out


def ranking_cost(loaded, data, prompt, n: int, root: Path) -> dict:
    """Scoring N unseen full-size frames (``score_item``, what ``rank`` runs per item) against reading
    and predicting them once with one prompt, alternated item by item so load drifts hit both."""
    from napari_vlsm.core.engine import Segmenter
    from napari_vlsm.core.image_files import read_image
    from napari_vlsm.core.worklist import Worklist, scoring

    files = sorted((Path(data) / "images").glob("*.jpg"))[-n:]  # full size
    items = Worklist(root / "cost").add(files).added
    plain, ranker = Segmenter(loaded=loaded), Segmenter(loaded=loaded)
    warm = read_image(files[0])[:64, :64]
    plain.predict(warm, [prompt])  # first-call set-up and the text embeddings are not per item
    ranker.predict(warm, list(scoring._request([prompt])[0]))
    t_plain, t_rank, t_flip = [], [], []
    for k, item in enumerate(items):
        for side in (("plain", "rank") if k % 2 else ("rank", "plain")):
            t0 = time.perf_counter()
            if side == "plain":
                _ = plain.predict(read_image(item.path), [prompt])[0].mask  # a user gets the mask
                t_plain.append(time.perf_counter() - t0)
            else:
                scoring.score_item(ranker, item, [prompt])
                t_rank.append(time.perf_counter() - t0)
    for item in items[: max(2, n // 3)]:  # the flip signal's extra image pass, for the record
        image = np.ascontiguousarray(read_image(item.path)[:, ::-1])
        t0 = time.perf_counter()
        _ = plain.predict(image, [prompt])[0].mask
        t_flip.append(time.perf_counter() - t0)
    return {"n": n, "phrasings": len(scoring.phrasings(prompt)), "plain_s": round(sum(t_plain), 2),
            "rank_s": round(sum(t_rank), 2), "ratio": round(sum(t_rank) / sum(t_plain), 2),
            "flip_extra_ratio": round(statistics.mean(t_flip) / statistics.mean(t_plain[: len(t_flip)]), 2)}


def plot_saved(results: Path, path: Path = PLOT) -> Path:
    """Redraw the PNG from a saved results file (benchmarks/results/series-*.json)."""
    import json

    return plot(json.loads(Path(results).read_text())["runs"], path)


def plot(runs: list[dict], path: Path) -> Path:
    def name(run):
        return f"{run['order']}" + ("" if run["learn"] else " (no learning)")

    proposal = {name(r): [(x["round"], x["proposal_dice"]) for x in r["rounds"]] for r in runs}
    held = {name(r): [(x["corrections"], x["heldout_dice"]) for x in r["rounds"]] for r in runs if r["learn"]}
    held["no learning"] = [(x["corrections"], x["heldout_dice"]) for x in runs[0]["rounds"]] if not runs[0]["learn"] \
        else [(x["corrections"], runs[0]["base_heldout"]) for x in runs[0]["rounds"]]
    return line_chart(path, [
        {"title": "Proposals of each round", "xlabel": "round (8 frames each)", "ylabel": "Dice", "lines": proposal},
        {"title": "Frames outside the series", "xlabel": "corrections so far", "ylabel": "Dice", "lines": held},
    ], dashed=lambda n: "no learning" in n, group=lambda n: n.replace(" (no learning)", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="CLIPSeg folder or hub id (default: a tiny random CLIPSeg that can draw)")
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--prompt", default="polyp")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--per-round", type=int, default=8)
    parser.add_argument("--heldout", type=int, default=16)
    parser.add_argument("--side", type=int, default=352, help="frames are resized to this long side (model input size)")
    parser.add_argument("--variant", default="shallow-vlc")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--budget", type=float, default=20.0, help="seconds per finetune")
    parser.add_argument("--target", type=float, default=None, help="held-out Dice to reach (default: start + 0.02)")
    parser.add_argument("--cost-items", type=int, default=12)
    parser.add_argument("--cost-model", default=None, help="model for the cost ratio (default: the same model)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default=str(PLOT))
    args = parser.parse_args()
    common.setup_torch()
    t0 = time.perf_counter()
    loaded = simulated_clinician.load(args)
    root = Path(tempfile.mkdtemp(prefix="bench-series-"))
    paths, masks, heldout = prepare(args, root)
    runs = [run_order(loaded, order, learn, paths, masks, heldout, args, root)
            for learn in (False, True) for order in ORDERS]
    target = args.target if args.target is not None else runs[0]["base_heldout"] + 0.02
    rows = []
    for run in runs:
        reach = corrections_to_reach(run, target) if run["learn"] else None
        rows.append((run["order"], "yes" if run["learn"] else "no",
                     " ".join(f"{r['proposal_dice']:.3f}" for r in run["rounds"]),
                     " ".join(f"{r['heldout_dice']:.3f}" for r in run["rounds"]),
                     "-" if not run["learn"] else (str(reach) if reach else "not reached")))
    print(common.table(rows, ("order", "learning", "proposal Dice per round", "held-out Dice per round",
                              f"corrections to {target:.3f}")))
    sig = signals(loaded, paths, masks, args.prompt, args)
    print(f"Spearman with 1-Dice: {sig}")
    cost_loaded = loaded if not args.cost_model else simulated_clinician.load(
        argparse.Namespace(model=common.model_folder(None, args.cost_model) if args.cost_model in ("tiny", "full")
                           else args.cost_model, device=args.device, precision=args.precision))
    cost = ranking_cost(cost_loaded, args.data, args.prompt, args.cost_items, root)
    print(f"ranking cost: {cost}")
    png = plot(runs, Path(args.plot))
    path = common.save("series", {"machine": common.machine(), "args": vars(args), "runs": runs, "target": target,
                                  "signals": sig, "cost": cost, "seconds": round(time.perf_counter() - t0, 1)})
    print(f"saved {path} and {png} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
