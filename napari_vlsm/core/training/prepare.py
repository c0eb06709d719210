"""Samples -> what the training loop needs: targets at model resolution, prompt tokens, features.

The fast path lives here: for variants whose image features do not depend on the adapters
(shallow, no dense image adapters), the frozen image encoder runs ONCE per sample, under
``torch.no_grad`` (not ``inference_mode``: those tensors could not take part in backward later),
and its outputs are reused at every step. Dense variants keep only the sample and re-encode the
image at every step, with gradients.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import PromptError, TrainingError, VLSMError
from ..model_input import pixels, tokenize, window_of
from ..preprocess import as_2d_image, as_binary_mask
from ..validation import check_window, clean_prompts
from .memory import MemoryLimit


def sample_name(sample, index: int) -> str:
    for attr in ("name", "id", "source"):
        value = getattr(sample, attr, None)
        if value:
            return str(value)
    return f"#{index}"


def phrasings(prompts, where: str) -> tuple[str, ...]:
    """A sample's prompt phrasings by the one prompt rule (``validation.clean_prompts``), each once."""
    return tuple(dict.fromkeys(clean_prompts(prompts, PromptError, where)))


class PromptTable:
    """Every distinct phrasing once, so that each is tokenised (and, if possible, encoded) once."""

    def __init__(self):
        self.phrasings: list[str] = []
        self._index: dict[str, int] = {}

    def add(self, prompts: Sequence[str]) -> list[int]:
        ids = []
        for p in prompts:
            if p not in self._index:
                self._index[p] = len(self.phrasings)
                self.phrasings.append(p)
            ids.append(self._index[p])
        return ids

    def tokenize(self, loaded) -> torch.Tensor:
        """Every phrasing's token ids (P, L), by the engine's rule (``model_input.tokenize``)."""
        return tokenize(loaded, self.phrasings)[0]


@dataclass
class PreparedSet:
    """Training or validation samples, ready for steps and evaluation."""

    samples: list
    names: list[str]
    shapes: list[tuple[int, int]]  # original (H, W), where Dice is measured
    prompt_ids: list[list[int]]  # per sample: indices into the PromptTable, first = canonical
    targets: torch.Tensor  # (N, S, S) float masks at model resolution (area-interpolated)
    packed_masks: list[np.ndarray]  # original-resolution masks, np.packbits (8x smaller)
    features: list[torch.Tensor] | None  # fast path: (N, T, D) per extracted layer
    pixels: torch.Tensor | None  # otherwise: (N, 3, S, S) model input, preprocessed once

    def __len__(self) -> int:
        return len(self.samples)

    def mask(self, i: int) -> np.ndarray:
        h, w = self.shapes[i]
        return np.unpackbits(self.packed_masks[i], count=h * w).reshape(h, w).astype(bool)


def image_of(sample, where: str) -> np.ndarray:
    try:
        return as_2d_image(sample.image)
    except VLSMError as err:
        raise type(err)(f"{where}: {err}") from None


def _target(mask: np.ndarray, size: int) -> torch.Tensor:
    # Area interpolation of the float mask: the loss sees the fraction of each model pixel covered.
    x = torch.from_numpy(mask.astype(np.float32))[None, None]  # (1, 1, H, W)
    return F.interpolate(x, size=(size, size), mode="area")[0, 0]  # (S, S)


class _Rows:
    """(N, ...) tensors filled row block by row block, allocated at the first block: no torch.cat
    at the end, which would hold every feature twice for a moment."""

    def __init__(self, n: int):
        self.n, self.filled, self.tensors = n, 0, None

    def put(self, blocks: list[torch.Tensor]) -> None:
        if self.tensors is None:
            self.tensors = [b.new_empty((self.n, *b.shape[1:])) for b in blocks]
        for out, b in zip(self.tensors, blocks):
            out[self.filled : self.filled + b.shape[0]] = b
        self.filled += blocks[0].shape[0]


def prepare(samples: Sequence, what: str, loaded, model, table: PromptTable, encode: bool, chunk: int, amp,
            limit: MemoryLimit) -> Generator[tuple[int, int], None, PreparedSet]:
    """Validate every sample, build its targets; with ``encode`` also run the image encoder once,
    without it keep the preprocessed model input (resizing a large photo costs more than a step of
    a small model; 3x less memory than the features).

    Yields ``(done, total)`` after each chunk so a progress bar moves during the precompute;
    ``limit`` lowers the images per encoder call after an out-of-memory.
    """
    samples = list(samples)
    names, shapes, prompt_ids, targets, packed = [], [], [], [], []
    rows, pending = _Rows(len(samples)), []

    def encode_some(items):  # items: (image, window) pairs
        images, windows = [im for im, _ in items], [w for _, w in items]
        with torch.no_grad(), amp():
            taps = model.encode_image(pixels(loaded, images, windows))  # list of (B, T, D)
        # Kept in the compute dtype: half the memory under bf16/fp16, and no cast at every step.
        rows.put([t.to(loaded.dtype) for t in taps])

    def flush():
        limit.run(list(pending), encode_some)
        pending.clear()

    for i, sample in enumerate(samples):
        where = f"{what} sample {sample_name(sample, i)}"
        if not all(hasattr(sample, a) for a in ("image", "mask", "prompts")):
            raise TrainingError(f"{where} lacks .image, .mask or .prompts; pass correction samples")
        image = image_of(sample, where)
        try:
            mask = as_binary_mask(sample.mask, shape=image.shape[:2])
        except VLSMError as err:
            raise type(err)(f"{where}: {err}") from None
        names.append(sample_name(sample, i))
        shapes.append(mask.shape)
        prompt_ids.append(table.add(phrasings(sample.prompts, where)))
        targets.append(_target(mask, loaded.image_size))
        packed.append(np.packbits(mask.ravel()))
        try:  # the window it was predicted with: the same model input as the prediction's
            window = check_window(window_of(sample), TrainingError)
        except TrainingError as err:
            raise TrainingError(f"{where}: {err}") from None
        if encode:
            pending.append((image, window))
            if len(pending) == chunk:
                flush()
        else:
            rows.put([pixels(loaded, [image], [window])])  # (1, 3, S, S)
        if (i + 1) % chunk == 0:
            yield i + 1, len(samples)
    if pending:
        flush()
    yield len(samples), len(samples)
    return PreparedSet(
        samples=samples, names=names, shapes=shapes, prompt_ids=prompt_ids,
        targets=torch.stack(targets).to(loaded.device), packed_masks=packed,
        features=rows.tensors if encode else None, pixels=None if encode else rows.tensors[0],
    )
