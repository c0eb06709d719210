"""One loop, three front ends: the same corrections, the same finetune through the dock, the CLI
(``finetune --project DIR``) and the server (``finetune --server URL --project NAME``) leave the same
files in a project folder and the same "latest" (core/project owns the layout and the rule)."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

pytest.importorskip("napari")

from napari_vlsm.cli import main  # noqa: E402
from napari_vlsm.server.process import ServerProcess  # noqa: E402

from dock_helpers import idle  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("one_thread")]
WAIT_MS = 120_000
STEPS, VARIANT = 2, "shallow-v"


def _pairs():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:40, :44]
    for i in range(4):
        mask = (yy - 18 - i) ** 2 + (xx - 22) ** 2 < (7 + i) ** 2
        image = np.clip(60 + 120 * mask + rng.normal(0, 15, mask.shape), 0, 255).astype(np.uint8)
        yield f"case{i}", image, mask


@pytest.fixture()
def data_dir(tmp_path) -> Path:
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for name, image, mask in _pairs():
        iio.imwrite(root / "images" / f"{name}.png", image)
        iio.imwrite(root / "masks" / f"{name}.png", (mask * 255).astype(np.uint8))
    return root


def _dock_run(qtbot, make_dock) -> Path:
    _, dock = make_dock()  # the project folder: tmp_path / "project"
    s = dock.session
    s.device, s.precision, s.variant = "cpu", "fp32", VARIANT  # as the CLI's and the server's runs below
    for name, image, mask in _pairs():  # what the CLI uploads from the folder: source = name, slice 0
        s.project.add_correction(image, mask, ["liver"], source=name, slice_index=0)
    s.store_changed.emit()
    dock.advanced.steps.setValue(STEPS)
    dock.finetune.btn_train.click()
    qtbot.waitUntil(lambda: idle(dock), timeout=WAIT_MS)
    return s.folder


def _cli(capsys, *argv) -> dict:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def _loop_files(folder: Path) -> dict:
    """What the loop left, with the names made of times and random ids taken out."""
    samples = sorted((folder / "corrections" / "samples").iterdir())
    metas = []
    for sample in samples:
        meta = json.loads((sample / "meta.json").read_text())
        metas.append(({p.name for p in sample.iterdir()}, {k: v for k, v in meta.items() if k not in ("id", "created")}))
    adapters = sorted(p.name for p in (folder / "adapters").glob("adapter-*"))
    latest = folder / "adapters" / "latest.json"
    named = json.loads(latest.read_text())["path"] if latest.exists() else None
    assert named is None or named in adapters
    from napari_vlsm.core.adapters.checkpoint import read_metadata

    (adapter,) = (folder / "adapters").glob("adapter-*.safetensors")
    metrics = read_metadata(adapter)["metrics"]
    return {"store": json.loads((folder / "corrections" / "store.json").read_text()), "samples": metas,
            "adapter_files": [Path(a).suffix for a in adapters], "latest": named is not None,
            "latest_is_the_run": named == adapter.name, "improved": metrics["after"]["dice"] > metrics["before"]["dice"],
            "dice": (round(metrics["before"]["dice"], 4), round(metrics["after"]["dice"], 4))}


def test_dock_cli_and_server_leave_the_same_project(qtbot, make_dock, tiny_model_dir, data_dir, tmp_path, capsys,
                                                    monkeypatch):
    dock_folder = _dock_run(qtbot, make_dock)
    common = ["finetune", "--data", data_dir, "--prompt", "liver", "--steps", STEPS, "--variant", VARIANT,
              "--out", tmp_path / "out.safetensors", "--json"]
    _cli(capsys, *common, "--model", tiny_model_dir, "--device", "cpu", "--precision", "fp32",
         "--project", tmp_path / "cli-project")
    with ServerProcess(tiny_model_dir, tmp_path / "server") as server:
        monkeypatch.setenv("NAPARI_VLSM_TOKEN", server.token)
        _cli(capsys, *common, "--server", server.url, "--project", "clinic")
        server_folder = server.project_root / "clinic"
    found = {name: _loop_files(folder) for name, folder in
             (("dock", dock_folder), ("cli", tmp_path / "cli-project"), ("server", server_folder))}
    assert found["dock"]["samples"] and found["dock"]["adapter_files"] == [".json", ".safetensors"]
    for name in ("cli", "server"):
        assert found[name] == found["dock"], name
    assert found["dock"]["latest"] == found["dock"]["improved"] == found["dock"]["latest_is_the_run"]
