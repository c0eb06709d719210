"""A simulated clinician: does finetuning on corrections make the next proposals better?

    python benchmarks/simulated_clinician.py [--model DIR] [--images 32] [--every 4] [--steps 100]

A sequence of real images (Kvasir-SEG, prompt "polyp") is shown one by one. For each image the
model proposes a mask; the ground truth plays the clinician's corrected mask and joins the
corrections. Every ``--every`` images an adapter is finetuned on all corrections so far (held-out
split by name hash, as the CLI does), continuing from the previous adapter, and used for the
following proposals. The Dice of each proposal is recorded with finetuning and without it (the base
model throughout), both through the shared ``Segmenter`` the widget uses.

``--model`` runs it unchanged on the real pretrained CLIPSeg. Without it a tiny random CLIPSeg is
written (so this runs in minutes on a CPU) and its last decoder layer is made able to draw a mask
(non-negative weights, negative bias; a random 8-channel transposed convolution cannot output a
uniform region): its numbers show the loop works end to end, not what the real model reaches.
Measured with it (docs/benchmarks.md): finetuning LOWERS the Dice of the next proposals, because
random encoder features do not generalise from one polyp to the next; only the real model can
answer the question this script asks.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "kvasir"
TINY_LR = 3e-3  # the tiny random model learns too slowly at the paper's rates to show anything in minutes


class Correction:
    def __init__(self, image, mask, prompt, name):
        self.image, self.mask, self.prompts, self.name = image, mask, (prompt,), name


def load(args):
    from napari_vlsm.core.loading import load_model

    if args.model:
        return load_model(args.model, device=args.device, precision=args.precision)
    import torch

    from napari_vlsm.core.random_model import write_random_clipseg

    folder = write_random_clipseg(Path(tempfile.mkdtemp(prefix="clinician-tiny-")), arch="tiny", seed=0)
    loaded = load_model(folder, device=args.device, precision=args.precision)
    last = loaded.model.decoder.transposed_convolution[-1]
    with torch.no_grad():  # see the module docstring
        last.weight.abs_().mul_(0.05)
        last.bias.fill_(-2.0)
    return loaded


def run(args) -> dict:
    import numpy as np

    from napari_vlsm.core.datasets import read_folder, split_train_val
    from napari_vlsm.core.engine import Segmenter
    from napari_vlsm.core.metrics import dice
    from napari_vlsm.core.training import TrainConfig, finetune, run_to_end

    common.setup_torch()
    loaded = load(args)
    files = read_folder(args.data, prompts=[args.prompt])
    order = np.random.default_rng(args.seed).permutation(len(files))[: args.images]  # a shuffled sequence
    files = [files[i] for i in order]
    learner, base = Segmenter(loaded=loaded), Segmenter(loaded=loaded)
    lr = args.lr if args.lr is not None else (None if args.model else TINY_LR)
    config = TrainConfig(variant=args.variant, max_steps=args.steps, batch_size=args.batch_size, lr=lr, seed=args.seed)
    corrections, rows, rounds, adapters, meta = [], [], [], None, None
    for i, f in enumerate(files):
        image, truth = f.image, f.mask
        with_ft = learner.predict(image, [args.prompt])[0].mask
        without = base.predict(image, [args.prompt])[0].mask
        rows.append({"index": i, "name": f.name, "adapter_round": len(rounds),
                     "dice_with": dice(with_ft, truth), "dice_without": dice(without, truth)})
        corrections.append(Correction(image, truth, args.prompt, f.name))  # the clinician's correction
        if (i + 1) % args.every == 0 and i + 1 < len(files):
            train, val = split_train_val(corrections, 0.2, seed=0)
            t0 = time.perf_counter()
            result = run_to_end(finetune(loaded, train, val, config, init_adapters=adapters, base_metadata=meta))
            adapters, meta = result.adapters, result.metadata
            learner.set_adapters(adapters, meta)
            rounds.append({"after_image": i, "n_train": len(train), "n_val": len(val), "steps": result.steps,
                           "seconds": round(time.perf_counter() - t0, 2), "before": result.before,
                           "after": result.after})
            print(f"round {len(rounds)}: {len(train)}+{len(val)} corrections, {result.message}", file=sys.stderr)
    return {"rows": rows, "rounds": rounds}


def summarise(rows: list[dict], every: int) -> list[tuple]:
    out = []
    for start in range(0, len(rows), every * 2):
        part = rows[start : start + every * 2]
        out.append((f"{start + 1}-{start + len(part)}", f"{statistics.mean(r['dice_without'] for r in part):.3f}",
                    f"{statistics.mean(r['dice_with'] for r in part):.3f}"))
    later = [r for r in rows if r["adapter_round"] > 0]
    if later:
        out.append(("all with an adapter", f"{statistics.mean(r['dice_without'] for r in later):.3f}",
                    f"{statistics.mean(r['dice_with'] for r in later):.3f}"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="CLIPSeg folder or hub id (default: a tiny random CLIPSeg)")
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--prompt", default="polyp")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--every", type=int, default=4, help="finetune after every k corrections")
    parser.add_argument("--variant", default="shallow-vlc")
    parser.add_argument("--steps", type=int, default=100, help="optimiser steps per finetune round")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=None,
                        help=f"default: the paper's (3e-4 shallow, 1e-3 dense) with --model, {TINY_LR} for the tiny model")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    t0 = time.perf_counter()
    result = run(args)
    table = summarise(result["rows"], args.every)
    print(common.table(table, ("images", "Dice without finetuning", "Dice with finetuning")))
    path = common.save("clinician", {"machine": common.machine(), "args": vars(args), **result,
                                     "summary": table, "seconds": round(time.perf_counter() - t0, 1)})
    print(f"saved {path} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
