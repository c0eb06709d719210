"""The test session never touches the user's files, by construction (imported first by conftest.py).

``isolate()`` runs when conftest.py is imported, before any test module, napari's settings or
platformdirs are read: HOME, the XDG folders, napari's settings file (``NAPARI_CONFIG``, read once
when ``napari.settings`` is imported) and napari-vlsm's own variables point into one fresh folder
under the system temp folder. They are plain ``os.environ`` entries, not monkeypatch ones, so no
``monkeypatch.undo()`` can bring the user's folders back, and every subprocess a test starts
(CLI, server, a nested pytest) inherits them.

``UserFilesGuard`` is the proof: it fingerprints the REAL user's napari and napari-vlsm config,
cache and data folders (as platformdirs names them before ``isolate()``) at the start, and the
session fails (conftest.pytest_sessionfinish) when any file there was added, removed or changed.
Files up to ``HASH_LIMIT`` bytes are compared by content (sha256); larger ones (ONNX encoders,
the demo model's weights) by size and modification time, which any write changes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

HASH_LIMIT = 1 << 20
APPS = ("napari-vlsm", "napari")
# The project's variables that name a user folder or credential: never inherited from the user.
PROJECT_VARIABLES = ("NAPARI_VLSM_CONFIG_DIR", "NAPARI_VLSM_RUNTIME_CACHE", "NAPARI_VLSM_TOKEN")
# Caches that would otherwise follow a variable the user set instead of the fake HOME.
CACHE_VARIABLES = ("HF_HOME", "HF_HUB_CACHE", "TRANSFORMERS_CACHE", "TORCH_HOME", "MPLCONFIGDIR")
FAKE_HOME_VARIABLE = "NAPARI_VLSM_TEST_HOME"  # set by isolate(): a nested session's "real" home is ours


def user_folders(env=None) -> list[Path]:
    """The real user's folders for napari and napari-vlsm under ``env`` (default: os.environ now)."""
    import platformdirs

    env = os.environ if env is None else env
    folders = []
    for app in APPS:
        folders += [Path(platformdirs.user_config_dir(app)), Path(platformdirs.user_cache_dir(app)),
                    Path(platformdirs.user_data_dir(app))]
    for name in ("NAPARI_CONFIG", *PROJECT_VARIABLES[:2]):
        if env.get(name):
            folders.append(Path(env[name]).expanduser())
    return folders


def _fingerprint(path: Path) -> tuple:
    stat = path.stat()
    if stat.st_size > HASH_LIMIT:
        return (stat.st_size, stat.st_mtime_ns)
    return (stat.st_size, hashlib.sha256(path.read_bytes()).hexdigest())


def snapshot(folders) -> dict[str, tuple]:
    """``{file: fingerprint}`` for every file under ``folders`` (a folder may be a single file)."""
    seen = {}
    for top in folders:
        files = [top] if top.is_file() else (p for p in top.rglob("*") if p.is_file()) if top.is_dir() else []
        for path in files:
            try:
                seen[str(path)] = _fingerprint(path)
            except OSError:  # vanished while listed (another program's cache): not ours to judge
                continue
    return seen


class UserFilesGuard:
    def __init__(self, folders):
        self.folders = list(folders)
        self.before = snapshot(self.folders)

    def changes(self) -> list[str]:
        after = snapshot(self.folders)
        out = [f"added   {p}" for p in sorted(after.keys() - self.before.keys())]
        out += [f"removed {p}" for p in sorted(self.before.keys() - after.keys())]
        out += [f"changed {p}" for p in sorted(self.before.keys() & after.keys()) if self.before[p] != after[p]]
        return out


def isolate() -> tuple[Path, UserFilesGuard]:
    """Point every user folder into a fresh temporary home; returns it and the guard of the real ones."""
    guard = UserFilesGuard(user_folders())
    home = Path(tempfile.mkdtemp(prefix="napari-vlsm-tests-home-")).resolve()
    layout = {"HOME": home, "XDG_CONFIG_HOME": home / ".config", "XDG_CACHE_HOME": home / ".cache",
              "XDG_DATA_HOME": home / ".local" / "share", "XDG_STATE_HOME": home / ".local" / "state",
              "NAPARI_CONFIG": home / ".config" / "napari" / "settings.yaml",
              "NAPARI_VLSM_CONFIG_DIR": home / ".config" / "napari-vlsm",
              "NAPARI_VLSM_RUNTIME_CACHE": home / ".cache" / "napari-vlsm" / "runtime"}
    for name in (*PROJECT_VARIABLES, *CACHE_VARIABLES):
        os.environ.pop(name, None)
    for name, path in layout.items():
        if name.startswith(("HOME", "XDG_")):
            path.mkdir(parents=True, exist_ok=True)
        os.environ[name] = str(path)
    os.environ[FAKE_HOME_VARIABLE] = str(home)
    _point_napari_settings(layout["NAPARI_CONFIG"])
    return home, guard


def _point_napari_settings(path: Path) -> None:
    """If a plugin imported napari.settings before conftest.py, its settings path is already read."""
    import sys

    module = sys.modules.get("napari.settings._napari_settings")
    if module is not None:
        module._CFG_PATH = str(path)
    settings = sys.modules.get("napari.settings")
    if settings is not None and getattr(settings, "_SETTINGS", None) is not None:
        settings._SETTINGS = None  # made with the user's file: the next get_settings() reads ours


def remove(home: Path) -> None:
    shutil.rmtree(home, ignore_errors=True)
