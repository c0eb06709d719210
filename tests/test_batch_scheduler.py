"""``predict --scheduler ADDRESS`` joins a cluster someone else started (here: a LocalCluster of one
worker process started by the test), and a bad ``--cluster`` value is one line, exit code 2."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest

from napari_vlsm.cli import main


def test_scheduler_address_runs_on_that_cluster(tiny_model_dir, tmp_path, capsys):
    from distributed import Client, LocalCluster

    rng = np.random.default_rng(0)
    for i in range(3):
        iio.imwrite(tmp_path / f"img{i}.png", rng.integers(0, 256, (24, 28), dtype=np.uint8))
    base = ["predict", "--model", str(tiny_model_dir), "--device", "cpu", "--precision", "fp32", "--prompt", "liver",
            str(tmp_path / "img0.png"), str(tmp_path / "img1.png"), str(tmp_path / "img2.png")]
    assert main([*base, "--out", str(tmp_path / "local")]) == 0
    capsys.readouterr()
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        assert main([*base, "--out", str(tmp_path / "remote"), "--scheduler", cluster.scheduler_address,
                     "--json"]) == 0
        summary = json.loads(capsys.readouterr().out)
        # the model was loaded on the cluster's worker by the plugin (the worker's own fallback cache
        # stayed empty), and the plugin left with the run (docs/batch.md: shared clusters)
        fallback = client.run(lambda: len(__import__("napari_vlsm.cli.batch_tasks", fromlist=["_LOCAL"])._LOCAL))
        assert set(fallback.values()) == {0}
        still_there = client.run(lambda dask_worker: "napari-vlsm-model" in dask_worker.plugins)
        assert not any(still_there.values())
    assert len(summary["outputs"]) == 3 and summary["failed"] == []
    for i in range(3):
        name = f"img{i}__liver.png"
        assert np.array_equal(iio.imread(tmp_path / "local" / name), iio.imread(tmp_path / "remote" / name))


@pytest.mark.parametrize("value", ["remote:2", "local:x", "local:0"])
def test_a_bad_cluster_value_is_one_line(tiny_model_dir, tmp_path, capsys, value):
    iio.imwrite(tmp_path / "a.png", np.zeros((8, 8), np.uint8))
    code = main(["predict", "--model", str(tiny_model_dir), "--prompt", "x", str(tmp_path / "a.png"),
                 "--out", str(tmp_path / "o"), "--cluster", value])
    err = capsys.readouterr().err
    assert code == 2 and "--cluster" in err and len(err.strip().splitlines()) == 1
