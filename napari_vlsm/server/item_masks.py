"""The checks of a saved mask's upload (``PUT .../items/{id}/mask``) and the legend header it is read
back with. A user's mistake is a 422 naming it (VLSMError), never a 500.

The legend travels in a header (the label map is the body): ``X-VLSM-Structures`` on the way in,
``X-VLSM-Legend`` = ``{"structures": [{"value", "name", "prompt", "color"}]}`` on the way out. Only
the structures: the saved JSON legend also holds per-structure statistics and provenance, which can
outgrow what an HTTP client accepts in its headers (16 KiB in httpx/h11). ``LEGEND_HEADER_MAX`` caps
what a save may send, so every mask saved through the server can be read back through it.
"""

from __future__ import annotations

import json

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from ..core.errors import VLSMError

LEGEND_HEADER_MAX = 8192  # bytes of X-VLSM-Legend; with the other headers, well under 16 KiB
HEADER = "X-VLSM-Structures"


class StructureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: int = Field(ge=1, le=255, description="its value in the label map")
    name: str = Field(min_length=1, max_length=128)
    prompt: str = Field(min_length=1, max_length=1024)
    color: str | None = Field(None, pattern=r"^#[0-9a-fA-F]{6}$")


_STRUCTURES = TypeAdapter(list[StructureIn])


def check_structures(host, text: str | None) -> list[dict]:
    """``X-VLSM-Structures`` -> ``[{"value", "name", "prompt"(, "color")}]``: values 1..255 and
    names unique, prompts by the model's own rules (host.check_prompts)."""
    if not text:
        raise VLSMError(f"send the mask's legend in the {HEADER} header: a JSON list of "
                        '{"value": 1, "name": "liver", "prompt": "liver"}, one per structure')
    try:
        rows = _STRUCTURES.validate_python(json.loads(text))
    except (ValueError, RecursionError) as err:  # pydantic's ValidationError is a ValueError
        first = err.errors()[0] if isinstance(err, ValidationError) else None
        where = f" ({'.'.join(str(x) for x in first['loc'])}: {first['msg']})" if first else ""
        raise VLSMError(f"{HEADER} is not a JSON list of {{value, name, prompt}}{where}") from None
    if not 1 <= len(rows) <= 255:
        raise VLSMError(f"{HEADER} lists {len(rows)} structures; send 1 to 255")
    values = [r.value for r in rows]
    names = [" ".join(r.name.split()).lower() for r in rows]
    for what, seen in (("value", values), ("name", names)):
        repeated = sorted({v for v in seen if seen.count(v) > 1}, key=str)
        if repeated:
            raise VLSMError(f"{HEADER}: the {what} {repeated[0]!r} is given to two structures; give each its own")
    prompts = host.check_prompts([r.prompt for r in rows])
    out = [{"value": r.value, "name": " ".join(r.name.split()), "prompt": p} | ({"color": r.color} if r.color else {})
           for r, p in zip(rows, prompts, strict=True)]
    legend_header(out)  # refused now if it could not be read back
    return sorted(out, key=lambda s: s["value"])


def check_labels(labels: np.ndarray, shape: tuple[int, ...], structures: list[dict], item_id: int) -> np.ndarray:
    """The uploaded label map, as uint8: integers, the item's shape, only values of the legend."""
    if labels.dtype.kind not in "biu":
        raise VLSMError(f"the label map is {labels.dtype}; send integer labels (0 = background)")
    if tuple(labels.shape) != tuple(shape):
        raise VLSMError(f"the label map is {tuple(labels.shape)} but item {item_id} is {tuple(shape)}; "
                        "send a label map of the item's shape (a volume in canonical (z, y, x))")
    known = {0} | {s["value"] for s in structures}
    stray = [int(v) for v in np.unique(labels) if int(v) not in known]
    if stray:
        raise VLSMError(f"the label map holds the value {stray[0]}, which {HEADER} does not name; "
                        "list every structure the map holds")
    return labels.astype(np.uint8, copy=False)


def legend_header(structures) -> str:
    """``X-VLSM-Legend``: the structures (labelmap.Structure or dicts), compact ASCII JSON."""
    from ..core.worklist.saved_masks import as_structures

    rows = [{"value": s.value, "name": s.name, "prompt": s.prompt, "color": s.colour} for s in as_structures(structures)]
    text = json.dumps({"structures": rows}, ensure_ascii=True, separators=(",", ":"))
    if len(text) > LEGEND_HEADER_MAX:
        raise VLSMError(f"the mask's legend is {len(text)} bytes, over the {LEGEND_HEADER_MAX} a header may carry; "
                        "use fewer structures or shorter prompts")
    return text
