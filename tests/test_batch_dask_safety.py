"""``predict --scheduler/--cluster`` on a shared cluster: one line (within --scheduler-timeout) for a
wrong address or a cluster with no worker, the model plugin gone when the run ends (a worker that
joins later loads nothing), and Ctrl+C one line with the resume hint. Real LocalClusters on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import imageio.v3 as iio
import numpy as np
import pytest

from napari_vlsm.cli import main
from napari_vlsm.server.process import free_port


def _images(folder, n, shape=(24, 28)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        iio.imwrite(folder / f"img{i:03d}.png", rng.integers(0, 256, shape, dtype=np.uint8))
    return folder


def _base(model, inputs, out):
    return ["predict", "--model", str(model), "--device", "cpu", "--precision", "fp32", "--prompt", "liver",
            str(inputs), "--out", str(out)]


def test_a_wrong_scheduler_address_is_one_line_within_the_timeout(tiny_model_dir, tmp_path, capsys):
    inputs = _images(tmp_path / "in", 1)
    code = main([*_base(tiny_model_dir, inputs, tmp_path / "o"), "--scheduler", f"tcp://127.0.0.1:{free_port()}",
                 "--scheduler-timeout", "2"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "cannot reach the dask scheduler" in err and "--scheduler-timeout" in err


def test_a_scheduler_without_workers_is_one_line_within_the_timeout(tiny_model_dir, tmp_path, capsys):
    from distributed import LocalCluster

    inputs = _images(tmp_path / "in", 1)
    with LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster:
        code = main([*_base(tiny_model_dir, inputs, tmp_path / "o"), "--scheduler", cluster.scheduler_address,
                     "--scheduler-timeout", "2"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "has no worker" in err


def test_the_model_plugin_leaves_with_the_run(tiny_model_dir, tmp_path, capsys):
    from distributed import Client, LocalCluster

    inputs = _images(tmp_path / "in", 2)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        assert main([*_base(tiny_model_dir, inputs, tmp_path / "o"), "--scheduler", cluster.scheduler_address]) == 0
        cluster.scale(2)  # a worker joins the shared cluster after the run
        client.wait_for_workers(2, timeout=60)
        plugins = client.run(lambda dask_worker: sorted(dask_worker.plugins))
        assert len(plugins) == 2
        assert not any("napari-vlsm-model" in names for names in plugins.values()), plugins
    assert len(list((tmp_path / "o").glob("*__liver.png"))) == 2


@pytest.mark.skipif(os.name != "posix", reason="process groups and SIGINT are POSIX")
def test_ctrl_c_on_a_cluster_run_is_one_line_with_the_resume_hint(tiny_model_dir, tmp_path):
    inputs = _images(tmp_path / "in", 400, shape=(64, 64))
    out = tmp_path / "o"
    code = "import sys; from napari_vlsm.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", code, *_base(tiny_model_dir, inputs, out), "--cluster", "local:1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None and not list(out.glob("*__liver.png")):
            time.sleep(0.1)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl+C does: the driver and its workers
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    lines = [line for line in err.decode().splitlines() if line.strip() and "it/s" not in line and "%|" not in line]
    assert proc.returncode == 130, err.decode()[-3000:]
    assert len(lines) == 1 and "run the same command again to resume" in lines[0], err.decode()[-3000:]
