"""How much the model doubts its proposal for an item: the score "most uncertain first" sorts by.

Signal (chosen by measurement, docs/series.md): a text-prompted model is asked the same question
in several phrasings -- the project's own and templates such as "a photo of a {}" -- and where
the answers disagree the model is unsure (published results find this locates errors at least as
well as test-time augmentation or MC dropout, without dropout or extra image passes). Two parts:

- ``disagreement``: 1 - the mean pairwise Dice of the phrasings' masks (both empty = agreement);
- ``near``: the share of the candidate region (pixels any phrasing puts near or above the
  threshold) whose probability lies within ``NEAR`` of the threshold: a proposal on a knife edge.

Both are ratios of areas, so an item's size does not change its score (a 1920x1080 frame and a
352x352 crop of the same content score alike). Cost: all phrasings share ONE image pass (the
engine caches the image features and the text embeddings), so only the small decoder runs again
per phrasing. Large 2D images are scored at the model's scale
(``model_scale``). A horizontal flip would need a second image pass (about 2x the cost of one
prediction, over the 1.5x budget), so it is not used.

Volumes and stacks: every slice is scored; the item's score is the mean of its worst tenth of
slices (robust to one noisy slice, yet a small lesion on a few slices still counts), and its
worst slices are kept for "Go to the most uncertain slice". Scores are cached in the worklist per
(item, model fingerprint, adapter, phrasings, threshold): ``score_key``.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np

from ..errors import ImageError
from .items import OPEN_STATUSES

TEMPLATES = ("{}", "a photo of a {}", "{} in a medical image", "a medical image showing the {}")
NEAR = 0.1  # half-width of the "knife edge" band around the threshold
MAX_SIDE = 128  # maps are strided down to this before scoring: the scores are area ratios anyway
WORST_SLICES_KEPT = 10
VERSION = 1  # bump when the formula changes: every cached score is then recomputed


def phrasings(prompt: str) -> tuple[str, ...]:
    """The prompt and its templated variants, without repeats ("polyp", "a photo of a polyp", ...)."""
    prompt = " ".join(str(prompt).split())
    return tuple(dict.fromkeys(t.format(prompt) for t in TEMPLATES))


def _small(prob: np.ndarray) -> np.ndarray:
    step = max(1, math.ceil(max(prob.shape[-2:]) / MAX_SIDE))
    return prob[..., ::step, ::step]


def map_parts(probs: np.ndarray, threshold: float = 0.5) -> tuple[float, float]:
    """(disagreement, near) of one structure on one image: ``probs`` is (phrasings, H, W)."""
    probs = _small(np.asarray(probs, np.float32))
    masks = probs > threshold
    sums = masks.reshape(len(masks), -1).sum(1).astype(np.float64)
    flat = masks.reshape(len(masks), -1).astype(np.float32)
    inter = flat @ flat.T
    pair = [(i, j) for i in range(len(masks)) for j in range(i + 1, len(masks))]
    dices = [1.0 if sums[i] + sums[j] == 0 else 2 * inter[i, j] / (sums[i] + sums[j]) for i, j in pair]
    disagreement = 1.0 - float(np.mean(dices)) if dices else 0.0
    candidate = (probs >= threshold - NEAR).any(0)
    edge = (np.abs(probs - threshold) < NEAR).mean(0)  # per pixel: the share of phrasings on the edge
    near = float(edge[candidate].mean()) if candidate.any() else 0.0
    return disagreement, near


def combine(disagreement: float, near: float) -> float:
    return 0.5 * disagreement + 0.5 * near


def image_score(probs_by_structure, threshold: float = 0.5) -> float:
    """The mean over structures of each one's combined score (one image or one slice)."""
    return float(np.mean([combine(*map_parts(p, threshold)) for p in probs_by_structure]))


