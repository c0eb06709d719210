"""Shallow-adapter training the plain transformers way: what bench_training.py's "plain" side runs.

This is how the VLSM-Adapter authors' code (and anyone starting from transformers) trains shallow
adapters: every step runs CLIPSeg's stock ``clip.vision_model`` (all 12 blocks, hidden states kept)
and ``clip.text_model`` under autocast (mixed precision), applies the adapters to the extracted
hidden states, runs the stock decoder, and backpropagates. The adapters, the loss (soft Dice + BCE),
fused AdamW with the paper's settings and gradient clipping are napari-vlsm's own, so that the only
differences from the fast path are the ones the comparison is about: the frozen encoders re-run on
every batch, and transformers' modules instead of napari-vlsm's trainer (no low-precision weight
copy, no skipped blocks, stock attention and MLP kernels).
"""

from __future__ import annotations

import numpy as np
import torch

from napari_vlsm.core.forward import end_of_text_positions
from napari_vlsm.core.metrics import dice_bce_loss
from napari_vlsm.core.training.run import batch_stream


class PlainShallowTraining:
    """One optimiser step at a time over preprocessed pixels, the transformers way."""

    def __init__(self, model, adapters, input_ids: torch.Tensor, attention_mask: torch.Tensor, amp, lr: float,
                 weight_decay: float, grad_clip: float):
        self.model, self.adapters, self.amp, self.grad_clip = model, adapters, amp, grad_clip
        for p in model.parameters():
            p.requires_grad_(False)
        # the tokenizer's own mask: CLIP pads with its end-of-text token, so ids != pad would hide it
        self.input_ids, self.attention_mask = input_ids, attention_mask
        self.extract = [int(i) for i in model.config.extract_layers]
        self.params = [p for p in adapters.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=lr, weight_decay=weight_decay, fused=True)

    def logits(self, pixels: torch.Tensor, prompt_idx: list[int]) -> torch.Tensor:
        clip, adapters = self.model.clip, self.adapters
        vision = clip.vision_model(pixels, output_hidden_states=True, interpolate_pos_encoding=True)
        activations = [adapters.vision_shallow[str(i)](vision.hidden_states[i + 1]) for i in self.extract]
        ids, mask = self.input_ids[prompt_idx], self.attention_mask[prompt_idx]
        text = clip.text_model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        cond = clip.text_projection(text.pooler_output)
        if adapters.cond is not None:
            cond = adapters.cond(cond)
        eot = end_of_text_positions(ids, clip.text_model.config.eos_token_id)
        rows = torch.arange(len(prompt_idx))
        for key in sorted(adapters.text_shallow.keys(), key=int):
            cond = cond + adapters.text_shallow[key](text.hidden_states[int(key) + 1][rows, eot])
        return self.model.decoder(activations, cond).logits

    def step(self, pixels: torch.Tensor, targets: torch.Tensor, prompt_idx: list[int]) -> float:
        self.opt.zero_grad(set_to_none=True)
        with self.amp():
            logits = self.logits(pixels, prompt_idx)
        loss = dice_bce_loss(logits, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.opt.step()
        return loss.item()


def epoch_batches(n: int, batch_size: int, seed: int) -> list[list[int]]:
    """The trainer's first epoch of batches for this seed (its own batch stream)."""
    batches = []
    for _, idx, last in batch_stream(n, batch_size, np.random.default_rng(seed)):
        batches.append(idx)
        if last:
            return batches
