"""Several structures in one label map: composing, the legend, splitting back, presets.

The engine answers N prompts from ONE image pass (``Segmenter.predict(image, prompts)``); this
module turns its N probability maps into one integer label map, the form clinicians and tools
such as TotalSegmentator (``--ml`` + class map) exchange.

The overlap rule (one place, used by the dock, the CLI and the tests):
- structure ``i`` (0-based, in the order given) gets the value ``i + 1``; 0 is background;
- a pixel belongs to the structure with the HIGHEST probability there, if that probability is at
  least the threshold (``>=``, as ``preprocess.threshold_mask``); otherwise it is background;
- on an exact tie the structure listed first wins (``numpy.argmax``).
With one structure this is exactly the single mask ``probability >= threshold``.

Pure numpy: no torch, no napari.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

import numpy as np

from .errors import PromptError
from .preprocess import threshold_mask

SEPARATOR = ";"  # between structures in one line of text (the dock's prompt box)
# Distinct colours that stay visible on grey CT/MR and on red endoscopy/fundus photos; the first
# is the single-structure cyan. Beyond the list, colours repeat (the legend still names each value).
PALETTE = (
    "#00ffff", "#ffd700", "#ff00ff", "#32cd32", "#ff8c00", "#1e90ff", "#ff4d4d", "#9370db",
    "#7fffd4", "#f0e68c", "#ff69b4", "#adff2f", "#ffa07a", "#87cefa", "#dda0dd", "#00fa9a",
)
# Curated structure lists to pick from (a convenience: any text works). The names are what CLIPSeg
# reads best: short plain phrases.
PRESETS: dict[str, tuple[str, ...]] = {
    "Abdominal CT organs": ("liver", "spleen", "left kidney", "right kidney", "pancreas", "stomach",
                            "gallbladder", "aorta"),
    "Chest X-ray": ("left lung", "right lung", "heart"),
    "Brain MR": ("brain tumor", "brain", "lateral ventricles", "skull"),
}
LEGEND_FORMAT = "napari-vlsm label map legend"


@dataclass(frozen=True)
class Structure:
    """One entry of a label map's legend."""

    value: int  # the integer in the label map
    name: str  # normalised target (what the correction store files it under)
    prompt: str  # the phrasing given to the model
    colour: str  # "#rrggbb"


def split_structures(text: str) -> list[str]:
    """'liver; spleen\\nleft kidney' -> ['liver', 'spleen', 'left kidney'].

    Structures are separated by ';' or new lines; blanks between separators are dropped, and so
    are repeats (case and spacing ignored: 'Liver' and 'liver ' are one structure).
    """
    if not isinstance(text, str):
        raise PromptError(f"structures must be text; got {type(text).__name__}")
    out, seen = [], set()
    for part in re.split(r"[;\n\r]+", text):
        prompt = " ".join(part.split())
        if prompt and prompt.lower() not in seen:
            seen.add(prompt.lower())
            out.append(prompt)
    return out


def join_structures(prompts) -> str:
    """The canonical one-line form: 'liver; spleen' (what the dock's box shows and history keeps)."""
    return f"{SEPARATOR} ".join(prompts)


def colour_of(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def legend(prompts, colours=None) -> list[Structure]:
    """The legend of a label map made from ``prompts`` in this order (value i + 1 for prompt i)."""
    prompts = list(prompts)
    if not prompts:
        raise PromptError("no structure given; type one or more, e.g. 'liver; spleen'")
    names = [" ".join(p.split()).lower() for p in prompts]
    if len(set(names)) != len(names):
        raise PromptError(f"a structure is listed twice in {prompts}; list each once")
    colours = list(colours) if colours is not None else [colour_of(i) for i in range(len(prompts))]
    return [Structure(i + 1, n, p, c) for i, (n, p, c) in enumerate(zip(names, prompts, colours))]


def label_dtype(n: int) -> np.dtype:
    return np.dtype(np.uint8 if n < 256 else np.uint16)


def compose(probabilities, threshold: float) -> np.ndarray:
    """N probability maps -> one label map by the module's overlap rule.

    ``probabilities``: (N, ...) for N structures, or one map (...) for a single structure.
    The comparison runs in the maps' own dtype (float16 kept proposals compare as they always did).
    """
    prob = np.asarray(probabilities)
    threshold_mask(np.float32(0), threshold)  # SettingError on a bad threshold
    t = prob.dtype.type(threshold) if prob.dtype.kind == "f" else threshold
    if prob.ndim < 2:
        raise ValueError(f"probabilities must be (N, H, W) or (H, W); got shape {prob.shape}")
    if prob.ndim == 2:
        return (prob >= t).astype(np.uint8)
    n = prob.shape[0]
    if n == 0:
        raise ValueError("no probability maps to compose")
    best = np.argmax(prob, axis=0)
    top = np.take_along_axis(prob, best[None], axis=0)[0]
    out = (best + 1).astype(label_dtype(n))
    out[top < t] = 0
    return out


def masks(label_map, n: int) -> list[np.ndarray]:
    """The reverse: a label map -> one bool mask per structure (value i + 1 -> mask i)."""
    lm = np.asarray(label_map)
    return [lm == i + 1 for i in range(n)]


def legend_document(structures, **extra) -> dict:
    """The JSON legend: ``{"format", "labels": {"1": {name, prompt, colour}}, ...extra}``."""
    labels = {str(s.value): {"name": s.name, "prompt": s.prompt, "colour": s.colour} for s in structures}
    return {"format": LEGEND_FORMAT, "background": 0, "labels": labels, **extra}


def legend_json(structures, **extra) -> str:
    return json.dumps(legend_document(structures, **extra), indent=2, ensure_ascii=False)


def read_legend(document) -> list[Structure]:
    """A legend document (dict or JSON text) -> structures sorted by value; ValueError if malformed."""
    doc = json.loads(document) if isinstance(document, (str, bytes)) else document
    try:
        entries = doc["labels"]
        out = [Structure(int(k), str(v["name"]), str(v["prompt"]), str(v["colour"])) for k, v in entries.items()]
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"not a napari-vlsm label map legend: {err!r}") from None
    return sorted(out, key=lambda s: s.value)


def as_rows(structures) -> list[dict]:
    return [asdict(s) for s in structures]
