"""The test session cannot touch a user's files (tests/isolation.py), and its guard catches one that does.

A nested pytest runs with a sentinel home: a dock.json and a napari settings file that must be
byte for byte the same afterwards, whatever the nested tests do (monkeypatch.undo() included).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import isolation

HERE = Path(__file__).resolve().parent
SENTINEL = '{"project": "/my/real/project", "model_source": "/my/model"}\n'
NAPARI_SENTINEL = "application:\n  first_time: false\n"

INNER = '''
import json, os
from pathlib import Path

def test_settings_after_monkeypatch_undo_stay_in_the_fake_home(monkeypatch, tmp_path):
    monkeypatch.setenv("NAPARI_VLSM_CONFIG_DIR", str(tmp_path / "per-test"))
    monkeypatch.undo()  # what test_reliability_gui.py did: the session's isolation must survive it
    from napari_vlsm._napari import settings
    assert settings.write(settings.user_path(), {"project": str(tmp_path)}, settings.USER_KEYS) is None
    assert str(settings.user_path()).startswith(os.environ["NAPARI_VLSM_TEST_HOME"])
    assert Path.home() == Path(os.environ["NAPARI_VLSM_TEST_HOME"])

def test_napari_settings_save_in_the_fake_home():
    from napari.settings import get_settings
    s = get_settings()
    s.application.first_time = True
    s.save()
    assert str(s.config_path).startswith(os.environ["NAPARI_VLSM_TEST_HOME"])

def test_a_subprocess_inherits_the_fake_home():
    import subprocess, sys
    out = subprocess.run([sys.executable, "-c", "import pathlib; print(pathlib.Path.home())"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == os.environ["NAPARI_VLSM_TEST_HOME"]
'''

ROGUE = '''
import os
from pathlib import Path

def test_writes_the_real_dock_json_on_purpose():
    Path(os.environ["REAL_DOCK_JSON"]).write_text("{}")
'''


def _nested(tmp_path: Path, body: str) -> tuple[subprocess.CompletedProcess, Path]:
    """Run ``body`` as a test module beside copies of conftest.py and isolation.py, with a sentinel home."""
    suite = tmp_path / "suite"
    suite.mkdir()
    for name in ("conftest.py", "isolation.py"):
        shutil.copy(HERE / name, suite / name)
    (suite / "test_inner.py").write_text(body)
    home = tmp_path / "home"
    dock = home / ".config" / "napari-vlsm" / "dock.json"
    napari_file = home / ".config" / "napari" / "settings.yaml"
    for path, text in ((dock, SENTINEL), (napari_file, NAPARI_SENTINEL)):
        path.parent.mkdir(parents=True)
        path.write_text(text)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("XDG_", "NAPARI_")) and k not in isolation.CACHE_VARIABLES}
    env.update(HOME=str(home), REAL_DOCK_JSON=str(dock),
               PYTHONPATH=os.pathsep.join([str(HERE.parent), env.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xvfb",
                          "-p", "no:randomly", str(suite / "test_inner.py")],
                         cwd=suite, env=env, capture_output=True, text=True, timeout=300)
    return run, home


def test_a_test_run_leaves_a_users_dock_json_and_napari_settings_unchanged(tmp_path):
    run, home = _nested(tmp_path, INNER)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 passed" in run.stdout
    assert (home / ".config" / "napari-vlsm" / "dock.json").read_text() == SENTINEL
    assert (home / ".config" / "napari" / "settings.yaml").read_text() == NAPARI_SENTINEL
    assert not list(home.glob(".cache/napari-vlsm")) and not list(home.glob(".local/share/napari-vlsm"))


def test_the_guard_fails_a_run_that_changed_a_users_file(tmp_path):
    run, home = _nested(tmp_path, ROGUE)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 passed" in run.stdout  # the test itself passed: the guard failed the session
    assert "user files touched" in run.stdout and "dock.json" in run.stdout


def test_the_guard_sees_added_removed_and_changed_files(tmp_path):
    (tmp_path / "keep").write_text("a")
    (tmp_path / "edit").write_text("a")
    (tmp_path / "gone").write_text("a")
    guard = isolation.UserFilesGuard([tmp_path, tmp_path / "absent"])
    assert guard.changes() == []
    (tmp_path / "edit").write_text("b")
    (tmp_path / "gone").unlink()
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "new").write_text("c")
    assert guard.changes() == [f"added   {tmp_path / 'sub' / 'new'}", f"removed {tmp_path / 'gone'}",
                               f"changed {tmp_path / 'edit'}"]


def test_this_session_runs_in_a_temporary_home():
    home = Path(os.environ[isolation.FAKE_HOME_VARIABLE])
    assert Path.home() == home and str(home).startswith(os.path.realpath(__import__("tempfile").gettempdir()))
    assert os.environ["NAPARI_CONFIG"].startswith(str(home))
    assert os.environ["NAPARI_VLSM_CONFIG_DIR"] != str(home / ".config" / "napari-vlsm")  # per test, below
    assert "NAPARI_VLSM_TOKEN" not in os.environ
