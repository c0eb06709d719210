"""The adapter set of a variant: its modules, built beside the frozen base model, not inside it.

Instead of patching CLIPSeg's modules (peft's way), ``forward.VLSMModel`` runs the encoder blocks
itself and calls these adapters at the paper's insertion points; the base model stays untouched,
so one loaded CLIPSeg can serve any number of adapter sets (e.g. "base" vs "trained" for Dice
before → after) without reloading.
"""

from __future__ import annotations

from torch import nn

from .block import AdapterBlock
from .config import AdapterConfig


def _dense_blocks(layers, dim: int, r: int) -> nn.ModuleDict:
    # x = x + A(attn(ln1(x))), x = x + A(mlp(ln2(x))) in each of these blocks
    return nn.ModuleDict(
        {str(i): nn.ModuleDict({"attn": AdapterBlock(dim, r), "mlp": AdapterBlock(dim, r)}) for i in layers}
    )


class AdapterSet(nn.Module):
    """All adapter blocks of one variant, keyed by where they are inserted.

    vision_shallow[str(i)]: A(768, 512) on extracted image layer i on its way to the decoder.
    text_shallow[str(i)]:   A(512, 512) on the end-of-text token of text block i, added to cond.
    vision_dense[str(i)] / text_dense[str(i)]: {"attn", "mlp"} A(d, 64) inside encoder block i.
    cond:                   A(512, 256) on the conditional (projected text) embedding.
    """

    def __init__(self, config: AdapterConfig):
        super().__init__()
        self.config = config
        shallow, dense = config.style == "shallow", config.style == "dense"
        r = config.bottleneck
        self.vision_shallow = nn.ModuleDict(
            {str(i): AdapterBlock(config.vision_dim, r) for i in config.extract_layers}
            if shallow and config.vision
            else {}
        )
        self.text_shallow = nn.ModuleDict(
            {str(i): AdapterBlock(config.text_dim, r) for i in config.extract_layers}
            if shallow and config.text
            else {}
        )
        self.vision_dense = _dense_blocks(config.dense_layers if dense and config.vision else (), config.vision_dim, r)
        self.text_dense = _dense_blocks(config.dense_layers if dense and config.text else (), config.text_dim, r)
        self.cond = AdapterBlock(config.projection_dim, config.cond_bottleneck) if config.conditional else None

    @property
    def variant(self) -> str:
        return self.config.variant

    def blocks(self) -> list[AdapterBlock]:
        return [m for m in self.modules() if isinstance(m, AdapterBlock)]

    def zero_up(self) -> None:
        """Make every block the identity (the starting point of an 'identity' initialisation)."""
        for block in self.blocks():
            block.zero_up()

    def reset_parameters(self) -> None:
        for block in self.blocks():
            block.reset_parameters()


def build_adapters(config: AdapterConfig) -> AdapterSet | None:
    """The adapter set of a variant, or None for ``none`` (the plain frozen model)."""
    if config.style == "none":
        return None
    return AdapterSet(config)


def count_trainable(module: nn.Module | None) -> int:
    if module is None:
        return 0
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
