"""``predict --cluster local:2`` on a real LocalCluster (2 worker processes, tiny model): masks equal
to the in-process predict, a failed file reported without stopping the others, an interrupted run
resumed (finished outputs skipped by their provenance), ``--overwrite`` and ``--jobs`` files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from napari_vlsm.cli import main

MAIN = "import sys; from napari_vlsm.cli import main; sys.exit(main(sys.argv[1:]))"


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("archive")
    rng = np.random.default_rng(0)
    for i in range(6):
        iio.imwrite(root / f"scan{i}.png", rng.integers(0, 256, (30, 36), dtype=np.uint8))
    tifffile.imwrite(root / "ct.tif", rng.integers(-1000, 1000, (9, 22, 26), dtype=np.int16),
                     photometric="minisblack")
    return root


def _model_args(model):
    return ["--model", str(model), "--device", "cpu", "--precision", "fp32", "--batch-size", "2"]


def _read(path: Path):
    return tifffile.imread(path) if path.suffix == ".tif" else iio.imread(path)


def _masks(folder: Path) -> dict:
    return {p.name: _read(p) for p in sorted(folder.glob("*__*")) if p.suffix in (".png", ".tif")}


@pytest.fixture(scope="module")
def reference(archive, tiny_model_dir, tmp_path_factory):
    """The in-process predict of the archive (the default path, no batch flag)."""
    out = tmp_path_factory.mktemp("reference")
    code = main(["predict", *_model_args(tiny_model_dir), "--prompt", "liver", "--prompt", "kidney",
                 str(archive), "--out", str(out)])
    assert code == 0
    return _masks(out)


def _run(argv, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", MAIN, *map(str, argv)], capture_output=True, text=True,
                          timeout=timeout, env=env, check=False)


def test_interrupted_cluster_run_resumes_and_equals_in_process_predict(archive, tiny_model_dir, reference, tmp_path):
    inputs = sorted(archive.iterdir())
    blocker = tmp_path / "late.png"  # a named pipe: reading it blocks until the test writes it
    os.mkfifo(blocker)
    jobs = [{"input": str(p), "prompts": ["liver", "kidney"]} for p in inputs]
    jobs.append({"input": str(blocker), "prompts": ["liver"]})
    jobs.append({"input": str(tmp_path / "broken.png"), "prompts": ["liver"]})
    (tmp_path / "broken.png").write_bytes(b"this is not a PNG")
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    out = tmp_path / "out"
    argv = ["predict", *_model_args(tiny_model_dir), "--jobs", tmp_path / "jobs.json", "--out", out,
            "--cluster", "local:2", "--slices-per-task", "4"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", MAIN, *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        records = out / ".napari-vlsm-batch"
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and len(list(records.glob("*.json"))) < 2 * len(inputs):
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.5)
        assert len(list(records.glob("*.json"))) == 2 * len(inputs), "the run never finished the other files"
        os.kill(proc.pid, signal.SIGINT)  # Ctrl+C while one file is still being read
        _, err = proc.communicate(timeout=90)
        assert proc.returncode == 130, err
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert _masks(out) == {} or set(_masks(out)) <= set(reference)  # only whole outputs, none half-written
    blocker.unlink()
    iio.imwrite(blocker, np.full((20, 24), 7, np.uint8))
    result = _run([*argv, "--json"])
    assert result.returncode == 1, result.stderr  # broken.png still fails, and alone
    summary = json.loads(result.stdout)
    assert summary["skipped"] == len(inputs) and [f["input"] for f in summary["failed"]] == [str(tmp_path / "broken.png")]
    assert "broken.png" in result.stderr and "Traceback" not in result.stderr
    got = _masks(out)
    assert set(got) == set(reference) | {"late__liver.png"}
    for name, mask in reference.items():
        assert np.array_equal(got[name], mask), name


def test_jobs_csv_per_file_prompts_and_outputs_in_process(archive, tiny_model_dir, reference, tmp_path, capsys):
    rows = ["input,prompts,out", f"{archive / 'scan0.png'},liver;kidney,{tmp_path / 'a'}",
            f"{archive / 'ct.tif'},kidney,{tmp_path / 'b'}"]
    (tmp_path / "jobs.csv").write_text("\n".join(rows) + "\n")
    argv = ["predict", *_model_args(tiny_model_dir), "--jobs", str(tmp_path / "jobs.csv"), "--out",
            str(tmp_path / "default"), "--slices-per-task", "4", "--json"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["skipped"] == 0 and len(first["outputs"]) == 3
    assert set(_masks(tmp_path / "a")) == {"scan0__liver.png", "scan0__kidney.png"}
    assert set(_masks(tmp_path / "b")) == {"ct__kidney.tif"}
    for folder in ("a", "b"):
        for name, mask in _masks(tmp_path / folder).items():
            assert np.array_equal(mask, reference[name]), name
    assert main(argv) == 0  # again: everything is skipped
    assert json.loads(capsys.readouterr().out)["skipped"] == 2
    assert main([*argv, "--overwrite"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped"] == 0
    assert main([*argv, "--threshold", "0.3"]) == 0  # another threshold: another provenance, redone
    assert json.loads(capsys.readouterr().out)["skipped"] == 0


@pytest.mark.parametrize("content, words", [("[{\"prompts\": [\"x\"]}]", "no 'input'"), ("{bad", "not valid JSON")])
def test_a_bad_jobs_file_is_one_line(tmp_path, tiny_model_dir, capsys, content, words):
    (tmp_path / "jobs.json").write_text(content)
    code = main(["predict", *_model_args(tiny_model_dir), "--jobs", str(tmp_path / "jobs.json"), "--out",
                 str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1
