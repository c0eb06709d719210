"""Segmenter: the one inference engine the CLI, the widget and the trainer share.

Why it is faster than the plain transformers pipeline (numbers in docs/benchmarks.md):
- the image side does not depend on the prompt: ONE image pass serves any number of prompts,
  and its features are cached (``cache.FeatureCache``), so a second prompt or a new threshold on
  the same image costs only the text encoder (cached too) and the small decoder;
- image blocks after the last extracted layer are skipped (``forward.VLSMModel``);
- inference runs under ``torch.inference_mode`` and autocast in the loaded compute dtype
  (bf16 on CPUs with native bf16, fp16 on CUDA); probabilities are always float32;
- a probability map is re-thresholded without a model call (``Prediction.with_threshold``).

torch is imported inside functions: importing this module (for ``Prediction``) stays light.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import warnings
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from . import preprocess
from .cache import DEFAULT_CACHE_BYTES, FeatureCache, TextCache, feature_key, image_digest, low_precision_base
from .errors import ImageError, PromptError, VLSMError
from .loading import DEFAULT_MODEL
from .volume import StackPlanes, volume_window

# Upsampling logits to a 4000 x 4000 image makes 64 MB float32 per prompt (and as much again for
# the sigmoid): do it in chunks of prompts so the transient peak stays near this many bytes.
PROB_CHUNK_BYTES = 256 * 2**20
# CPU + bf16/fp16: predict with a low-precision copy of the frozen weights (+~220 MB at the full
# architecture) instead of letting autocast cast every weight at every call. False: no copy.
LOW_PRECISION_COPY = True
_VERSIONS = itertools.count(1)  # adapter versions unique across Segmenters: no stale cache hit


@dataclass(frozen=True, eq=False)
class Prediction:
    """One prompt's result on one image: float32 probability at the image's own (H, W)."""

    prompt: str
    probability: np.ndarray
    threshold: float = 0.5

    @property
    def mask(self) -> np.ndarray:
        return preprocess.threshold_mask(self.probability, self.threshold)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.probability.shape)

    def with_threshold(self, threshold: float) -> Prediction:
        """The same probabilities with another threshold: instant, no model call."""
        return replace(self, threshold=check_threshold(threshold))


def clean_prompts(prompts) -> list[str]:
    """One prompt or a list of them -> stripped strings; empty or non-text prompts raise PromptError."""
    items = [prompts] if isinstance(prompts, str) else prompts
    if not isinstance(items, (list, tuple)):
        raise PromptError(f"prompts must be a string or a list of strings; got {type(prompts).__name__}")
    if not items:
        raise PromptError("no prompt given; pass a text such as 'liver' or 'polyp'")
    out = []
    for i, prompt in enumerate(items):
        if not isinstance(prompt, str):
            raise PromptError(f"prompt {i + 1} is {type(prompt).__name__} {prompt!r}, not text; pass strings")
        if not prompt.strip():
            raise PromptError(f"prompt {i + 1} is empty; describe the structure, e.g. 'left kidney'")
        out.append(prompt.strip())
    return out


def check_threshold(threshold) -> float:
    preprocess.threshold_mask(np.float32(0), threshold)  # raises on a bad threshold
    return float(threshold)


def _check_window(window):
    if window is None:
        return None
    preprocess.normalize_intensity(np.zeros((1, 1), np.float32), window)  # raises on a bad window
    return tuple(float(v) for v in window)


def _is_out_of_memory(err: BaseException) -> bool:
    import torch

    return isinstance(err, torch.OutOfMemoryError) or (
        isinstance(err, RuntimeError) and "out of memory" in str(err).lower()
    )


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def variant_parameters(config, variant: str) -> int:
    """Parameters of a variant's adapter set (built, counted, dropped); 0 for 'none'."""
    from .adapters import AdapterConfig, build_adapters

    adapters = build_adapters(AdapterConfig.from_variant(variant, config))
    return 0 if adapters is None else sum(p.numel() for p in adapters.parameters())


