"""Training: the shallow fast path vs the reference way (image encoder every step), plus a dense step.

    python benchmarks/bench_training.py [--model DIR] [--images 16] [--batch-size 4] [--precision auto]

Full CLIPSeg architecture (random weights unless ``--model``), ``--images`` real Kvasir-SEG
photographs from ../shared/data (prompt "polyp"), ONE epoch of shallow-vlc training with the
product's ``finetune`` on each side:

* fast: the image encoder runs once per sample before training (the one-off precompute), each
  step runs shallow adapters + text encoder + decoder only;
* plain: the same training done the plain transformers way (plain_training.py, as the paper's code
  does it): CLIPSeg's stock vision model (12 blocks) and text model under autocast at every step,
  the adapters on their hidden states, the stock decoder; same adapters, loss, AdamW, clipping,
  batches. The brief's reference for every speed target;
* reference: the product's own trainer with the feature cache switched off
  (``TrainConfig(cache_features=False)``): ``VLSMModel.forward`` every step, i.e. the frozen
  encoders re-run on every batch but with everything else napari-vlsm does (the shared bf16
  weight copy, blocks 10-11 skipped, fused decoder MLP). The stricter comparison: it isolates
  what the cache alone buys;
* dense: dense-vl steps (backpropagation through encoder blocks 0-9), ``--dense-steps`` of them.

Per side: the training images' precompute (fast: preprocessing + encoder; others:
preprocessing only), the epoch's step time (first step to last, evaluations excluded), the
resident memory before training and its peak during training (sampled), each side in its own subprocess (``--repeats`` times, sides alternating, the
median kept: the machine is shared). ``--threads 1`` avoids the stalls that 2 OpenMP threads suffer
on a loaded 2-core machine (every small op then waits a scheduler slice for the other thread, which
hits the fast path's many small ops far harder than the encoder's large matrix products).
Results: a table on stdout, JSON in benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "kvasir"
SIDES = {"fast": ("shallow-vlc", True), "reference": ("shallow-vlc", False), "plain": ("shallow-vlc", False),
         "dense": ("dense-vl", True)}
N_VAL = 2  # validation images (the evaluations are not part of the timed epoch)


class Sample:
    def __init__(self, image, mask, name):
        self.image, self.mask, self.prompts, self.name = image, mask, ("polyp",), name


def synthetic_samples(n: int, size: int = 512) -> list[Sample]:
    """Bright disks on smooth noise, RGB uint8: for machines without ../shared/data (a GPU box)."""
    import numpy as np

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    out = []
    for i in range(n):
        cy, cx, r = rng.integers(size // 4, 3 * size // 4, 2).tolist() + [int(rng.integers(size // 10, size // 5))]
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        image = rng.normal(90, 20, (size, size, 3)) + 120 * mask[..., None]
        out.append(Sample(np.clip(image, 0, 255).astype(np.uint8), mask, f"synthetic-{i}"))
    return out


def load_samples(data: Path, n: int) -> list[Sample]:
    from napari_vlsm.core.datasets import read_folder

    if str(data) == "synthetic":
        return synthetic_samples(n)
    files = read_folder(data, prompts=["polyp"])[:n]
    if len(files) < n:
        raise SystemExit(f"{data} holds {len(files)} image/mask pairs; {n} needed")
    return [Sample(f.image, f.mask, f.name) for f in files]  # decoded once, outside the timing


def side(args) -> dict:
    """One side in this process: train, time the events, report JSON."""
    common.setup_torch(args.threads)
    import torch

    from napari_vlsm.core.loading import load_model
    from napari_vlsm.core.training import TrainConfig, finetune, run_to_end

    clock = time.process_time if args.clock == "cpu" else time.perf_counter

    variant, cache = SIDES[args.side]
    loaded = load_model(common.model_folder(args.model), device=args.device, precision=args.precision)
    samples = load_samples(Path(args.data), args.images + N_VAL)
    train, val = samples[: args.images], samples[args.images:]
    limits = {"epochs": 1, "max_steps": None} if args.side != "dense" else {"max_steps": args.dense_steps}
    config = TrainConfig(variant=variant, batch_size=args.batch_size, cache_features=cache, eval_every=10**6,
                         **limits)
    marks: dict[str, float] = {}
    steps: list[float] = []

    def on_event(event):
        now = clock()
        if event.kind == "start":
            marks["start"] = now
        elif event.kind == "prepare" and event.message.startswith("preparing training"):
            marks["train_prepared"] = now
        elif event.kind == "eval" and event.step == 0:
            marks["evaluated_start"] = now
        elif event.kind == "step":
            steps.append(now)

    if args.side == "plain":
        return plain_side(args, loaded, train, config, clock)
    with common.RssSampler() as memory:  # training only: loading a model has its own, higher peak
        result = run_to_end(finetune(loaded, train, val, config), on_event)
    step_times = [b - a for a, b in zip([marks["evaluated_start"], *steps[:-1]], steps)]
    return {
        "side": args.side, "variant": variant, "threads": torch.get_num_threads(), "fast_path": result.metadata["training"]["fast_path"],
        "precision": loaded.precision, "images": len(train), "batch_size": args.batch_size,
        "steps": result.steps, "precompute_s": marks["train_prepared"] - marks["start"],
        "epoch_s": sum(step_times), "step_s": step_times, "rss_before_mib": memory.start_mib,
        "peak_rss_mib": memory.peak_mib, "process_peak_rss_mib": common.peak_rss_mib(), "clock": args.clock,
        "losses": [h["loss"] for h in result.history],
    }


def plain_side(args, loaded, train, config, clock) -> dict:
    """One epoch the plain transformers way (plain_training.py), timed like the trainer's steps."""
    import torch

    from napari_vlsm.core import model_input
    from napari_vlsm.core.forward import VLSMModel
    from napari_vlsm.core.training import run_to_end
    from napari_vlsm.core.training.heap import kept_heap
    from napari_vlsm.core.training.loop import amp_factory, seeded_adapters
    from napari_vlsm.core.training.memory import MemoryLimit
    from napari_vlsm.core.training.prepare import PromptTable, prepare

    from plain_training import PlainShallowTraining, epoch_batches

    adapters = seeded_adapters(config.variant, loaded, config.seed).requires_grad_(True)
    amp, table = amp_factory(loaded), PromptTable()
    start = clock()
    # preprocessing only (encode=False), as on the reference side
    data = run_to_end(prepare(train, "training", loaded, VLSMModel(loaded.model, adapters, loaded.runtimes), table, False,
                              config.batch_size, amp, MemoryLimit(config.batch_size, loaded.device, "preparing")))
    precompute = clock() - start
    input_ids, attention_mask = model_input.tokenize(loaded, table.phrasings)  # the trainer's tokenising rule
    trainer = PlainShallowTraining(loaded.model, adapters, input_ids, attention_mask, amp,
                                   config.resolved_lr(), config.weight_decay, config.grad_clip)
    step_times, losses = [], []
    # The trainer's glibc heap setting on this side too (heap.py): it only makes this side faster.
    with common.RssSampler() as memory, kept_heap():
        for idx in epoch_batches(len(train), config.batch_size, config.seed):
            t = clock()
            losses.append(trainer.step(data.pixels[idx], data.targets[idx], [data.prompt_ids[i][0] for i in idx]))
            step_times.append(clock() - t)
    return {
        "side": "plain", "variant": config.variant, "threads": torch.get_num_threads(), "fast_path": False,
        "precision": loaded.precision, "images": len(train), "batch_size": config.batch_size,
        "steps": len(step_times), "precompute_s": precompute, "epoch_s": sum(step_times), "step_s": step_times,
        "rss_before_mib": memory.start_mib, "peak_rss_mib": memory.peak_mib,
        "process_peak_rss_mib": common.peak_rss_mib(), "clock": args.clock, "losses": losses,
    }


