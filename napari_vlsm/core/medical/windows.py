"""Intensity windows: CT presets in Hounsfield units, percentile windows, and the automatic default.

A window ``(lo, hi)`` maps ``lo`` to black and ``hi`` to white before the model sees a slice; ONE
window serves a whole volume, so neighbouring slices look alike. The same window is stored with
every correction and used again when the adapter trains on it.

- ``auto`` (the default everywhere): the 0.5th to 99.5th percentile of the whole volume (read on a
  strided sample when the volume is large or lazy). It needs no modality and suits CT, MR and
  microscopy alike; 8-bit images keep 0..255.
- CT presets (level / width in HU): ``soft-tissue`` 40/400 (-160..240), ``lung`` -600/1500
  (-1350..150), ``bone`` 400/1800 (-500..1300), ``brain`` 40/80 (0..80). Refused for a scan whose
  header names another modality (HU mean nothing on MR).
- Percentile windows, for MR (whose values have no fixed unit): ``p1-99``, ``p2-98``, ``p5-95``
  and ``p0.5-99.5`` over the whole volume.
- Or two numbers: ``"lo,hi"`` (e.g. ``"-100,300"``).
"""

from __future__ import annotations

import math

from ..errors import ImageError

AUTO = "auto"
CT_PRESETS = {"soft-tissue": (40.0, 400.0), "lung": (-600.0, 1500.0), "bone": (400.0, 1800.0),
              "brain": (40.0, 80.0)}  # name -> (level, width) in HU
PERCENTILE_PRESETS = {"p1-99": (1.0, 99.0), "p2-98": (2.0, 98.0), "p5-95": (5.0, 95.0),
                      "p0.5-99.5": (0.5, 99.5)}
PRESETS = (AUTO, *CT_PRESETS, *PERCENTILE_PRESETS)
LABELS = {AUTO: "auto (0.5-99.5 % of the volume)", "soft-tissue": "CT soft tissue (W400 L40)",
          "lung": "CT lung (W1500 L-600)", "bone": "CT bone (W1800 L400)", "brain": "CT brain (W80 L40)",
          "p1-99": "MR 1-99 %", "p2-98": "MR 2-98 %", "p5-95": "MR 5-95 %", "p0.5-99.5": "0.5-99.5 %"}
HINT = f"use one of {', '.join(PRESETS)} or two numbers 'lo,hi' (e.g. -160,240)"


def ct_window(name: str) -> tuple[float, float]:
    level, width = CT_PRESETS[name]
    return (level - width / 2, level + width / 2)


def parse_window(text) -> str | tuple[float, float]:
    """A preset name or ``"lo,hi"`` -> the name or ``(lo, hi)``; ImageError naming the choices."""
    if isinstance(text, (tuple, list)):
        return _numbers(text, text)
    value = str(text).strip().lower()
    if value in PRESETS:
        return value
    if "," in value:
        return _numbers(value.split(","), text)
    raise ImageError(f"unknown window {text!r}; {HINT}")


def _numbers(parts, text) -> tuple[float, float]:
    try:
        lo, hi = (float(p) for p in parts)
    except (TypeError, ValueError):
        raise ImageError(f"window {text!r} is not two numbers; {HINT}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ImageError(f"window {text!r} needs finite numbers with lo < hi; {HINT}")
    return (lo, hi)


def resolve_window(preset, array, modality: str = "", rgb: bool | None = None) -> tuple[float, float]:
    """``(preset name | "lo,hi" | (lo, hi) | None, volume array, modality) -> (lo, hi)``.

    ``None`` means ``auto``. ``array`` is the whole volume (numpy or lazy); only percentile windows
    read it, and then on a bounded sample (:func:`napari_vlsm.core.volume.volume_window`).
    """
    from ..volume import volume_window

    choice = AUTO if preset is None else parse_window(preset)
    if isinstance(choice, tuple):
        return choice
    if choice in CT_PRESETS:
        modality = str(modality or "").upper()
        if modality and modality != "CT":
            raise ImageError(f"the {choice} window is in Hounsfield units, for CT; this scan is {modality}: "
                             "use auto or a percentile window such as p1-99")
        return ct_window(choice)
    percentiles = PERCENTILE_PRESETS.get(choice)
    if percentiles is None:  # auto
        return tuple(float(v) for v in volume_window(array, rgb=rgb))
    return tuple(float(v) for v in volume_window(array, rgb=rgb, percentiles=percentiles))


def window_for(choice, array, modality: str = "", rgb: bool | None = None) -> tuple[float, float] | None:
    """Which window applies to ``array``: the one rule of the CLI, its batch tasks, the server and the
    training volumes. None for one 2D image under ``auto`` (the engine windows each image by
    itself); otherwise ONE window for the whole stack or volume from ``choice``
    (:func:`resolve_window`: a preset, ``"lo,hi"``, ``(lo, hi)``, or None for ``auto``).
    ``rgb``: the colour guess's override (False for medical volumes, whose last axis is x)."""
    from ..volume import guess_rgb

    spatial = len(array.shape) - (1 if guess_rgb(array.shape, rgb) else 0)
    if spatial <= 2 and (choice is None or parse_window(choice) == AUTO):
        return None
    return resolve_window(choice, array, modality, rgb)


# ------------------------------------------------------------------ display (what the user looks at)
DISPLAY_CT = "soft-tissue"  # a radiologist opens an abdominal CT in W400 L40


def looks_like_ct(array, modality: str = "") -> bool:
    """The header says CT, or (no modality recorded, as in NIfTI) the values are Hounsfield units:
    air near -1000 at the low end of the volume, bone or contrast below 4000 at the high end."""
    from ..volume import volume_window

    modality = str(modality or "").upper()
    if modality:
        return modality == "CT"
    dtype = getattr(array, "dtype", None)
    if dtype is None or dtype.kind not in "if":
        return False
    lo, hi = volume_window(array, rgb=False)  # 0.5th and 99.5th percentiles, on a bounded sample
    return -3100.0 <= lo <= -900.0 and hi <= 4000.0


def display_window(array, modality: str = "") -> tuple[tuple[float, float], str]:
    """The contrast a volume opens with and its preset name: soft tissue for CT, else auto."""
    if looks_like_ct(array, modality):
        return ct_window(DISPLAY_CT), DISPLAY_CT
    return resolve_window(AUTO, array, modality, rgb=False), AUTO


def display_presets(modality: str = "") -> list[str]:
    """The display choices that mean something for this modality (CT presets first for CT)."""
    modality = str(modality or "").upper()
    if modality == "CT":
        return [*CT_PRESETS, AUTO]
    if modality:
        return [AUTO, *PERCENTILE_PRESETS]
    return [*CT_PRESETS, AUTO, *PERCENTILE_PRESETS]
