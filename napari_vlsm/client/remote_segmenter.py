"""``RemoteSegmenter``: the engine's predict interface, answered by a napari-vlsm server.

The CLI (``--server URL``) and the dock use it where they would use a local ``Segmenter``:
``predict``, ``predict_stack``, ``provenance``, ``info``. Stacks go over the wire in slice batches
with ONE intensity window computed here over the whole volume, exactly as the local engine does,
so the masks equal a local run's. No torch is imported (numpy + httpx).
"""

from __future__ import annotations

import numpy as np

from ..core import validation  # the engine's rules; the engine itself reaches torch (pyproject's contract)
from ..core.prediction import Prediction
from ..core.validation import check_threshold
from ..core.volume import stack_request
from .http import VLSMClient


class RemoteSegmenter:
    def __init__(self, client: VLSMClient, project: str | None = None, adapter: str | None = None):
        self.client, self.project, self.adapter = client, project, adapter
        self._provenance: dict | None = None

    def predict(self, image, prompts, threshold: float = 0.5, window=None) -> list[Prediction]:
        prompts, threshold = list(validation.clean_prompts(prompts)), check_threshold(threshold)  # as the engine
        probs = self.client.predict(np.asarray(image), prompts, output="probability", project=self.project,
                                    adapter=self.adapter, window=window, rgb=np.asarray(image).ndim == 3)
        return [Prediction(p, probs[k], threshold) for k, p in enumerate(prompts)]

    def predict_stack(self, stack, prompts, threshold: float = 0.5, batch_size: int = 8, window=None, axis: int = 0,
                      indices=None, rgb: bool | None = None):
        # the engine's checks, order and one window per volume (core/volume.py)
        return self._iter(*stack_request(stack, prompts, threshold, batch_size, window, axis, indices, rgb))

    def _iter(self, planes, order, prompts, threshold, batch_size, window):
        for pos in range(0, len(order), batch_size):
            chunk = order[pos: pos + batch_size]
            batch = np.stack([planes.read(i) for i in chunk])
            if window is None:  # one window per slice: each slice is its own request
                probs = np.stack([self.client.predict(b, prompts, output="probability", project=self.project,
                                                      adapter=self.adapter, rgb=planes.rgb) for b in batch], axis=1)
            else:
                probs = self.client.predict(batch, prompts, output="probability", project=self.project,
                                            adapter=self.adapter, rgb=planes.rgb, window=window, batch_size=batch_size)
            for j, index in enumerate(chunk):
                yield index, [Prediction(p, probs[k, j], threshold) for k, p in enumerate(prompts)]

    def info(self) -> dict:
        return {**self.client.info(), "server": self.client.url, "project": self.project, "adapter": self.adapter}

    def provenance(self) -> dict:
        if self._provenance is None:
            info = self.client.info()
            self._provenance = {"server": self.client.url, "model_source": info.get("source"),
                                "model_fingerprint": info.get("fingerprint"), "precision": info.get("precision"),
                                "device": info.get("device"), "project": self.project, "adapter": self.adapter,
                                "variant": info.get("variant")}
        return dict(self._provenance)
