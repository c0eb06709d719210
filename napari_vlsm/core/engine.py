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
Its helpers each have their own module: ``model_input`` (tokens and pixels, shared with the
trainer), ``memory`` (out-of-memory), ``precision`` (autocast, the low-precision copy), ``cache``,
``validation`` (prompts, threshold, window), ``prediction`` and ``provenance``; the names the CLI
and the dock import from here (``Prediction``, ``clean_prompts``, ``check_threshold``,
``variant_parameters``, ``file_sha256``) stay importable from here.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from . import model_input, precision, preprocess, validation
from .cache import DEFAULT_CACHE_BYTES, FeatureCache, TextCache, feature_key, image_digest
from .constants import DEFAULT_MODEL
from .errors import VLSMError
from .memory import MemoryLimit
from .prediction import Prediction
from .provenance import file_sha256, provenance
from .volume import stack_request

# CPU + bf16/fp16: predict with a low-precision copy of the frozen weights (+~220 MB at the full
# architecture) instead of letting autocast cast every weight at every call. False: no copy.
LOW_PRECISION_COPY = True
_VERSIONS = itertools.count(1)  # adapter versions unique across Segmenters: no stale cache hit


def clean_prompts(prompts) -> list[str]:
    """One prompt or a list of them -> stripped strings; empty or non-text prompts raise PromptError."""
    return list(validation.clean_prompts(prompts))


check_threshold = validation.check_threshold  # the CLI checks its --threshold before loading a model


def variant_parameters(config, variant: str) -> int:
    """Trainable parameters of a variant's adapter set (``AdapterConfig.parameter_count``); 0 for 'none'."""
    from .adapters import AdapterConfig

    return AdapterConfig.from_variant(variant, config).parameter_count()


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
        (``low_precision.frozen_copy``, shared per model; identical results, 2x faster text encoder)."""
        import torch

        from .forward import VLSMModel

        lm = self._loaded
        self._vlsm = self._runner = VLSMModel(lm.model, adapters, lm.runtimes_for(lm.model))
        if LOW_PRECISION_COPY and lm.device.type == "cpu" and lm.dtype != torch.float32:
            copy = precision.frozen_copy(lm.model, lm.dtype)
            self._runner = VLSMModel(copy, adapters, lm.runtimes_for(copy))

    def clear_adapter(self) -> None:
        self.set_adapters(None)

    # ---------------------------------------------------------------------------- predict
    def predict(self, image, prompts, threshold: float = 0.5, window=None) -> list[Prediction]:
        """One 2D image, one or more prompts -> one Prediction per prompt (one image pass)."""
        prompts = clean_prompts(prompts)
        threshold = check_threshold(threshold)
        window = validation.check_window(window)
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
        return self._iter_stack(*stack_request(stack, prompts, threshold, batch_size, window, axis, indices, rgb))

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
    def _predict_safe(self, images, prompts, window) -> list[np.ndarray]:
        """``_predict_batch`` in chunks; on out-of-memory halve the chunk and go on with that size
        (``memory.MemoryLimit``, the trainer's too); ``_batch_limit`` keeps the size that fitted."""
        device = self._loaded.device.type

        def too_big():
            return VLSMError(
                f"out of {device} memory for one {images[0].shape[:2]} image with "
                f"{len(prompts)} prompt(s); use fewer prompts at once, precision fp16/bf16, "
                "the CPU (--device cpu), or close other programs that use the GPU"
            )

        limit = MemoryLimit(len(images), self._loaded.device, too_big)
        parts = limit.run(images, lambda chunk: self._predict_batch(chunk, prompts, window))
        self._batch_limit = min(self._batch_limit, limit.size)  # predict_stack keeps this size
        return [prob for part in parts for prob in part]

    def _predict_batch(self, images, prompts, window) -> list[np.ndarray]:
        """B images x P prompts -> B float32 arrays (P, H_b, W_b)."""
        with precision.inference(self._loaded):
            feats = self._image_features(images, window)
            cond = self._text_embeddings(prompts)  # (P, proj)
            logits = self._decode(feats, cond)  # (B, P, S, S)
        return [preprocess.probability_maps(logits[b], img.shape[:2]) for b, img in enumerate(images)]

    def _image_features(self, images, window) -> list[list]:
        """Per image, the extracted encoder layers (1, T, D): from the cache or one batched pass."""
        lm = self._loaded
        version = self._version if self._vlsm.image_features_depend_on_adapters else None
        keys = [feature_key(image_digest(img), window, self._model_key, version) for img in images]
        found = {k: self._features.get(k) for k in dict.fromkeys(keys)}
        missing = [k for k, v in found.items() if v is None]  # unique keys: blank slices run once
        if missing:
            first = {k: images[keys.index(k)] for k in missing}
            px = model_input.pixels(lm, list(first.values()), window)  # (M, 3, S, S)
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
            ids, mask = model_input.tokenize(self._loaded, missing)
            cond = self._runner.encode_text(ids, mask)  # (M, proj)
            for p, c in zip(missing, cond):
                found[p] = c
                self._texts.put(p, self._version, c)
        return torch.stack([found[p] for p in prompts])

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
        variant = self.adapters.variant if self.adapters is not None else "none"
        return provenance(self._loaded, variant, self._path, self._sha256, self._meta)
