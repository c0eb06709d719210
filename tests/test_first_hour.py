"""The small dead ends of a first hour (issue 22): each stays fixed.

No torchvision warning when the demo model is written; the xvfb-run hint keeps the user's
arguments; setup.sh installs the union of the extras once; a mask assigned by a script
(``layer.data = ...``) is auto-saved like a painted one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_vlsm._napari import launch

ROOT = Path(__file__).resolve().parents[1]


def test_writing_the_demo_model_asks_for_no_torchvision(tmp_path):
    code = ("from napari_vlsm.core.random_model import write_random_clipseg; "
            f"write_random_clipseg({str(tmp_path / 'demo')!r}, arch='tiny', seed=0)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "torchvision" not in run.stderr, run.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="DISPLAY is an X11 matter")
def test_the_xvfb_hint_keeps_the_users_arguments():
    hint = launch.display_problem({}, ["--demo-model", "--image", "my scan.nii.gz"])
    assert hint.endswith("xvfb-run -a bash scripts/launch.sh --demo-model --image 'my scan.nii.gz'"), hint
    assert launch.display_problem({}, []).endswith("xvfb-run -a bash scripts/launch.sh")


# ----------------------------------------------------------------------------- setup.sh
def _fake_venv(tmp_path: Path) -> tuple[Path, Path]:
    """A venv whose python is the real one, except that ``-m pip`` only logs what it was asked."""
    venv, log = tmp_path / "venv", tmp_path / "pip.log"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(f'#!/usr/bin/env bash\nif [ "$1" = "-m" ] && [ "$2" = "pip" ]; then echo "$@" >> {log}; '
                      f'exit 0; fi\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    return venv, log


def _setup(venv: Path, *args: str) -> str:
    env = {**os.environ, "VENV": str(venv)}
    run = subprocess.run(["bash", str(ROOT / "scripts" / "setup.sh"), *args], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_setup_installs_the_union_of_extras_once(tmp_path):
    venv, log = _fake_venv(tmp_path)
    _setup(venv, "testing")  # what test.sh asks
    assert "-e .[all,testing]" in log.read_text()
    assert "up to date" in _setup(venv)  # launch.sh after it: nothing to install (was 18-20 s)
    assert "up to date" in _setup(venv, "testing")
    assert log.read_text().count(" -e ") == 1


def test_setup_after_launch_adds_the_test_extras_once(tmp_path):
    venv, log = _fake_venv(tmp_path)
    _setup(venv)  # launch.sh first
    _setup(venv, "testing")
    _setup(venv)
    installs = [line for line in log.read_text().splitlines() if " -e " in line]
    assert [line.split()[-1] for line in installs] == [".[all]", ".[all,testing]"]


# ----------------------------------------------------------------------------- auto-save
def test_changed_planes_finds_exactly_the_changed_slices():
    from napari_vlsm._napari.autosave import changed_planes

    before = np.zeros((4, 8, 8), np.uint8)
    after = before.copy()
    after[1, 2, 3] = after[3, 0, 0] = 1
    assert changed_planes(before, after, (1, 2)) == {(1,), (3,)}
    assert changed_planes(before, before.copy(), (1, 2)) == set()
    assert changed_planes(before[0], after[1], (0, 1)) == {()}
    assert changed_planes(np.zeros((2, 8, 8)), after, (1, 2)) == {(1,), (3,)}  # new shape: slices with labels


@pytest.mark.gui
def test_a_mask_assigned_by_a_script_is_auto_saved(qtbot, make_dock):
    pytest.importorskip("napari")
    from dock_helpers import WAIT_MS, segment

    viewer, dock = make_dock()
    viewer.add_image(np.random.default_rng(3).integers(0, 255, (4, 32, 32), dtype=np.uint8), name="stack")
    labels = segment(qtbot, dock, "lesion", all_slices=True)
    assert dock.session.store.samples() == [] and dock.corrections.autosave.isChecked()
    mask = labels.data.copy()
    mask[2] = 0
    mask[2, 8:20, 8:20] = 1
    labels.data = mask  # as scripts and other plugins do: no paint event
    qtbot.waitUntil(lambda: len(dock.session.store.samples()) == 1, timeout=WAIT_MS)
    (sample,) = dock.session.store.samples("lesion")
    assert sample.slice_index == (2,)
    np.testing.assert_array_equal(sample.mask, mask[2] != 0)
