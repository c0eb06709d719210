"""CLIPSeg's forward, split into its image, text and decoder parts, with adapters inserted.

Why not ``CLIPSegForImageSegmentation.forward``: it runs both encoders under ``torch.no_grad()``
(no gradient can reach an adapter), it runs all 12 image blocks although blocks after the last
extracted layer never reach the decoder, and it cannot reuse one image pass for many prompts.
Here the encoder blocks are run one by one with the base model's own sub-modules, so the
numbers are CLIPSeg's numbers (tested against the stock forward) and adapters sit exactly at the
paper's insertion points.
"""

from __future__ import annotations

import torch
from torch import nn

from .adapters import AdapterSet


def _run_block(layer, x: torch.Tensor, mask: torch.Tensor | None, adapters: nn.ModuleDict | None):
    """One pre-norm CLIP encoder block; dense adapters act on each branch before its residual add."""
    h = layer.self_attn(hidden_states=layer.layer_norm1(x), attention_mask=mask)[0]
    if adapters is not None:
        h = adapters["attn"](h)
    x = x + h
    h = layer.mlp(layer.layer_norm2(x))
    if adapters is not None:
        h = adapters["mlp"](h)
    return x + h


def _get(blocks, i: int):
    key = str(i)
    return blocks[key] if key in blocks else None


def end_of_text_positions(input_ids: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """Index of the end-of-text token per row, with the same rule as transformers' CLIP text model."""
    if eos_token_id == 2:  # legacy configs: end-of-text is the largest id
        return input_ids.to(torch.int).argmax(dim=-1)
    return (input_ids == eos_token_id).int().argmax(dim=-1)


def _causal_mask(length: int, dtype: torch.dtype, device) -> torch.Tensor:
    # The end-of-text token only attends to tokens before it, which are never padding, so a pure
    # causal mask gives the same pooled output as transformers' causal + padding mask.
    mask = torch.full((length, length), torch.finfo(dtype).min, dtype=dtype, device=device)
    return torch.triu(mask, diagonal=1)[None, None]  # (1, 1, L, L)


class VLSMModel(nn.Module):
    """A frozen CLIPSeg plus an optional :class:`AdapterSet` (only the adapters can train).

    ``runtimes``: ONNX Runtime graphs of the frozen parts computed with ``base``'s own weights
    (``LoadedModel.runtimes_for(base)``; kind -> OnnxPart, CPUs without bf16), given by the caller;
    None or {} computes everything with torch.
    """

    def __init__(self, base, adapters: AdapterSet | None = None, runtimes: dict | None = None):
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.adapters = adapters
        self.extract_layers = tuple(int(i) for i in base.config.extract_layers)
        parts = dict(runtimes or {})
        self.runtimes = parts  # what a VLSMModel over the same base with other adapters gets too
        self.image_runtime = next((p for k, p in parts.items() if k.startswith("onnx-")), None)
        self.text_runtime = parts.get("text-fp32")
        self.decoder_runtime = parts.get("decoder-fp32")

    def detach_runtimes(self) -> None:
        """Compute everything with torch (exports, and the reference of agreement checks)."""
        self.image_runtime = self.text_runtime = self.decoder_runtime = None
        self.runtimes = {}

    # ----------------------------------------------------------------------------- image side
    def encode_image(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of the extracted image blocks, each (B, 1 + N_patches, D).

        Dense image adapters act inside the blocks; shallow ones come later (``adapt_image``), so
        for shallow and no-adapter variants this result does not depend on the adapters and can be
        cached across finetunes. Blocks after the last extracted layer are not run. With an
        given runtime (``core.runtime``) and no dense adapters, the runtime computes them.
        """
        runtime = self.image_runtime
        if runtime is not None and not self.image_features_depend_on_adapters and runtime.accepts(pixel_values):
            return runtime(pixel_values)
        vision = self.base.clip.vision_model
        x = vision.pre_layrnorm(vision.embeddings(pixel_values, interpolate_pos_encoding=True))
        dense = self.adapters.vision_dense if self.adapters is not None else {}
        taps = []
        for i in range(max(self.extract_layers) + 1):
            x = _run_block(vision.encoder.layers[i], x, None, _get(dense, i))
            if i in self.extract_layers:
                taps.append(x)
        return taps

    def adapt_image(self, activations: list[torch.Tensor]) -> list[torch.Tensor]:
        """Shallow image adapters on the decoder's inputs (the encoder stream is unchanged)."""
        if self.adapters is None or not len(self.adapters.vision_shallow):
            return list(activations)
        blocks = self.adapters.vision_shallow
        return [blocks[str(i)](a) for i, a in zip(self.extract_layers, activations)]

    @property
    def image_features_depend_on_adapters(self) -> bool:
        return self.adapters is not None and len(self.adapters.vision_dense) > 0

    # ------------------------------------------------------------------------------ text side
    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Conditional embeddings (P, projection_dim) of P tokenised prompts, text adapters included.

        ``attention_mask`` is accepted for symmetry with transformers; see ``_causal_mask`` for
        why the causal mask alone is exact at the end-of-text token.
        """
        adapters = self.adapters
        plain = adapters is None or not (len(adapters.text_dense) or len(adapters.text_shallow) or adapters.cond)
        if plain and self.text_runtime is not None and self.text_runtime.accepts(input_ids):
            return self.text_runtime(input_ids)[0]
        text = self.base.clip.text_model
        x = text.embeddings(input_ids=input_ids)  # (P, L, 512)
        mask = _causal_mask(input_ids.shape[1], x.dtype, x.device)
        eot = end_of_text_positions(input_ids, text.config.eos_token_id)
        rows = torch.arange(input_ids.shape[0], device=input_ids.device)
        dense = adapters.text_dense if adapters is not None else {}
        shallow = adapters.text_shallow if adapters is not None else {}
        taps = []
        for i, layer in enumerate(text.encoder.layers):
            x = _run_block(layer, x, mask, _get(dense, i))
            if str(i) in shallow:
                taps.append(shallow[str(i)](x[rows, eot]))  # (P, 512): end-of-text token only
        pooled = text.final_layer_norm(x)[rows, eot]
        cond = self.base.clip.text_projection(pooled)  # (P, projection_dim)
        if adapters is not None and adapters.cond is not None:
            cond = adapters.cond(cond)  # VLC: applied first, the text-layer terms are added after
        for term in taps:
            cond = cond + term
        return cond

    # -------------------------------------------------------------------------------- decoder
    def decode(self, activations: list[torch.Tensor], cond: torch.Tensor) -> torch.Tensor:
        """Logits (B, S, S) at the model resolution; activations already adapted."""
        if activations[0].shape[0] != cond.shape[0]:
            if activations[0].shape[0] != 1:
                raise ValueError("decode: as many conditional embeddings as images, or one image")
            activations = [a.expand(cond.shape[0], -1, -1) for a in activations]
        runtime = self.decoder_runtime  # frozen in every variant: usable whenever no gradient is needed
        if runtime is not None and not torch.is_grad_enabled() and runtime.accepts(*activations, cond):
            return runtime(*activations, cond)[0]
        return self.base.decoder(activations, cond).logits

    def forward(self, pixel_values, input_ids, attention_mask=None) -> torch.Tensor:
        activations = self.adapt_image(self.encode_image(pixel_values))
        return self.decode(activations, self.encode_text(input_ids, attention_mask))
