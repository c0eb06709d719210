"""Inference: the plain transformers CLIPSeg pipeline vs napari-vlsm's Segmenter, side by side.

    python benchmarks/bench_inference.py [--model DIR] [--repeats 7] [--precision P] [--backend B]
    NAPARI_VLSM_NATIVE_BF16=0 python benchmarks/bench_inference.py   # what a CPU without bf16 runs

Plain = what a user writes from the Hugging Face docs: CLIPSegProcessor + CLIPSegForImageSegmentation
(fp32, what ``from_pretrained`` gives), ``F.interpolate`` to the image size, sigmoid, threshold; for
several prompts one batch of image+text pairs, as in the docs. Engine = ``Segmenter`` with
automatic precision and backend (ONNX Runtime int8 image encoder on a CPU without native bf16,
``core/runtime``). Cases on new 512x512 RGB images: (a) first prompt on a new image (caches
cleared), (b) a second, never seen prompt on the same image, (c) four prompts on a new image (caches
cleared). After a warm-up, the two sides are timed in ALTERNATION in one process (the machine is
shared: load from other processes then hits both sides alike); median (and min) of ``--repeats``.
Peak resident memory is measured per side in its own process (tracemalloc does not see torch).
Results: a table on stdout, JSON in benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

PROMPTS = ["liver", "left kidney", "spleen", "a small round lesion"]
TARGETS = {"a": 2.0, "b": 15.0, "c": 5.0}
CASES = {"a": "first prompt, new image", "b": "second prompt, same image", "c": "four prompts, new image"}


def make_image(seed: int, size: int = 512):
    """A smooth random RGB photograph-like image (uint8)."""
    import numpy as np
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    smooth = gaussian_filter(rng.random((size, size, 3)).astype(np.float32), sigma=(8, 8, 0))
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return (smooth * 255).astype(np.uint8)


class Plain:
    """The Hugging Face docs recipe, plus upsampling to the image size and a threshold."""

    def __init__(self, folder: Path, device: str = "cpu"):
        from transformers import CLIPSegForImageSegmentation, CLIPSegProcessor

        self.processor = CLIPSegProcessor.from_pretrained(folder)
        self.model = CLIPSegForImageSegmentation.from_pretrained(folder).eval().to(device)
        self.device = device
        self.images = {}

    def segment(self, image, prompts):
        import torch
        import torch.nn.functional as F
        from PIL import Image

        pil = self.images.setdefault(id(image), Image.fromarray(image))  # the user holds a PIL image
        # padding="max_length" as in the docs; max_length=77 is what the hub tokenizer's
        # model_max_length gives (the random-weight folder's tokenizer does not record it)
        inputs = self.processor(text=prompts, images=[pil] * len(prompts), padding="max_length", max_length=77,
                                return_tensors="pt").to(self.device)
        with torch.no_grad():
            logits = self.model(**inputs).logits
        logits = logits.reshape(len(prompts), *logits.shape[-2:])  # one prompt gives (352, 352)
        prob = torch.sigmoid(F.interpolate(logits[:, None], size=image.shape[:2], mode="bilinear")[:, 0])
        return (prob > 0.5).cpu().numpy()

    def case(self, key, image):
        return {"a": lambda: self.segment(image, PROMPTS[:1]), "b": lambda: self.segment(image, PROMPTS[1:2]),
                "c": lambda: self.segment(image, PROMPTS)}[key], None


class Engine:
    def __init__(self, folder: Path, precision: str, backend: str = "auto", device: str = "cpu"):
        from napari_vlsm.core.engine import Segmenter
        from napari_vlsm.core.loading import load_model

        self.seg = Segmenter(loaded=load_model(folder, device=device, precision=precision, backend=backend))

    def masks(self, image, prompts):
        return [p.mask for p in self.seg.predict(image, prompts)]

    def case(self, key, image):
        """(timed function, untimed setup)."""
        if key == "b":
            def first_prompt():
                self.seg.clear_cache()
                self.masks(image, PROMPTS[:1])
            return (lambda: self.masks(image, PROMPTS[1:2])), first_prompt
        prompts = PROMPTS[:1] if key == "a" else PROMPTS
        return (lambda: self.masks(image, prompts)), self.seg.clear_cache


CLOCK = time.perf_counter  # --clock cpu: time.process_time (robust to other processes, 1 thread)


def timed(side, key, image) -> float:
    fn, setup = side.case(key, image)
    if setup is not None:
        setup()
    start = CLOCK()
    fn()
    return CLOCK() - start


def memory_side(folder: Path, side: str, precision: str, backend: str, device: str) -> dict:
    """Load one side, run each case once on a new image; report its own peak RSS."""
    runner = Plain(folder, device) if side == "plain" else Engine(folder, precision, backend, device)
    with common.RssSampler() as rss:
        for key in CASES:
            timed(runner, key, make_image(100))
    return {"peak_rss_mib": common.peak_rss_mib(), "after_load_mib": rss.start_mib,
            "inference_peak_mib": rss.peak_mib}


def main() -> int:
    import statistics

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="CLIPSeg folder (default: random-weight full architecture)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--precision", default="auto", help="engine precision (default auto)")
    parser.add_argument("--backend", default="auto", help="engine image-encoder backend: auto, torch, onnx-fp32, "
                                                          "onnx-int8 (default auto)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda: both sides run there")
    parser.add_argument("--threads", type=int, help="torch threads for both sides (default: torch's)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: process CPU time, meaningful with --threads 1 on a busy machine")
    parser.add_argument("--side", choices=("plain", "engine"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    common.setup_torch(args.threads)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    folder = common.model_folder(args.model)
    if args.side:
        print(json.dumps(memory_side(folder, args.side, args.precision, args.backend, args.device)))
        return 0
    common.warn_if_busy()
    start = time.perf_counter()
    plain = Plain(folder, args.device)
    plain_load = time.perf_counter() - start
    start = time.perf_counter()
    engine = Engine(folder, args.precision, args.backend, args.device)
    engine_load = time.perf_counter() - start
    images = [make_image(seed) for seed in range(args.repeats + 1)]
    for side in (plain, engine):  # warm-up
        for key in CASES:
            timed(side, key, images[-1])
    times = {"plain": {k: [] for k in CASES}, "engine": {k: [] for k in CASES}}
    for r in range(args.repeats):
        order = ((plain, "plain"), (engine, "engine")) if r % 2 == 0 else ((engine, "engine"), (plain, "plain"))
        for key in CASES:
            for side, name in order:
                times[name][key].append(timed(side, key, images[r]))
    mem_args = ["--model", str(folder), "--precision", args.precision, "--backend", args.backend, "--device", args.device] + (
        ["--threads", str(args.threads)] if args.threads else [])
    memory = {name: common.run_side(__file__, name, mem_args) for name in ("plain", "engine")}
    med = {n: {k: statistics.median(v) for k, v in t.items()} for n, t in times.items()}
    speedups = {k: med["plain"][k] / med["engine"][k] for k in CASES}
    rows = []
    for key, label in CASES.items():
        verdict = "ok" if speedups[key] >= TARGETS[key] else "MISSED"
        rows.append((f"({key}) {label}", f"{med['plain'][key] * 1000:.0f} ms (min {min(times['plain'][key]) * 1000:.0f})",
                     f"{med['engine'][key] * 1000:.1f} ms (min {min(times['engine'][key]) * 1000:.1f})",
                     f"{speedups[key]:.1f}x", f">= {TARGETS[key]}x {verdict}"))
    for label, key in (("peak RSS incl. loading", "peak_rss_mib"), ("RSS after loading", "after_load_mib"),
                       ("peak RSS while predicting", "inference_peak_mib")):
        rows.append((label, f"{memory['plain'][key]:.0f} MiB", f"{memory['engine'][key]:.0f} MiB", "", ""))
    rows.append(("model load", f"{plain_load:.1f} s", f"{engine_load:.1f} s", "", ""))
    precision = engine.seg.loaded.precision
    backend = engine.seg.loaded.backend
    if backend != "torch":
        precision = f"{precision}, image encoder {backend}"
    clock = "CPU time" if args.clock == "cpu" else "wall time"
    print(common.table(rows, (f"{clock}, median of {args.repeats}", "plain (fp32)", f"engine ({precision})",
                              "speed-up", "target")))
    result = {"benchmark": "inference", "machine": common.machine(), "image": "512x512 RGB uint8",
              "repeats": args.repeats, "clock": args.clock, "device": args.device, "model": str(folder), "engine_precision": engine.seg.loaded.precision,
              "engine_backend": backend, "times_s": times,
              "median_s": med, "speedup": speedups, "targets": TARGETS, "peak_rss_mib": memory,
              "load_s": {"plain": plain_load, "engine": engine_load}}
    common.warn_if_busy()
    print(f"saved {common.save('inference', result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
