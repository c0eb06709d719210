"""The dock's settings that stay across dock reopenings and napari restarts.

Two JSON files, each written atomically (``core.atomic``: a crash leaves the previous file):

* per user, ``<platformdirs user_config_dir("napari-vlsm")>/dock.json``: the project folder, the
  model source, device, precision, auto-save, the finetune limits and batch sizes;
* per project, ``<project>/settings.json``: what belongs to the project's data: the adapter in
  use, the variant of new adapters, the threshold and the order the series' Next follows.

A missing file means defaults. A damaged one (not JSON, not an object, a value of the wrong type)
falls back to defaults for what it cannot read, with ONE warning naming the file, never an error:
settings are a convenience, losing them must not stop anyone working. Unknown keys are ignored
(a newer version's file still opens).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

APP = "napari-vlsm"
USER_FILE = "dock.json"
PROJECT_FILE = "settings.json"

# name -> accepted types (a bool is not an int here: json has both)
USER_KEYS = {
    "project": (str,), "model_source": (str,), "device": (str,), "precision": (str,),
    "autosave": (bool,), "batch_size": (int,), "max_steps": (int,), "budget_s": (int, float, type(None)),
    "server_url": (str,), "token_file": (str,), "server_project": (str,),  # never the token itself
}
PROJECT_KEYS = {"adapter": (str,), "variant": (str,), "threshold": (int, float), "series_order": (str,)}


def user_config_dir() -> Path:
    """Where the per-user file lives (``NAPARI_VLSM_CONFIG_DIR`` wins, for tests and portable setups)."""
    override = os.environ.get("NAPARI_VLSM_CONFIG_DIR")
    if override:
        return Path(override).expanduser()
    from platformdirs import user_config_dir as folder

    return Path(folder(APP))


def user_path() -> Path:
    return user_config_dir() / USER_FILE


def project_path(project) -> Path:
    return Path(project) / PROJECT_FILE


def temp_roots() -> list[Path]:
    """The system's temporary folders: emptied by the system (and by pytest), never a project's home."""
    import tempfile

    roots = {Path(tempfile.gettempdir()), Path("/tmp"), Path("/var/tmp")}
    return sorted({root.resolve() for root in roots if root.is_dir()})


def remembered_project(value: str | None) -> tuple[str | None, str | None]:
    """The remembered project folder if it is safe to use again; else None and why (one warning).

    A folder under the system temp folder is emptied behind the user's back (a test run once wrote
    its pytest folder here, issue 22), and a folder that no longer exists would be made again empty:
    both would send the user's corrections where they get lost, so the dock takes the default."""
    if not value:
        return None, None
    from napari_vlsm.core.store import default_root

    path, default = Path(value).expanduser(), default_root()
    if path == default:
        return value, None
    if not path.is_dir():
        why = f"Remembered project gone: using default\nThe project folder {path} no longer exists"
    elif any(path.resolve().is_relative_to(root) for root in temp_roots()):
        why = f"Remembered project is temporary\nThe project folder {path} is in the system's temporary folder"
    else:
        return value, None
    return None, (f"{why}; the default project {default} is used instead. To go back to it, choose it "
                  "with 'Project…' under Corrections.")


def _valid(key: str, value, kinds: tuple) -> bool:
    if isinstance(value, bool) and bool not in kinds:
        return False
    return isinstance(value, kinds)


def read(path: Path, keys: dict) -> tuple[dict, str | None]:
    """The readable settings of ``path`` and a warning (None when all was fine or the file is absent)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, None
    except (OSError, UnicodeDecodeError) as err:
        return {}, f"Settings unreadable: using defaults\nsettings file {path} could not be read ({err})"
    try:
        doc = json.loads(text)
    except ValueError as err:
        return {}, f"Settings file damaged: using defaults\nsettings file {path} is damaged ({err.__class__.__name__})"
    if not isinstance(doc, dict):
        return {}, f"Settings file damaged: using defaults\nsettings file {path} is damaged (not a JSON object)"
    good = {k: v for k, v in doc.items() if k in keys and _valid(k, v, keys[k])}
    bad = sorted(k for k in doc if k in keys and k not in good)
    warning = (f"Some settings reset to defaults\nsettings file {path}: ignored bad value(s) for {', '.join(bad)}; "
               "using their defaults") if bad else None
    return good, warning


def write(path: Path, values: dict, keys: dict) -> str | None:
    """Write the known keys atomically; returns a warning instead of raising (read-only disk...)."""
    from napari_vlsm.core.atomic import write_bytes_atomic

    doc = {k: v for k, v in values.items() if k in keys and _valid(k, v, keys[k])}
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())
    except OSError as err:
        return (f"Settings not saved: kept until closing\nsettings could not be saved to {path} "
                f"({err.strerror or err}); they last until napari closes")
    return None


def warn(message: str | None) -> None:
    if message:
        log.warning("napari-vlsm: %s", " ".join(message.split()))
        try:
            from napari.utils.notifications import show_warning

            from . import texts

            show_warning(texts.toast(message))
        except Exception:  # no napari notification manager (headless use): the log has it
            pass
