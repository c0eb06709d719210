"""The one path from a prompt and an image to the model's input, for prediction and training alike.

The engine (``engine.Segmenter``) and the trainer (``training.prepare``) both call these functions,
so what a model learns from is exactly what it predicts on:

* :func:`tokenize`: one truncation rule, the text model's ``max_position_embeddings`` (a longer
  prompt would index past the position table), with a warning that names the prompt;
* :func:`pixels`: ``preprocess.to_model_input`` with the intensity window of each image (a
  volume's one window, or the window a stored correction was predicted with), on the model's device;
* :func:`window_of`: the window a sample carries (``None``: computed from the image itself).

Out-of-memory handling for both lives in ``core.memory``. torch is imported inside the functions.
"""

from __future__ import annotations

import warnings

from . import preprocess


def token_limit(loaded) -> int:
    """The most tokens the text model reads (77 for CLIP), end-of-text included."""
    return int(loaded.config.text_config.max_position_embeddings)


def tokenize(loaded, prompts: list[str]):
    """Prompts -> ``(input_ids, attention_mask)``, each (P, L) on the model's device, padded to the
    longest prompt and truncated to :func:`token_limit` (the end-of-text token is kept)."""
    tok, limit = loaded.tokenizer, token_limit(loaded)
    for prompt in prompts:
        n = len(tok(prompt).input_ids)
        if n > limit:
            warnings.warn(
                f"prompt {prompt[:40]!r}... has {n} tokens but CLIP reads at most {limit}: it was "
                "truncated; a short phrase ('left kidney') works best", stacklevel=3,
            )
    enc = tok(list(prompts), padding=True, truncation=True, max_length=limit, return_tensors="pt")
    return enc.input_ids.to(loaded.device), enc.attention_mask.to(loaded.device)


def pixels(loaded, images: list, window=None):
    """Images -> the float32 model input (B, 3, S, S) on the model's device.

    ``window``: None (each image its own window), one ``(lo, hi)`` for all, or one per image
    (``(lo, hi)`` or None each), as in ``preprocess.to_model_input``.
    """
    px = preprocess.to_model_input(images, loaded.image_size, loaded.image_mean, loaded.image_std, window=window)
    return px.to(loaded.device)


def window_of(sample):
    """The intensity window stored with a correction sample (``Sample.window``), or None."""
    return getattr(sample, "window", None)
