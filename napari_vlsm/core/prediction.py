"""Prediction: one prompt's result on one image, a plain value the CLI, the dock and tests share."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .masks import threshold_mask
from .validation import check_threshold


@dataclass(frozen=True, eq=False)
class Prediction:
    """One prompt's result on one image: float32 probability at the image's own (H, W)."""

    prompt: str
    probability: np.ndarray
    threshold: float = 0.5

    @property
    def mask(self) -> np.ndarray:
        return threshold_mask(self.probability, self.threshold)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.probability.shape)

    def with_threshold(self, threshold: float) -> Prediction:
        """The same probabilities with another threshold: instant, no model call."""
        return replace(self, threshold=check_threshold(threshold))
