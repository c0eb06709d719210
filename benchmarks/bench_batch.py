"""Batch benchmark: files per second of ``predict --cluster local:2`` against the in-process loop on
the same folder, side by side, with the resident memory of each worker.

    python benchmarks/bench_batch.py --files 24 [--arch full|tiny] [--size 256] [--precision fp32]

Both sides run the same code (cli/batch.py's tasks: read, segment, write, provenance record): on a
LocalCluster of 2 worker processes with one torch thread each, and in this process with 2 torch
threads (the same 2 cores). Start-up (cluster + model load) is timed apart from the files.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def make_folder(root: Path, files: int, size: int) -> Path:
    import imageio.v3 as iio

    folder = root / "archive"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(files):
        iio.imwrite(folder / f"scan{i:03d}.png", (rng.random((size, size)) * 255).astype(np.uint8))
    return folder


def args_for(model, folder, out, precision, *extra):
    from napari_vlsm.cli import build_parser

    return build_parser().parse_args(["predict", "--model", str(model), "--device", "cpu", "--precision", precision,
                                      "--prompt", "liver", str(folder), "--out", str(out), *extra])


def in_process(model, folder, out, precision, threads):
    import torch

    from napari_vlsm.cli import batch, batch_tasks

    torch.set_flush_denormal(True)
    torch.set_num_threads(threads)
    args = args_for(model, folder, out, precision)
    spec = (str(model), None, "cpu", precision)
    batch_tasks._LOCAL.clear()  # a fresh engine: no feature-cache hit from the other side's run
    start = time.perf_counter()
    batch_tasks.segmenter(spec)  # the model load, timed apart as the cluster's start-up is
    loaded = time.perf_counter() - start
    t, cpu = time.perf_counter(), time.process_time()
    assert batch._run(args, batch.build_jobs(args), spec, batch._InProcess(), batch_tasks) == 0
    return {"startup_s": loaded, "files_s": time.perf_counter() - t, "cpu_s": time.process_time() - cpu}


def on_cluster(model, folder, out, precision, workers):
    from distributed import Client, LocalCluster

    from napari_vlsm.cli import batch, batch_tasks

    args = args_for(model, folder, out, precision, "--cluster", f"local:{workers}")
    jobs = batch.build_jobs(args)
    spec = (str(model), None, "cpu", precision)
    start = time.perf_counter()
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.register_plugin(batch_tasks.ModelPlugin(*spec, threads=1), name=batch_tasks.PLUGIN)
        startup = time.perf_counter() - start
        cpu0 = client.run(_cpu_seconds)
        t = time.perf_counter()
        assert batch._run(args, jobs, spec, batch._Dask(client), batch_tasks) == 0
        files_s = time.perf_counter() - t
        cpu = sum(client.run(_cpu_seconds).values()) - sum(cpu0.values())
        rss = client.run(lambda: __import__("psutil").Process().memory_info().rss)
    return {"startup_s": startup, "files_s": files_s, "workers": workers, "workers_cpu_s": cpu,
            "worker_rss_mb": sorted(round(v / 2**20) for v in rss.values())}


def _cpu_seconds() -> float:
    import psutil

    times = psutil.Process().cpu_times()
    return times.user + times.system


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model")
    p.add_argument("--arch", default="full", choices=("full", "tiny"))
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "auto"))
    p.add_argument("--files", type=int, default=24)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    if not 1 <= args.files <= 500:
        p.error("--files must be 1..500 (bounded on purpose)")
    from common import model_folder

    model = model_folder(args.model, args.arch)
    root = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    folder = make_folder(root, args.files, args.size)
    import psutil

    n, sides = args.files, {}
    for threads in sorted({1, args.workers}):  # the loop on one core, and on as many as the cluster has
        local = in_process(model, folder, root / f"local-{threads}", args.precision, threads=threads)
        sides[f"in_process_{threads}_threads"] = local | {"files_per_s": n / local["files_s"],
                                                          "cpu_s_per_file": local["cpu_s"] / n}
    rss = round(psutil.Process().memory_info().rss / 2**20)
    dask = on_cluster(model, folder, root / "dask", args.precision, args.workers)
    result = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
              "settings": vars(args) | {"model": str(model)}, **sides, "in_process_rss_mb": rss,
              "local_cluster": dask | {"files_per_s": n / dask["files_s"], "cpu_s_per_file": dask["workers_cpu_s"] / n},
              **{f"ratio_files_per_s_cluster_vs_{k}": v["files_s"] / dask["files_s"] for k, v in sides.items()}}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