def summarize_slices(slice_scores) -> tuple[float, tuple[int, ...]]:
    """A volume's score (mean of its worst tenth of slices) and its worst slices, worst first."""
    scores = np.asarray(slice_scores, np.float64)
    order = np.argsort(-scores, kind="stable")
    worst = order[: max(1, math.ceil(len(scores) / 10))]
    return float(scores[worst].mean()), tuple(int(i) for i in order[:WORST_SLICES_KEPT])


def _request(prompts) -> tuple[list[str], list[slice]]:
    """Every phrasing of every structure in one list (one engine call), and each structure's part."""
    flat, parts = [], []
    for prompt in prompts:
        ph = phrasings(prompt)
        parts.append(slice(len(flat), len(flat) + len(ph)))
        flat.extend(ph)
    return flat, parts


def _by_structure(predictions, parts) -> list[np.ndarray]:
    probs = [p.probability for p in predictions]
    return [np.stack(probs[s]) for s in parts]


def model_scale(image: np.ndarray, size: int) -> np.ndarray:
    """A large 2D image mean-pooled by a whole factor, never below the model's input ``size``.

    The model sees every image at ``size`` x ``size`` anyway, so its answer barely changes; what
    changes is the cost of bringing every phrasing's probability map back to the image's full size
    (a 1920x1080 frame: 4 maps of 2 million pixels). This keeps ranking within 1.5x of one plain
    prediction. The proposal shown when the item is opened is computed on the full image.
    """
    factor = min(image.shape[0], image.shape[1]) // int(size)
    if factor < 2:
        return image
    from skimage.transform import downscale_local_mean

    h, w = image.shape[0] // factor * factor, image.shape[1] // factor * factor
    small = downscale_local_mean(image[:h, :w], (factor, factor) + (1,) * (image.ndim - 2))
    return np.rint(small).astype(image.dtype) if image.dtype.kind in "iub" else small.astype(image.dtype)


def score_key(segmenter, prompts, threshold: float = 0.5) -> str:
    """What a score depends on: model, adapter, phrasings, threshold, formula."""
    prov = segmenter.provenance()
    adapter = prov.get("adapter_sha256") or (f"memory-{segmenter.adapter_version}"
                                             if segmenter.adapters is not None else "none")
    text = json.dumps([VERSION, prov.get("model_fingerprint"), prov.get("precision"), adapter,
                       _request(prompts)[0], float(threshold)])
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def score_item(segmenter, item, prompts, threshold: float = 0.5, batch_size: int = 4):
    """(score, worst slices) of one item: one image pass per image or slice, all phrasings on it."""
    from .reading import read_item

    flat, parts = _request(prompts)
    data = read_item(item)
    array = getattr(data, "array", data)  # a MedicalVolume's canonical (z, y, x) array
    if item.kind == "image":
        small = model_scale(np.asarray(array), segmenter.loaded.image_size)
        return image_score(_by_structure(segmenter.predict(small, flat, threshold), parts), threshold), ()
    scores = {}
    for index, preds in segmenter.predict_stack(array, flat, threshold, batch_size=batch_size):
        scores[index] = image_score(_by_structure(preds, parts), threshold)
    return summarize_slices([scores[i] for i in sorted(scores)])


def rank(worklist, segmenter, prompts, threshold: float = 0.5, on_progress=None, cancel=None) -> list:
    """Score every open item not yet scored with this model, adapter and phrasings; return all items,
    most uncertain first. An item no reader can open becomes ``unreadable`` with the reason."""
    from ..errors import WorklistError

    worklist.refresh_missing()
    key = score_key(segmenter, prompts, threshold)
    todo = [i for i in worklist.items() if i.status in OPEN_STATUSES and i.score_key != key]
    for n, item in enumerate(todo):
        if cancel is not None and cancel.is_set():
            break
        try:
            score, worst = score_item(segmenter, item, prompts, threshold)
        except (ImageError, WorklistError) as err:
            worklist.mark_unreadable(item.id, str(err))
        else:
            worklist.record_score(item.id, score, key, worst)
        if on_progress is not None:
            on_progress(n + 1, len(todo))
    return worklist.ranked()
