"""The CLI as a client: predict/evaluate/finetune --server URL against a real server child process.

The masks written through the server must equal the in-process CLI's (same engine, same window per
volume); wrong or missing tokens are one line and exit code 2.
"""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from napari_vlsm.cli import main
from napari_vlsm.server.process import ServerProcess


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    with ServerProcess(tiny_model_dir, tmp_path_factory.mktemp("server")) as proc:
        yield proc


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:48, :48]
    for i in range(6):
        mask = (yy - 20 - i) ** 2 + (xx - 24) ** 2 < (8 + i) ** 2
        image = np.clip(60 + 120 * mask + rng.normal(0, 15, mask.shape), 0, 255).astype(np.uint8)
        iio.imwrite(root / "images" / f"case{i}.png", image)
        iio.imwrite(root / "masks" / f"case{i}.png", (mask * 255).astype(np.uint8))
    tifffile.imwrite(root / "ct.tif", rng.integers(-1000, 1000, (5, 30, 34), dtype=np.int16),
                     photometric="minisblack")
    return root


def run(capsys, *argv, env_token=None, monkeypatch=None):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_predict_through_the_server_writes_the_same_masks(server, tiny_model_dir, data_dir, tmp_path, capsys):
    inputs = [data_dir / "images", data_dir / "ct.tif"]
    local = ["predict", "--model", tiny_model_dir, "--device", "cpu", "--precision", "fp32",
             "--prompt", "liver", "--prompt", "kidney", "--batch-size", "2", *inputs]
    code, _, err = run(capsys, *local, "--out", tmp_path / "local")
    assert code == 0, err
    code, _, err = run(capsys, *local, "--out", tmp_path / "remote", "--server", server.url,
                       "--token-file", server.token_file)
    assert code == 0, err
    names = sorted(p.name for p in (tmp_path / "local").iterdir() if p.suffix in (".png", ".tif"))
    assert len(names) == 2 * 7 and names == sorted(p.name for p in (tmp_path / "remote").iterdir()
                                                     if p.suffix in (".png", ".tif"))
    for name in names:
        read = tifffile.imread if name.endswith(".tif") else iio.imread
        assert np.array_equal(read(tmp_path / "local" / name), read(tmp_path / "remote" / name)), name
    summary = json.loads((tmp_path / "remote" / "napari-vlsm-predict.json").read_text())
    assert summary["provenance"]["server"] == server.url and len(summary["provenance"]["model_fingerprint"]) == 16


def test_evaluate_through_the_server_gives_the_local_scores(server, tiny_model_dir, data_dir, capsys):
    base = ["evaluate", "--model", tiny_model_dir, "--device", "cpu", "--precision", "fp32", "--data", data_dir,
            "--prompt", "polyp", "--json"]
    code, out, err = run(capsys, *base)
    assert code == 0, err
    here = json.loads(out)
    code, out, err = run(capsys, *base, "--server", server.url, "--token-file", server.token_file)
    assert code == 0, err
    there = json.loads(out)
    assert [r["dice"] for r in there["per_image"]] == [r["dice"] for r in here["per_image"]]


def test_finetune_on_the_server_downloads_the_adapter(server, data_dir, tmp_path, capsys, monkeypatch, loaded):
    from napari_vlsm.core.adapters.checkpoint import load_adapter

    monkeypatch.setenv("NAPARI_VLSM_TOKEN", server.token)  # the token from the environment this time
    out = tmp_path / "adapter.safetensors"
    argv = ["finetune", "--data", data_dir, "--prompt", "polyp", "--steps", "3", "--batch-size", "2",
            "--variant", "shallow-v", "--out", out, "--server", server.url, "--project", "cli", "--json"]
    code, stdout, err = run(capsys, *argv)
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["adapter"] == str(out) and summary["steps"] == 3 and {"dice", "iou", "n"} <= set(summary["after"])
    adapters, _ = load_adapter(out, loaded)
    assert adapters.variant == "shallow-v"
    code, _, err = run(capsys, *argv)  # the same folder again: its corrections are replaced, not duplicated
    assert code == 0, err
    from napari_vlsm.client import VLSMClient

    assert len(VLSMClient(server.url, server.token).corrections("cli")["samples"]) == 6


def test_finetune_without_project_names_it_after_a_non_ascii_folder(server, data_dir, tmp_path, capsys, monkeypatch):
    """Before: --data ./Lebér made the project 'lebér', which the server refuses (422)."""
    import shutil

    monkeypatch.setenv("NAPARI_VLSM_TOKEN", server.token)
    folder = tmp_path / "Lebér"
    shutil.copytree(data_dir / "images", folder / "images")
    shutil.copytree(data_dir / "masks", folder / "masks")
    code, stdout, err = run(capsys, "finetune", "--data", folder, "--prompt", "liver", "--steps", "1", "--batch-size",
                            "2", "--out", tmp_path / "a.safetensors", "--server", server.url, "--json")
    assert code == 0, err
    assert json.loads(stdout)["project"] == "leber"
    from napari_vlsm.client import VLSMClient

    assert len(VLSMClient(server.url, server.token).corrections("leber")["samples"]) == 6


@pytest.mark.parametrize("token", [None, "a-wrong-token-0123456789"])
def test_no_or_wrong_token_is_one_line_and_exit_2(server, data_dir, tmp_path, capsys, monkeypatch, token):
    monkeypatch.delenv("NAPARI_VLSM_TOKEN", raising=False)
    if token:
        monkeypatch.setenv("NAPARI_VLSM_TOKEN", token)
    code, _, err = run(capsys, "predict", "--prompt", "x", data_dir / "images", "--out", tmp_path,
                       "--server", server.url)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert ("NAPARI_VLSM_TOKEN" in err) if token is None else ("refused the token" in err)
