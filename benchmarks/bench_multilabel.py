"""N structures at once vs N single runs: what sharing the image pass saves.

    python benchmarks/bench_multilabel.py [--model DIR] [--structures 3 8] [--repeats 3] [--precision auto]

Full-architecture CLIPSeg (random weights unless --model), a 512 x 512 grey image and an 8-slice
stack of them. Side by side in ONE process, interleaved repeat by repeat (so machine load hits both):
- ``single x N``: N separate single-prompt runs, each from a cold cache (what N runs of today's
  ``predict --prompt X`` or N dock runs on N images cost: one image pass per structure);
- ``multi``: one run with all N prompts (``Segmenter.predict(image, prompts)``, one image pass)
  plus composing the label map (``core.labelmap.compose``);
- ``single x N, warm``: N single-prompt runs that reuse the cached image features (the dock on
  one image without this feature: cheap too, but N layers and no overlap rule).
Times are CPU seconds of this process (``time.process_time``: all torch threads) and wall seconds;
medians over the repeats; the ratio is single / multi.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

PROMPTS = ("liver", "spleen", "left kidney", "right kidney", "pancreas", "stomach", "gallbladder", "aorta")


def make_image(size: int = 512):
    import numpy as np
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    base = resize(shepp_logan_phantom(), (size, size), anti_aliasing=True)
    noisy = base + np.random.default_rng(0).normal(0, 0.03, base.shape)
    return (np.clip(noisy, 0, 1) * 255).astype(np.uint8)


def timed(fn) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - cpu, time.perf_counter() - wall


def sides(seg, data, prompts, stack: bool):
    import numpy as np

    from napari_vlsm.core import labelmap as LM

    def run(ps):
        if stack:
            return [np.stack([p.probability for p in preds]) for _, preds in seg.predict_stack(data, ps)]
        return [np.stack([p.probability for p in seg.predict(data, ps)])]

    def single_cold():
        for p in prompts:
            seg.clear_cache()
            run([p])

    def multi():
        seg.clear_cache()
        for prob in run(list(prompts)):
            LM.compose(prob, 0.5)

    def single_warm():
        seg.clear_cache()
        run([prompts[0]])  # the first run pays the image pass...
        for p in prompts[1:]:
            run([p])  # ...the others hit the feature cache

    return {"single x N": single_cold, "multi": multi, "single x N, warm": single_warm}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model")
    p.add_argument("--structures", type=int, nargs="+", default=[3, 8])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--slices", type=int, default=8)
    p.add_argument("--precision", default="auto")
    p.add_argument("--threads", type=int)
    args = p.parse_args()
    common.setup_torch(args.threads)
    common.warn_if_busy()
    import numpy as np

    from napari_vlsm.core.engine import Segmenter

    seg = Segmenter(str(common.model_folder(args.model)), device="cpu", precision=args.precision)
    image = make_image()
    volume = np.stack([np.roll(image, 3 * z, axis=0) for z in range(args.slices)])
    seg.predict(image, ["warm-up"])
    rows = []
    for what, data, stack in (("2D 512x512", image, False), (f"stack {args.slices}x512x512", volume, True)):
        for n in args.structures:
            fns = sides(seg, data, PROMPTS[:n], stack)
            times = {k: [] for k in fns}
            for _ in range(args.repeats):
                for name, fn in fns.items():
                    times[name].append(timed(fn))
            med = {k: (statistics.median(c for c, _ in v), statistics.median(w for _, w in v)) for k, v in times.items()}
            row = {"input": what, "structures": n, **{f"{k} cpu_s": round(v[0], 3) for k, v in med.items()},
                   **{f"{k} wall_s": round(v[1], 3) for k, v in med.items()},
                   "ratio cpu (single x N / multi)": round(med["single x N"][0] / med["multi"][0], 2),
                   "ratio wall (single x N / multi)": round(med["single x N"][1] / med["multi"][1], 2)}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    result = {"machine": common.machine(), "precision": seg.loaded.precision, "repeats": args.repeats, "rows": rows}
    common.save("multilabel", result)
    print("| input | N | single x N (CPU s) | multi (CPU s) | ratio | single x N, warm (CPU s) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['input']} | {r['structures']} | {r['single x N cpu_s']} | {r['multi cpu_s']} | "
              f"{r['ratio cpu (single x N / multi)']}x | {r['single x N, warm cpu_s']} |")
    print(json.dumps(result["machine"]))


if __name__ == "__main__":
    main()
