"""napari opens medical volumes with napari-vlsm's reader, without asking (issue 22).

napari lets several plugins claim one file type and then asks which reader to use, with *napari
builtins* preselected, which cannot read NIfTI or DICOM ("Could not find a backend..."). napari's
answer is a reader preference per filename pattern (``settings.plugins.extension2reader``, the
table under File > Preferences > Plugins). On first use (the launcher, or the dock opening) we set
it for the patterns napari-vlsm reads and for folders (``"*/"``: a DICOM series is a folder),
only where the user has not chosen a reader, and say so once in words.

Once: a small marker in napari-vlsm's config folder records that it was done, so a preference the
user later removes or changes stays their choice.
"""

from __future__ import annotations

import os

from . import settings, texts

PLUGIN = "napari-vlsm"
FILE_PATTERNS = ("*.nii", "*.nii.gz", "*.nrrd", "*.nhdr", "*.mha", "*.mhd", "*.dcm", "*.dicom", "*.ima")
FOLDERS = "*" + os.sep  # napari matches a folder as its path with a trailing separator
MARKER = "reader-preference.json"


def missing(current: dict) -> dict:
    """The preferences to add: our patterns the user has not given to any reader."""
    return {pattern: PLUGIN for pattern in (*FILE_PATTERNS, FOLDERS) if pattern not in current}


def apply_once() -> dict | None:
    """Set napari's reader preferences once per user; returns what was added (None: done before).

    Never raises: a settings problem must not stop napari or the dock opening."""
    marker = settings.user_config_dir() / MARKER
    if marker.is_file():
        return None
    try:
        from napari.settings import get_settings

        plugins = get_settings().plugins
        added = missing(dict(plugins.extension2reader))
        if added:
            plugins.extension2reader = {**plugins.extension2reader, **added}  # napari saves it
    except Exception as err:  # an old napari or a read-only settings file: napari asks, as before
        settings.log.warning("napari-vlsm: napari's reader preference could not be set (%s)", err)
        return None
    settings.warn(settings.write(marker, {"set": sorted(added)}, {"set": (list,)}))
    if not added:
        return added
    shown = ", ".join(p.lstrip("*") for p in added if p != FOLDERS)
    from napari.utils.notifications import show_info

    show_info(texts.toast(texts.READERS_SET.format(patterns=shown or "medical files")))
    return added
