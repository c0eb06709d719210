"""Stacks: a plain per-slice transformers loop vs ``Segmenter.predict_stack``, slices per second.

    python benchmarks/bench_stack.py [--model DIR] [--slices 64] [--batch-size 8]

A 64-slice 512 x 512 uint8 stack (a shifted Shepp-Logan phantom with noise), one prompt. Plain: for
each slice, grey -> RGB, CLIPSegProcessor + CLIPSegForImageSegmentation (fp32), ``F.interpolate`` to
the slice size, sigmoid, threshold. Engine: ``predict_stack`` (batched, automatic precision, one
volume window). Each side runs in its own process (its own peak resident memory, ``ru_maxrss``);
the two processes run one after the other, so compare them on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

PROMPT = "bright ellipse"
TARGET = 2.0
CLOCK = time.perf_counter  # --clock cpu: time.process_time (robust to other processes on the cores)


def make_stack(slices: int, size: int = 512):
    import numpy as np
    from scipy.ndimage import shift
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    base = resize(shepp_logan_phantom(), (size, size), anti_aliasing=True)
    rng = np.random.default_rng(0)
    out = np.empty((slices, size, size), np.uint8)
    for z in range(slices):
        moved = shift(base, (z - slices / 2, 0.5 * z), order=1)
        noisy = moved + rng.normal(0, 0.03, moved.shape)
        out[z] = (np.clip(noisy, 0, 1) * 255).astype(np.uint8)
    return out


def plain_side(folder: Path, slices: int, device: str = "cpu") -> dict:
    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image
    from transformers import CLIPSegForImageSegmentation, CLIPSegProcessor

    processor = CLIPSegProcessor.from_pretrained(folder)
    model = CLIPSegForImageSegmentation.from_pretrained(folder).eval().to(device)
    stack = make_stack(slices)

    def segment(plane):
        image = Image.fromarray(np.repeat(plane[..., None], 3, axis=-1))
        inputs = processor(text=[PROMPT], images=[image], padding="max_length", max_length=77, return_tensors="pt").to(device)
        with torch.no_grad():
            logits = model(**inputs).logits.reshape(1, 1, *inputs.pixel_values.shape[-2:])
        prob = torch.sigmoid(F.interpolate(logits, size=plane.shape, mode="bilinear"))[0, 0]
        return (prob > 0.5).cpu().numpy()

    segment(stack[0])  # warm-up
    with common.RssSampler() as rss:
        start = CLOCK()
        masks = np.stack([segment(plane) for plane in stack])
        elapsed = CLOCK() - start
    return {"seconds": elapsed, "slices_per_s": slices / elapsed, "foreground": float(masks.mean()),
            "peak_rss_mib": common.peak_rss_mib(), "after_load_mib": rss.start_mib, "inference_peak_mib": rss.peak_mib}


def engine_side(folder: Path, slices: int, batch_size: int, precision: str, backend: str = "auto",
                device: str = "cpu") -> dict:
    import numpy as np

    from napari_vlsm.core.engine import Segmenter
    from napari_vlsm.core.loading import load_model

    seg = Segmenter(loaded=load_model(folder, device=device, precision=precision, backend=backend))
    stack = make_stack(slices)
    seg.predict(stack[0], PROMPT)  # warm-up
    seg.clear_cache()
    with common.RssSampler() as rss:
        start = CLOCK()
        masks = np.zeros(stack.shape, bool)
        for index, preds in seg.predict_stack(stack, PROMPT, batch_size=batch_size):
            masks[index] = preds[0].mask
        elapsed = CLOCK() - start
    return {"seconds": elapsed, "slices_per_s": slices / elapsed, "foreground": float(masks.mean()),
            "precision": seg.loaded.precision, "backend": seg.loaded.backend, "peak_rss_mib": common.peak_rss_mib(),
            "after_load_mib": rss.start_mib, "inference_peak_mib": rss.peak_mib,
            "feature_cache_mib": seg.cache_stats()["image"]["bytes"] / 2**20}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="CLIPSeg folder (default: random-weight full architecture)")
    parser.add_argument("--slices", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--backend", default="auto", help="engine image-encoder backend (default auto)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda: both sides run there")
    parser.add_argument("--threads", type=int, help="torch threads for both sides (default: torch's)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: process CPU time (all threads), meaningful on a busy machine")
    parser.add_argument("--side", choices=("plain", "engine"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    common.setup_torch(args.threads)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    folder = common.model_folder(args.model)
    if args.side == "plain":
        print(json.dumps(plain_side(folder, args.slices, args.device)))
        return 0
    if args.side == "engine":
        print(json.dumps(engine_side(folder, args.slices, args.batch_size, args.precision, args.backend, args.device)))
        return 0
    common.warn_if_busy()
    side_args = ["--model", str(folder), "--slices", str(args.slices), "--batch-size", str(args.batch_size),
                 "--precision", args.precision, "--backend", args.backend, "--clock", args.clock, "--device", args.device] + (["--threads", str(args.threads)] if args.threads else [])
    plain = common.run_side(__file__, "plain", side_args)
    engine = common.run_side(__file__, "engine", side_args)
    ratio = engine["slices_per_s"] / plain["slices_per_s"]
    rows = [
        ("slices per second", f"{plain['slices_per_s']:.2f}", f"{engine['slices_per_s']:.2f}",
         f"{ratio:.1f}x", f">= {TARGET}x {'ok' if ratio >= TARGET else 'MISSED'}"),
        ("total", f"{plain['seconds']:.1f} s", f"{engine['seconds']:.1f} s", "", ""),
    ]
    for label, key in (("peak RSS incl. loading", "peak_rss_mib"), ("RSS after loading", "after_load_mib"),
                       ("peak RSS while predicting", "inference_peak_mib")):
        rows.append((label, f"{plain[key]:.0f} MiB", f"{engine[key]:.0f} MiB", "", ""))
    kind = engine["precision"] + ("" if engine["backend"] == "torch" else f", image encoder {engine['backend']}")
    clock = "CPU time" if args.clock == "cpu" else "wall time"
    print(common.table(rows, (f"{args.slices} x 512 x 512, one prompt ({clock})", "plain (fp32)",
                              f"engine ({kind}, batch {args.batch_size})", "speed-up", "target")))
    result = {"benchmark": "stack", "machine": common.machine(), "clock": args.clock, "device": args.device, "slices": args.slices, "size": 512,
              "batch_size": args.batch_size, "model": str(folder), "plain": plain, "engine": engine,
              "speedup": ratio, "target": TARGET}
    common.warn_if_busy()
    print(f"saved {common.save('stack', result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
