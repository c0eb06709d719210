"""The dock's settings that stay across dock reopenings and napari restarts.

Two JSON files, each written atomically (``core.atomic``: a crash leaves the previous file):

* per user, ``<platformdirs user_config_dir("napari-vlsm")>/dock.json``: the project folder, the
  model source, device, precision, auto-save, the finetune limits and batch sizes;
* per project, ``<project>/settings.json``: what belongs to the project's data: the adapter in
  use, the variant of new adapters and the threshold.

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
PROJECT_KEYS = {"adapter": (str,), "variant": (str,), "threshold": (int, float)}


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
