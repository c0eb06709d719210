"""``napari-vlsm finetune`` and ``napari-vlsm evaluate`` on a tiny synthetic folder."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from napari_vlsm.cli import main, training_report
from napari_vlsm.core.adapters.checkpoint import read_metadata

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """8 grey disk images (PNG, uint8) with masks, and a medvlsm-style annotation file."""
    root = tmp_path_factory.mktemp("disks")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    entries = []
    for i in range(8):
        h, w = 48 + 4 * i, 64
        yy, xx = np.mgrid[:h, :w]
        mask = (yy - h // 2) ** 2 + (xx - 20 - 3 * i) ** 2 < 12**2
        image = np.clip(rng.normal(70, 20, (h, w)) + 150 * mask, 0, 255).astype(np.uint8)
        iio.imwrite(root / "images" / f"case{i}.png", image)
        iio.imwrite(root / "masks" / f"case{i}.png", (mask * 255).astype(np.uint8))
        entries.append({"img_name": f"case{i}.png", "mask_name": f"case{i}.png",
                        "prompts": {"p0": "", "p1": "disk", "p2": "a bright round disk"}})
    (root / "ann.json").write_text(json.dumps(entries))
    return root


def base_args(model, *extra):
    return ["--model", str(model), "--device", "cpu", "--precision", "fp32", *extra]


def run_json(capsys, argv):
    code = main(argv)
    out = capsys.readouterr().out
    return code, (json.loads(out) if code in (0, 130) and out.strip().startswith("{") else out)


def test_finetune_then_evaluate(tiny_model_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "adapters" / "disk"  # suffix added, folder created
    code, report = run_json(capsys, ["finetune", *base_args(tiny_model_dir), "--data", str(data_dir), "--prompt",
                                     "disk", "bright disk", "--out", str(out), "--steps", "4", "--batch-size", "2",
                                     "--variant", "shallow-vl", "--json"])
    assert code == 0
    path = Path(report["adapter"])
    assert path == out.with_suffix(".safetensors") and path.is_file()
    assert report["variant"] == "shallow-vl" and report["steps"] == 4 and report["stopped"] == "max_steps"
    assert report["heldout"] is True and report["data"]["n_train"] + report["data"]["n_val"] == 8
    assert 1 <= report["data"]["n_val"] <= 3
    assert set(report["before"]) == {"dice", "iou", "n"} and set(report["after"]) == {"dice", "iou", "n"}
    meta = read_metadata(path)
    assert meta["prompts"] == ["disk", "bright disk"] and meta["dataset"]["data"] == str(data_dir)

    code, ev = run_json(capsys, ["evaluate", *base_args(tiny_model_dir), "--adapter", str(path), "--data",
                                 str(data_dir), "--prompt", "disk", "--json"])
    assert code == 0 and ev["n"] == 8 and len(ev["per_image"]) == 8 and ev["failed"] == []
    assert all(0 <= r["dice"] <= 1 and 0 <= r["iou"] <= r["dice"] + 1e-12 for r in ev["per_image"])
    assert ev["mean_dice"] == pytest.approx(np.mean([r["dice"] for r in ev["per_image"]]))
    assert ev["provenance"]["variant"] == "shallow-vl"

    # continue from it: same variant, the parent is recorded
    again = tmp_path / "again.safetensors"
    code, report = run_json(capsys, ["finetune", *base_args(tiny_model_dir), "--data", str(data_dir), "--prompt",
                                     "disk", "--out", str(again), "--steps", "2", "--init-adapter", str(path), "--json"])
    assert code == 0 and report["variant"] == "shallow-vl"
    assert read_metadata(again)["parent"]["steps"] == 4


def test_annotation_file_and_text_output(tiny_model_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "a.safetensors"
    code = main(["finetune", *base_args(tiny_model_dir), "--data", str(data_dir), "--ann",
                 str(data_dir / "ann.json"), "--out", str(out), "--budget", "0.5", "--variant", "dense-v"])
    text = capsys.readouterr().out
    assert code == 0 and "Dice" in text and "->" in text and f"adapter: {out}" in text
    assert read_metadata(out)["prompts"] == ["disk", "a bright round disk"]  # from the file, p0 "" dropped
    code = main(["evaluate", *base_args(tiny_model_dir), "--data", str(data_dir), "--ann", str(data_dir / "ann.json")])
    text = capsys.readouterr().out
    assert code == 0 and text.count("Dice") == 9 and "mean" in text


def test_ctrl_c_stops_and_keeps_the_best_so_far(tiny_model_dir, data_dir, tmp_path, capsys, monkeypatch):
    real = training_report.Bar.__call__

    def press_ctrl_c_at_step_3(self, event):
        real(self, event)
        if event.kind == "step" and event.step == 3:
            os.kill(os.getpid(), signal.SIGINT)  # the handler only sets the cancel event

    monkeypatch.setattr(training_report.Bar, "__call__", press_ctrl_c_at_step_3)
    out = tmp_path / "a.safetensors"
    code, report = run_json(capsys, ["finetune", *base_args(tiny_model_dir), "--data", str(data_dir), "--prompt",
                                     "disk", "--out", str(out), "--steps", "500", "--batch-size", "2", "--json"])
    assert code == 130 and report["cancelled"] and report["steps"] == 3 and report["stopped"] == "cancelled"
    assert out.is_file() and read_metadata(out)["training"]["stopped"] == "cancelled"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--out", "x.safetensors"], "no prompt"),
        (["--prompt", "disk", "--out", "x.safetensors", "--steps", "0"], "max_steps must be a positive integer"),
        (["--prompt", "disk", "--out", "x.safetensors", "--variant", "none"], "cannot be trained"),
        (["--prompt", "disk", "--out", "x.safetensors", "--init-adapter", "missing.safetensors"], "does not exist"),
    ],
)
def test_finetune_user_errors_are_one_line(tiny_model_dir, data_dir, tmp_path, capsys, monkeypatch, extra, match):
    monkeypatch.chdir(tmp_path)
    code = main(["finetune", *base_args(tiny_model_dir), "--data", str(data_dir), *extra])
    err = capsys.readouterr().err
    assert code == 2 and match in err and err.startswith("napari-vlsm: error:") and "Traceback" not in err


def test_variant_must_match_init_adapter(tiny_model_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "a.safetensors"
    assert main(["finetune", *base_args(tiny_model_dir), "--data", str(data_dir), "--prompt", "disk", "--out",
                 str(out), "--steps", "1", "--variant", "shallow-v"]) == 0
    capsys.readouterr()
    code = main(["finetune", *base_args(tiny_model_dir), "--data", str(data_dir), "--prompt", "disk", "--out",
                 str(tmp_path / "b"), "--steps", "1", "--init-adapter", str(out), "--variant", "dense-v"])
    assert code == 2 and "shallow-v adapter" in capsys.readouterr().err


def test_limits_are_exclusive(tiny_model_dir, data_dir, capsys):
    code = main(["finetune", *base_args(tiny_model_dir), "--data", str(data_dir), "--prompt", "d", "--out", "x",
                 "--steps", "3", "--budget", "10"])
    assert code == 2 and "not allowed with" in capsys.readouterr().err


def test_evaluate_reports_a_bad_mask_and_goes_on(tiny_model_dir, data_dir, tmp_path, capsys):
    bad = tmp_path / "d"
    (bad / "images").mkdir(parents=True)
    (bad / "masks").mkdir()
    for name in ("case0.png", "case1.png"):
        (bad / "images" / name).write_bytes((data_dir / "images" / name).read_bytes())
        (bad / "masks" / name).write_bytes((data_dir / "masks" / name).read_bytes())
    iio.imwrite(bad / "masks" / "case1.png", np.zeros((5, 5), np.uint8))  # wrong size
    code = main(["evaluate", *base_args(tiny_model_dir), "--data", str(bad), "--prompt", "disk"])
    captured = capsys.readouterr()
    assert code == 1 and "case0" in captured.out and "case1" not in captured.out
    assert "napari-vlsm: error: case1:" in captured.err and "(5, 5)" in captured.err


def test_finetune_in_a_local_project_uses_its_corrections_and_latest(tiny_model_dir, data_dir, tmp_path, capsys):
    """--project DIR: the folder's samples become the project's corrections (twice: replaced, not
    duplicated), the project trains on its persisted split, the adapter is copied to --out."""
    from napari_vlsm.core.project import Project

    project = tmp_path / "proj"
    out = tmp_path / "a.safetensors"
    argv = ["finetune", *base_args(tiny_model_dir), "--data", str(data_dir), "--prompt", "disk", "--out", str(out),
            "--steps", "2", "--batch-size", "2", "--variant", "shallow-v", "--project", str(project), "--json"]
    code, report = run_json(capsys, argv)
    assert code == 0 and report["steps"] == 2 and report["adapter"] == str(out)
    owner = Project(project)
    assert owner.counts() == {"train": 6, "val": 2}  # the store's persisted split, not the folder run's hash
    (listed,) = owner.adapters()
    assert listed["name"] == report["project_adapter"] and out.read_bytes() == owner.adapter_path(listed["name"]).read_bytes()
    assert report["latest"] == listed["latest"] == (report["after"]["dice"] > report["before"]["dice"])
    assert owner.latest_adapter() == (listed["name"] if report["latest"] else None)
    code, _ = run_json(capsys, argv)
    assert code == 0 and owner.counts() == {"train": 6, "val": 2} and len(owner.adapters()) == 2