def summarise(runs: dict[str, list[dict]]) -> dict:
    keys = ("precompute_s", "epoch_s", "rss_before_mib", "peak_rss_mib")
    med = {s: {k: statistics.median(r[k] for r in rs) for k in keys}
           for s, rs in runs.items()}
    for s, rs in runs.items():
        med[s]["step_s_median"] = statistics.median(t for r in rs for t in r["step_s"])
    fast = med["fast"]

    def ratios(other):
        return {"epoch_ratio": other["epoch_s"] / fast["epoch_s"],
                "first_epoch_ratio": (other["epoch_s"] + other["precompute_s"]) / (fast["epoch_s"] + fast["precompute_s"])}

    return {"per_side": med, **{f"vs_{o}": ratios(med[o]) for o in ("plain", "reference") if o in med}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="CLIPSeg folder (default: random-weight full architecture)")
    parser.add_argument("--data", default=str(DATA),
                        help="dataset folder with images/ and masks/, or 'synthetic' (disks, no files needed)")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--sides", default=",".join(SIDES), help=f"comma-separated subset of {', '.join(SIDES)}")
    parser.add_argument("--dense-steps", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads per side (default: torch's)")
    parser.add_argument("--clock", default="wall", choices=("wall", "cpu"),
                        help="cpu: process CPU time (with --threads 1: robust against other processes)")
    parser.add_argument("--side", choices=tuple(SIDES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(side(args)))
        return
    common.warn_if_busy()
    forwarded = ["--data", args.data, "--images", str(args.images), "--batch-size", str(args.batch_size),
                 "--precision", args.precision, "--dense-steps", str(args.dense_steps), "--threads", str(args.threads),
                 "--clock", args.clock, "--device", args.device,
                 "--model", str(common.model_folder(args.model))]
    load = os.getloadavg()
    chosen = [s for s in args.sides.split(",") if s in SIDES]
    if "fast" not in chosen:
        raise SystemExit("--sides must include fast (the ratios are against it)")
    runs: dict[str, list[dict]] = {s: [] for s in chosen}
    for r in range(args.repeats):
        for name in (chosen if r % 2 == 0 else reversed(chosen)):
            print(f"repeat {r + 1}/{args.repeats}: {name} ...", file=sys.stderr)
            runs[name].append(common.run_side(__file__, name, forwarded))
    summary = summarise(runs)
    rows = []
    for name, m in summary["per_side"].items():
        steps = runs[name][0]["steps"]
        rows.append((name, SIDES[name][0], f"{m['precompute_s']:.2f}", steps, f"{m['step_s_median']:.3f}",
                     f"{m['epoch_s']:.2f}", f"{m['epoch_s'] + m['precompute_s']:.2f}",
                     f"{m['rss_before_mib']:.0f}", f"{m['peak_rss_mib']:.0f}"))
    print(common.table(rows, ("side", "variant", "precompute s", "steps", "step s (median)", "steps total s",
                              "incl. precompute s", "RSS before MiB", "peak RSS training MiB")))
    for other in ("plain", "reference"):
        if f"vs_{other}" not in summary:
            continue
        r = summary[f"vs_{other}"]
        print(f"epoch ratio {other}/fast: {r['epoch_ratio']:.1f}x (steps only), "
              f"{r['first_epoch_ratio']:.1f}x for a first epoch incl. precompute")
    path = common.save("training", {"machine": common.machine(), "load_before": load, "load_after": os.getloadavg(),
                                    "args": vars(args), "runs": runs, "summary": summary})
    print(f"saved {path}")


if __name__ == "__main__":
    main()
