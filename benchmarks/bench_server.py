"""Load benchmark of ``napari-vlsm serve``: K concurrent clients predicting on 127.0.0.1 for T seconds,
next to in-process ``Segmenter.predict`` on the same images, so the wire's overhead is a ratio.

    python benchmarks/bench_server.py --clients 4 --seconds 30 [--arch full|tiny] [--precision fp32]

Every request is a NEW image (no feature-cache hit), one prompt, returned as a mask. Reports
throughput, p50/p95 latency, errors (must be 0), and the server's CPU seconds per request next to
the in-process CPU seconds per predict (less sensitive to a shared machine than wall time).
K <= 16 and T <= 120 keep it bounded.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def percentile(values, q):
    return float(np.percentile(values, q)) if values else float("nan")


def images(seed, size, count):
    """``count`` new random images, made one at a time (lazily)."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        yield (rng.random((size, size)) * 255).astype(np.uint8)


def in_process(model, precision, threads, size, seconds):
    import torch

    from napari_vlsm.core.engine import Segmenter

    torch.set_flush_denormal(True)
    torch.set_num_threads(threads)
    seg = Segmenter(model, device="cpu", precision=precision)
    seg.predict(next(images(99, size, 1)), ["liver"])  # warm-up
    latencies, cpu0, deadline = [], time.process_time(), time.monotonic() + seconds
    for img in images(1, size, 100000):
        if time.monotonic() > deadline:
            break
        t = time.perf_counter()
        seg.predict(img, ["liver"])
        latencies.append(time.perf_counter() - t)
    cpu = time.process_time() - cpu0
    return {"requests": len(latencies), "throughput_per_s": len(latencies) / sum(latencies),
            "p50_s": percentile(latencies, 50), "p95_s": percentile(latencies, 95),
            "cpu_s_per_request": cpu / max(1, len(latencies))}


def over_the_wire(model, precision, threads, size, seconds, clients):
    import psutil

    from napari_vlsm.client import VLSMClient
    from napari_vlsm.server.process import ServerProcess

    work = Path(tempfile.mkdtemp(prefix="bench-server-"))
    with ServerProcess(model, work, "--max-waiting", str(4 * clients), precision=precision,
                       env={"OMP_NUM_THREADS": str(threads)}, timeout=300) as server:
        VLSMClient(server.url, server.token).predict(next(images(99, size, 1)), ["liver"])  # warm-up
        proc = psutil.Process(server.proc.pid)
        cpu0 = sum(proc.cpu_times()[:2])
        latencies, errors, lock = [], [], threading.Lock()
        deadline = time.monotonic() + seconds

        def worker(k):
            with VLSMClient(server.url, server.token, timeout=120) as client:
                for img in images(1000 + k, size, 100000):
                    if time.monotonic() > deadline:
                        return
                    t = time.perf_counter()
                    try:
                        client.predict(img, ["liver"])
                    except Exception as err:  # noqa: BLE001 (counted: the benchmark reports errors)
                        with lock:
                            errors.append(str(err))
                        continue
                    with lock:
                        latencies.append(time.perf_counter() - t)

        start = time.perf_counter()
        threads_ = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
        for t in threads_:
            t.start()
        for t in threads_:
            t.join(seconds + 300)
        wall = time.perf_counter() - start
        cpu = sum(proc.cpu_times()[:2]) - cpu0
    return {"clients": clients, "requests": len(latencies), "errors": len(errors), "first_errors": errors[:3],
            "throughput_per_s": len(latencies) / wall, "p50_s": percentile(latencies, 50),
            "p95_s": percentile(latencies, 95), "server_cpu_s_per_request": cpu / max(1, len(latencies))}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="model folder (default: a random-weight CLIPSeg of --arch)")
    p.add_argument("--arch", default="full", choices=("full", "tiny"))
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "auto"))
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--threads", type=int, default=1, help="torch threads in the server and in-process (default 1)")
    p.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    args = p.parse_args()
    if not 1 <= args.clients <= 16 or not 1 <= args.seconds <= 120:
        p.error("--clients must be 1..16 and --seconds 1..120 (bounded on purpose)")
    from common import model_folder

    model = model_folder(args.model, args.arch)
    local = in_process(model, args.precision, args.threads, args.size, args.seconds)
    remote = over_the_wire(model, args.precision, args.threads, args.size, args.seconds, args.clients)
    result = {"machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version()},
              "settings": vars(args) | {"model": str(model)}, "in_process": local, "server": remote,
              "ratio_throughput_server_vs_in_process": remote["throughput_per_s"] / local["throughput_per_s"],
              "ratio_cpu_per_request_server_vs_in_process":
                  remote["server_cpu_s_per_request"] / local["cpu_s_per_request"],
              "ratio_p50_server_vs_in_process": remote["p50_s"] / local["p50_s"]}
    print(json.dumps(result, indent=2))
    return 1 if remote["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
