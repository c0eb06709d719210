"""The rules for what a user types: prompts (and their length in the text model's tokens), a
threshold, an intensity window, a slice index, a batch size.

One rule each, used by the engine, the trainer and the correction store (and through them the CLI
and the dock), so the same input never passes one and fails another. Each caller keeps its own
error class (``error=``): the store raises ``StoreError`` for a bad window, the engine
``ImageError``, and so on; the message is the same. No torch and no numpy here: the dock imports
this on start-up.
"""

from __future__ import annotations

import math
import numbers

from .errors import ImageError, PromptError, SettingError

MAX_PROMPT_CHARS = 1000  # refused before tokenizing: no tokenizer call on a megabyte of text
MAX_BATCH_SIZE = 64  # slices or samples per model call (docs/server.md, docs/training.md)


def clean_prompts(prompts, error: type[Exception] = PromptError, where: str = "") -> tuple[str, ...]:
    """One prompt or a list/tuple of them -> stripped strings, in order (repeats kept).

    Raises ``error`` for no prompt, a non-text prompt or an empty one; ``where`` (e.g. "training
    sample liver-3") starts the message.
    """
    at = f"{where}: " if where else ""
    items = [prompts] if isinstance(prompts, str) else prompts
    if not isinstance(items, (list, tuple)):
        raise error(f"{at}prompts must be a string or a list of strings; got {type(prompts).__name__}")
    if not items:
        raise error(f"{at}no prompt given; pass a text such as 'liver' or 'polyp'")
    out = []
    for i, prompt in enumerate(items):
        if not isinstance(prompt, str):
            raise error(f"{at}prompt {i + 1} is {type(prompt).__name__} {prompt!r}, not text; pass strings")
        if not prompt.strip():
            raise error(f"{at}prompt {i + 1} is empty (no prompt text); describe the structure, e.g. 'left kidney'")
        out.append(prompt.strip())
    return tuple(out)


def check_threshold(threshold, error: type[Exception] = SettingError) -> float:
    """A probability threshold: a real number in [0, 1] (bools, numpy's too, and NaN refused)."""
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise error(f"threshold must be a number in [0, 1]; got {threshold!r}")
    t = float(threshold)
    if not (0.0 <= t <= 1.0):  # also rejects NaN
        raise error(f"threshold must be in [0, 1]; got {threshold!r}; 0.5 is the usual choice")
    return t


def check_window(window, error: type[Exception] = ImageError) -> tuple[float, float] | None:
    """An intensity window: None (computed from the image) or two finite numbers low < high."""
    if window is None:
        return None
    try:
        lo, hi = (float(v) for v in window)
    except (TypeError, ValueError):
        raise error(f"intensity window must be two numbers (low, high) or None; got {window!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise error(
            f"intensity window must be finite with low < high; got ({lo}, {hi}); "
            "e.g. window=(-160, 240) for a CT abdomen or None to compute one"
        )
    return (lo, hi)


def check_positive_int(value, name: str, error: type[Exception] = SettingError) -> int:
    """A count such as ``batch_size``: an integer >= 1 (bool refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise error(f"{name} must be a positive integer; got {value!r}")
    return int(value)



def check_prompt_tokens(prompts, count_tokens, limit: int, error: type[Exception] = PromptError) -> tuple[str, ...]:
    """Prompts the text model reads whole: ``count_tokens(prompt)`` (start and end tokens included)
    at most ``limit`` (77 for CLIP). The engine cuts a longer prompt with a warning; a server, whose
    user sees no warning, refuses it with this message instead."""
    for i, prompt in enumerate(prompts):
        n = None if len(prompt) > MAX_PROMPT_CHARS else count_tokens(prompt)
        if n is None or n > limit:
            size = f"{len(prompt)} characters" if n is None else f"{n} tokens"
            raise error(f"prompt {i + 1} ({prompt[:40]!r}...) has {size}; the text model reads at most {limit} "
                        "tokens (about 60 words); a short phrase such as 'left kidney' works best")
    return tuple(prompts)


def check_slice_index(value, error: type[Exception] = SettingError):
    """Where a 2D correction sits in its volume: None, an index >= 0, or a list of them (bool refused)."""
    if value is None:
        return None
    items = value if isinstance(value, (list, tuple)) else [value]
    for item in items:
        if isinstance(item, bool) or not isinstance(item, numbers.Integral) or item < 0:
            raise error(f"slice index must be an integer >= 0 (or a list of them); got {value!r}")
    return list(value) if isinstance(value, (list, tuple)) else int(value)


def check_batch_size(value, error: type[Exception] = SettingError) -> int:
    """A batch size: an integer in 1..MAX_BATCH_SIZE (a huge one would only exhaust memory)."""
    value = check_positive_int(value, "batch_size", error)
    if value > MAX_BATCH_SIZE:
        raise error(f"batch_size must be at most {MAX_BATCH_SIZE}; got {value}")
    return value