class Segmenter:
    """Text-prompted segmentation with a frozen CLIPSeg and optional VLSM adapters.

    ``loaded`` shares an already loaded model (then ``model``, ``device`` and ``precision`` are
    ignored). ``variant`` is the adapter variant to train when no adapter is loaded. Thread-safe:
    one lock serialises model calls (a worker thread may predict while the UI asks for info).
    """

    def __init__(self, model=DEFAULT_MODEL, *, adapter=None, variant: str = "none", device: str = "auto",
                 precision: str = "auto", cache_bytes: int = DEFAULT_CACHE_BYTES, loaded=None):
        from .adapters import AdapterConfig
        from .loading import load_model

        self._loaded = loaded if loaded is not None else load_model(model, device=device, precision=precision)
        AdapterConfig.from_variant(variant, self._loaded.config)  # AdapterError on an unknown name
        self._variant = variant
        self._build_models(None)
        self._lock = threading.RLock()
        self._features = FeatureCache(cache_bytes)
        self._texts = TextCache()
        self._version = next(_VERSIONS)
        self._meta = self._path = self._sha256 = None
        self._param_counts: dict[str, int] = {}
        lm = self._loaded
        self._model_key = f"{lm.fingerprint}|{lm.image_size}|{lm.image_mean}|{lm.image_std}|{lm.precision}"
        self._batch_limit = 1
        if adapter is not None:
            self.load_adapter(adapter)

    # ------------------------------------------------------------------------- properties
    loaded = property(lambda self: self._loaded)
    vlsm = property(lambda self: self._vlsm)
    adapters = property(lambda self: self._vlsm.adapters)
    adapter_metadata = property(lambda self: self._meta)
    adapter_path = property(lambda self: self._path)
    adapter_version = property(lambda self: self._version)

    @property
    def variant(self) -> str:
        """The loaded adapters' variant, or the configured one when none are loaded."""
        return self.adapters.variant if self.adapters is not None else self._variant

    @variant.setter
    def variant(self, name: str) -> None:
        from .adapters import AdapterConfig

        AdapterConfig.from_variant(name, self._loaded.config)
        self._variant = name

    # --------------------------------------------------------------------------- adapters
    def load_adapter(self, path) -> None:
        """Load a saved adapter file (AdapterError on a bad file or another base model)."""
        from .adapters.checkpoint import load_adapter

        adapters, meta = load_adapter(Path(path), self._loaded)
        self.set_adapters(adapters, meta, path=path)

    def set_adapters(self, adapter_set, metadata: dict | None = None, path=None) -> None:
        """Use ``adapter_set`` (None: the plain model). Call again after changing weights in place:
        every call bumps the adapter version, so no cached feature or embedding goes stale."""
        from .adapters import AdapterSet

        if adapter_set is not None:
            if not isinstance(adapter_set, AdapterSet):
                raise TypeError(f"set_adapters needs an AdapterSet or None; got {type(adapter_set).__name__}")
            adapter_set.config.check_base(self._loaded.config)
            adapter_set.to(self._loaded.device)
        sha = file_sha256(path) if path is not None else None
        with self._lock:
            old = self._version
            self._build_models(adapter_set)
            self._version = next(_VERSIONS)
            self._meta, self._path, self._sha256 = metadata, (str(path) if path else None), sha
            if adapter_set is not None:
                self._variant = adapter_set.variant
            self._texts.clear()  # keyed by version: old entries can never be hit again
            self._features.drop(lambda key: key[3] == old)  # dense features of the old adapters

    def _build_models(self, adapters) -> None:
        """``.vlsm`` on the shared fp32 weights (what the trainer uses) and the model that predicts:
        on a CPU in bf16/fp16, the same modules over a low-precision copy of the Linear/Conv weights
        (``cache.low_precision_base``, shared per model; identical results, 2x faster text encoder)."""
        import torch

        from .forward import VLSMModel

        lm = self._loaded
        self._vlsm = self._runner = VLSMModel(lm.model, adapters)
        if LOW_PRECISION_COPY and lm.device.type == "cpu" and lm.dtype != torch.float32:
            vision = lm.model.clip.vision_model.encoder.layers
            unused = range(max(self._vlsm.extract_layers) + 1, len(vision))  # never run: no copy
            skip = tuple(f"clip.vision_model.encoder.layers.{i}." for i in unused) + ("clip.visual_projection",)
            self._runner = VLSMModel(low_precision_base(lm.model, lm.dtype, skip), adapters)

    def clear_adapter(self) -> None:
        self.set_adapters(None)

    # ---------------------------------------------------------------------------- predict
    def predict(self, image, prompts, threshold: float = 0.5, window=None) -> list[Prediction]:
        """One 2D image, one or more prompts -> one Prediction per prompt (one image pass)."""
        prompts = clean_prompts(prompts)
        threshold = check_threshold(threshold)
        window = _check_window(window)
        img = preprocess.as_2d_image(image)
        with self._lock:
            probs = self._predict_safe([img], prompts, window)[0]
        return [Prediction(p, probs[i], threshold) for i, p in enumerate(prompts)]

    def predict_stack(self, stack, prompts, threshold: float = 0.5, batch_size: int = 8, window=None,
                      axis: int = 0, indices=None, rgb: bool | None = None
                      ) -> Iterator[tuple[int, list[Prediction]]]:
        """Segment a stack slice by slice, batched; yields ``(index, predictions)`` per slice.

        ``stack``: numpy or lazy (dask, memmap, zarr-like: ``.shape`` + ``__getitem__``); it is read
        one batch of slices at a time. ``window=None`` uses one window for the whole volume
        (``volume.volume_window``), ``"slice"`` one per slice, or pass ``(lo, hi)``. Stop iterating
        to cancel. For arrays with several leading axes the index is a tuple.
        """
        prompts = clean_prompts(prompts)  # validated now, not at the first next()
        threshold = check_threshold(threshold)
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ImageError(f"batch_size must be a positive integer; got {batch_size!r}")
        planes = StackPlanes.of(stack, axis=axis, rgb=rgb)
        order = planes.indices() if indices is None else [planes.check_index(i) for i in indices]
        if isinstance(window, str) and window == "slice":
            window = None
        elif window is None:
            window = volume_window(planes.array, rgb=planes.rgb)
        else:
            window = _check_window(window)
        return self._iter_stack(planes, order, prompts, threshold, int(batch_size), window)

    def _iter_stack(self, planes, order, prompts, threshold, batch_size, window):
        pos = 0
        while pos < len(order):
            chunk = order[pos: pos + batch_size]
            images = [preprocess.as_2d_image(planes.read(i)) for i in chunk]
            with self._lock:
                self._batch_limit = len(chunk)
                probs = self._predict_safe(images, prompts, window)
                batch_size = min(batch_size, self._batch_limit)  # keep a size that fitted in memory
            for index, prob in zip(chunk, probs):
                yield index, [Prediction(p, prob[k], threshold) for k, p in enumerate(prompts)]
            pos += len(chunk)

    # ---------------------------------------------------------------------------- internals
    def _inference(self) -> ExitStack:
        import torch

        stack = ExitStack()
        stack.enter_context(torch.inference_mode())
        if self._loaded.dtype != torch.float32:
            stack.enter_context(torch.autocast(self._loaded.device.type, dtype=self._loaded.dtype))
        return stack

    def _predict_safe(self, images, prompts, window) -> list[np.ndarray]:
        """``_predict_batch`` in chunks; on out-of-memory halve the chunk and go on with that size."""
        out, pos, size = [], 0, len(images)
        while pos < len(images):
            chunk = images[pos: pos + size]
            try:
                out += self._predict_batch(chunk, prompts, window)
            except Exception as err:
                if not _is_out_of_memory(err):
                    raise
                self._free_device_memory()
                if len(chunk) == 1:
                    raise VLSMError(
                        f"out of {self._loaded.device.type} memory for one {chunk[0].shape[:2]} image with "
                        f"{len(prompts)} prompt(s); use fewer prompts at once, precision fp16/bf16, "
                        "the CPU (--device cpu), or close other programs that use the GPU"
                    ) from None
                size = len(chunk) // 2
                self._batch_limit = min(self._batch_limit, size)  # predict_stack keeps this size
                continue
            pos += len(chunk)
        return out

    def _free_device_memory(self) -> None:
        import torch

        if self._loaded.device.type == "cuda":
            torch.cuda.empty_cache()

    def _predict_batch(self, images, prompts, window) -> list[np.ndarray]:
        """B images x P prompts -> B float32 arrays (P, H_b, W_b)."""
        with self._inference():
            feats = self._image_features(images, window)
            cond = self._text_embeddings(prompts)  # (P, proj)
            logits = self._decode(feats, cond)  # (B, P, S, S)
        return [self._probabilities(logits[b], img.shape[:2]) for b, img in enumerate(images)]

    def _image_features(self, images, window) -> list[list]:
        """Per image, the extracted encoder layers (1, T, D): from the cache or one batched pass."""
        lm = self._loaded
        version = self._version if self._vlsm.image_features_depend_on_adapters else None
        keys = [feature_key(image_digest(img), window, self._model_key, version) for img in images]
        found = {k: self._features.get(k) for k in dict.fromkeys(keys)}
        missing = [k for k, v in found.items() if v is None]  # unique keys: blank slices run once
        if missing:
            first = {k: images[keys.index(k)] for k in missing}
            px = preprocess.to_model_input(list(first.values()), lm.image_size, lm.image_mean, lm.image_std,
                                           window=window).to(lm.device)
            taps = self._runner.encode_image(px)  # list of (B, T, D)
            for j, k in enumerate(missing):
                # clone: a view would keep the whole batch tensor alive behind the cache's byte count
                found[k] = [t[j: j + 1].clone() if len(missing) > 1 else t for t in taps]
                self._features.put(k, found[k])
        return [found[k] for k in keys]

    def _text_embeddings(self, prompts):
        import torch

        unique = list(dict.fromkeys(prompts))
        found = {p: self._texts.get(p, self._version) for p in unique}
        missing = [p for p, v in found.items() if v is None]
        if missing:
            ids, mask = self._tokenize(missing)
            cond = self._runner.encode_text(ids, mask)  # (M, proj)
            for p, c in zip(missing, cond):
                found[p] = c
                self._texts.put(p, self._version, c)
        return torch.stack([found[p] for p in prompts])

    def _tokenize(self, prompts):
        tok = self._loaded.tokenizer
        limit = int(self._loaded.config.text_config.max_position_embeddings)
        for prompt in prompts:
            n = len(tok(prompt).input_ids)
            if n > limit:
                warnings.warn(
                    f"prompt {prompt[:40]!r}... has {n} tokens but CLIP reads at most {limit}: it was "
                    "truncated; a short phrase ('left kidney') works best", stacklevel=6,
                )
        enc = tok(prompts, padding=True, truncation=True, max_length=limit, return_tensors="pt")
        return enc.input_ids.to(self._loaded.device), enc.attention_mask.to(self._loaded.device)

    def _decode(self, feats: list[list], cond):
        """All images x all prompts in one decoder call -> logits (B, P, S, S)."""
        import torch

        n_img, n_prompt = len(feats), cond.shape[0]
        acts = [torch.cat([f[k] for f in feats]) for k in range(len(feats[0]))]  # (B, T, D) per layer
        acts = self._runner.adapt_image(acts)
        if n_img > 1:
            acts = [a.repeat_interleave(n_prompt, dim=0) for a in acts]  # (B*P, T, D): image-major
            cond = cond.repeat(n_img, 1)  # (B*P, proj)
        logits = self._runner.decode(acts, cond)  # (B*P, S, S)
        return logits.view(n_img, n_prompt, *logits.shape[-2:])

    def _probabilities(self, logits, hw) -> np.ndarray:
        """(P, s, s) logits -> float32 (P, H, W), a few prompts at a time to bound the peak."""
        h, w = hw
        out = np.empty((logits.shape[0], h, w), np.float32)
        step = max(1, PROB_CHUNK_BYTES // (h * w * 4 * 2))
        for i in range(0, logits.shape[0], step):
            out[i: i + step] = preprocess.logits_to_probability(logits[i: i + step], (h, w))
        return out

    # ------------------------------------------------------------------------- reporting
    def clear_cache(self) -> None:
        with self._lock:
            self._features.clear()
            self._texts.clear()

    def cache_stats(self) -> dict:
        return {"image": self._features.stats(), "text": self._texts.stats()}

    def info(self) -> dict:
        lm = self._loaded
        variant = self.variant
        if variant not in self._param_counts:
            self._param_counts[variant] = variant_parameters(lm.config, variant)
        return {
            "source": str(lm.source), "folder": str(lm.folder), "fingerprint": lm.fingerprint,
            "device": str(lm.device), "precision": lm.precision, "backend": lm.backend, "image_size": lm.image_size,
            "base_parameters": sum(p.numel() for p in lm.model.parameters()),
            "variant": variant, "trainable_parameters": self._param_counts[variant],
            "adapter_loaded": self.adapters is not None, "adapter_path": self._path,
            "cache": self.cache_stats(),
        }

    def provenance(self) -> dict:
        """What produced a mask: enough to reproduce it (stored with layers and output files)."""
        import torch
        import transformers

        from .. import __version__

        lm, meta = self._loaded, self._meta or {}
        return {
            "napari_vlsm": __version__, "model_source": str(lm.source), "model_fingerprint": lm.fingerprint,
            "variant": self.adapters.variant if self.adapters is not None else "none",
            "adapter_path": self._path, "adapter_sha256": self._sha256,
            "adapter_created": meta.get("created"), "precision": lm.precision, "backend": lm.backend,
            "device": str(lm.device),
            "torch": torch.__version__, "transformers": transformers.__version__,
        }
