"""Caches that let one image pass serve many prompts, thresholds and finetunes.

``FeatureCache`` holds the image encoder's outputs (about 90 % of a CLIPSeg forward) per image,
bounded by bytes, least recently used evicted first. Its key says everything the features depend
on: the image's bytes, shape and dtype, the intensity window, the model (fingerprint, input size,
compute precision) and -- only for dense adapters, which sit inside the encoder -- the adapter
state. Shallow adapters act after the encoder, so their features survive a finetune.

``TextCache`` maps (prompt, adapter version) to the conditional embedding (a few KB each).

No torch import here: sizes are read from the tensors themselves (duck typing), so the module
stays importable by anything napari loads on start-up.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np

from .precision import low_precision_base  # noqa: F401 - moved to precision.py; importable here for older callers

DEFAULT_CACHE_BYTES = 512 * 2**20


def tensor_nbytes(value) -> int:
    """Bytes held by a tensor, an array, or a (nested) list/tuple of them."""
    if isinstance(value, (list, tuple)):
        return sum(tensor_nbytes(v) for v in value)
    if hasattr(value, "element_size") and hasattr(value, "numel"):  # torch.Tensor
        return int(value.element_size() * value.numel())
    if hasattr(value, "nbytes"):
        return int(value.nbytes)
    raise TypeError(f"cannot size a cache value of type {type(value).__name__}")


def image_digest(image: np.ndarray) -> str:
    """sha1 of the pixels plus shape and dtype (the same bytes in another shape are another image)."""
    arr = np.ascontiguousarray(image)
    h = hashlib.sha1(arr.view(np.uint8).reshape(-1).data if arr.size else b"")
    h.update(f"{arr.shape}|{arr.dtype.str}".encode())
    return h.hexdigest()


def feature_key(digest: str, window, model_key: str, adapter_version: int | None) -> tuple:
    """The full cache key; ``adapter_version`` is None when the features do not depend on adapters."""
    window_key = "auto" if window is None else tuple(float(v) for v in window)
    return (digest, window_key, model_key, adapter_version)


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    skipped: int = 0  # entries larger than the whole budget (never stored)

    def as_dict(self) -> dict:
        return {"hits": self.hits, "misses": self.misses, "evictions": self.evictions, "skipped": self.skipped}


class FeatureCache:
    """A bytes-bounded LRU of image features (lists of tensors)."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES):
        if max_bytes < 0:
            raise ValueError(f"cache budget must be >= 0 bytes; got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[Hashable, tuple[object, int]] = OrderedDict()
        self._bytes = 0
        self._stats = CacheStats()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, key: Hashable):
        """The value for ``key`` (now the most recently used), or None; counts a hit or a miss."""
        entry = self._entries.get(key)
        if entry is None:
            self._stats.misses += 1
            return None
        self._entries.move_to_end(key)
        self._stats.hits += 1
        return entry[0]

    def put(self, key: Hashable, value, nbytes: int | None = None) -> bool:
        """Store ``value``; evict least recently used entries to stay within budget.

        Returns False (and stores nothing) when the value alone is larger than the budget: evicting
        everything for one entry that would itself be evicted next is pure loss.
        """
        size = tensor_nbytes(value) if nbytes is None else int(nbytes)
        if key in self._entries:
            self._bytes -= self._entries.pop(key)[1]
        if size > self.max_bytes:
            self._stats.skipped += 1
            return False
        while self._entries and self._bytes + size > self.max_bytes:
            _, (_, old) = self._entries.popitem(last=False)
            self._bytes -= old
            self._stats.evictions += 1
        self._entries[key] = (value, size)
        self._bytes += size
        return True

    def drop(self, predicate) -> int:
        """Remove every entry whose key satisfies ``predicate`` (e.g. features of old dense adapters,
        which can never be hit again); returns how many were removed."""
        dead = [key for key in self._entries if predicate(key)]
        for key in dead:
            self._bytes -= self._entries.pop(key)[1]
        return len(dead)

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def stats(self) -> dict:
        return {**self._stats.as_dict(), "entries": len(self._entries), "bytes": self._bytes,
                "max_bytes": self.max_bytes}


class TextCache:
    """(prompt, adapter version) -> conditional embedding; bounded by entry count (each is ~2 KB)."""

    def __init__(self, max_entries: int = 1024):
        self.max_entries = int(max_entries)
        self._entries: OrderedDict[tuple[str, int], object] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, prompt: str, adapter_version: int):
        value = self._entries.get((prompt, adapter_version))
        if value is None:
            self.misses += 1
            return None
        self._entries.move_to_end((prompt, adapter_version))
        self.hits += 1
        return value

    def put(self, prompt: str, adapter_version: int, value) -> None:
        self._entries[(prompt, adapter_version)] = value
        self._entries.move_to_end((prompt, adapter_version))
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def stats(self) -> dict:
        return {"hits": self.hits, "misses": self.misses, "entries": len(self._entries)}
