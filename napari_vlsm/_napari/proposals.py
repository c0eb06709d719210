"""The model's last proposal per (Labels layer, slice), kept outside napari's undo history.

napari's history holds 100 steps and is reset when a layer stops being editable, so "Revert to
proposal", the threshold slider and the proposal stored with a correction need their own copy.
The probability is kept as float16 (half the memory; thresholds are set to 0.01): (H, W) for one
structure, (N, H, W) for N, re-composed by ``core.labelmap.compose`` when the threshold moves (no
model call). The label values that were written are kept, so an edited slice can be told from an
untouched one. A proposal comes from the model or from *Fill between slices* (``origin``
"fill"): both are proposals (an edit makes the slice a correction), and Segment all keeps filled
slices as it keeps corrections, since they were drawn from the user's corrections.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_vlsm.core import labelmap as LM

from .layers import Plane


@dataclass
class Proposal:
    probability: np.ndarray  # float16 (H, W) for one structure, (N, H, W) for N
    threshold: float
    values: np.ndarray  # (H, W) label values written into the layer (0 background, i + 1 structure i)
    origin: str = "model"  # "model" or "fill" (Fill between slices)

    @property
    def mask(self) -> np.ndarray:
        """Where any structure was proposed (bool)."""
        return self.values != 0

    def mask_of(self, value: int) -> np.ndarray:
        return self.values == value

    def at(self, threshold: float) -> np.ndarray:
        """The label plane at another threshold (the overlap rule of ``core.labelmap``)."""
        return LM.compose(self.probability, threshold)


class ProposalBook:
    def __init__(self):
        self._by_layer: dict[str, dict[Plane, Proposal]] = {}

    @staticmethod
    def _key(layer) -> str:
        return str(layer.unique_id)

    def put(self, layer, plane: Plane, probability: np.ndarray, threshold: float) -> Proposal:
        prob = np.asarray(probability, dtype=np.float16)
        entry = Proposal(prob, float(threshold), LM.compose(prob, threshold))
        self._by_layer.setdefault(self._key(layer), {})[plane] = entry
        return entry

    def put_values(self, layer, plane: Plane, values: np.ndarray, threshold: float, structures: int,
                   origin: str = "fill") -> Proposal:
        """A proposal that is a label plane (not a model's probability): stored as a one-hot
        probability, so re-thresholding composes exactly these values back."""
        values = np.asarray(values)
        if structures <= 1:
            prob = (values != 0).astype(np.float16)
        else:
            prob = np.stack([values == v for v in range(1, structures + 1)]).astype(np.float16)
        entry = Proposal(prob, float(threshold), values.copy(), origin)
        self._by_layer.setdefault(self._key(layer), {})[plane] = entry
        return entry

    def get(self, layer, plane: Plane) -> Proposal | None:
        return self._by_layer.get(self._key(layer), {}).get(plane)

    def planes(self, layer) -> dict[Plane, Proposal]:
        return dict(self._by_layer.get(self._key(layer), {}))

    def forget(self, layer) -> None:
        self._by_layer.pop(self._key(layer), None)

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_layer.values())
