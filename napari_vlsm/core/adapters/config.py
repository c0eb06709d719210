"""The six adapter variants of the paper as named configurations."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..constants import VARIANTS
from ..errors import AdapterError

# Bottleneck widths of the paper: shallow r = 512 on image/text layers, dense r = 64 in blocks,
# and the conditional-embedding adapter A(512, 256) of the VLC scope.
SHALLOW_R = 512
DENSE_R = 64
COND_R = 256


@dataclass(frozen=True)
class AdapterConfig:
    """Everything needed to rebuild an adapter set without the base model's weights."""

    variant: str
    style: str  # "none" | "shallow" | "dense"
    scope: str  # "" | "v" | "vl" | "vlc"
    vision_dim: int
    text_dim: int
    projection_dim: int
    extract_layers: tuple[int, ...]
    bottleneck: int = 0
    cond_bottleneck: int = COND_R
    dense_layers: tuple[int, ...] = field(default_factory=tuple)

    @property
    def vision(self) -> bool:
        return "v" in self.scope

    @property
    def text(self) -> bool:
        return "l" in self.scope

    @property
    def conditional(self) -> bool:
        return "c" in self.scope

    @classmethod
    def from_variant(cls, variant: str, clipseg_config) -> AdapterConfig:
        if variant not in VARIANTS:
            raise AdapterError(f"unknown adapter variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        style, _, scope = variant.partition("-")
        if style == "shallow" and "l" in scope and (
            clipseg_config.text_config.hidden_size != clipseg_config.projection_dim
        ):
            # The shallow text terms are added to the conditional embedding: widths must agree.
            raise AdapterError(
                f"variant {variant!r} needs text width == projection width "
                f"({clipseg_config.text_config.hidden_size} != {clipseg_config.projection_dim})"
            )
        extract = tuple(int(i) for i in clipseg_config.extract_layers)
        # Dense adapters sit in the blocks before the last extracted one (0…8 for layers 3, 6, 9):
        # nothing after the last extracted layer reaches the decoder.
        dense_layers = tuple(range(max(extract))) if style == "dense" else ()
        return cls(
            variant=variant,
            style=style,
            scope=scope,
            vision_dim=clipseg_config.vision_config.hidden_size,
            text_dim=clipseg_config.text_config.hidden_size,
            projection_dim=clipseg_config.projection_dim,
            extract_layers=extract,
            bottleneck={"shallow": SHALLOW_R, "dense": DENSE_R}.get(style, 0),
            dense_layers=dense_layers,
        )

    def parameter_count(self) -> int:
        """Trainable parameters of this variant's adapter set, from its sizes alone (nothing is
        built; a test keeps it equal to ``count_trainable(build_adapters(config))``)."""
        r, shallow_layers = self.bottleneck, len(set(self.extract_layers))
        widths = [w for on, w in ((self.vision, self.vision_dim), (self.text, self.text_dim)) if on]
        count = 0
        if self.style == "shallow":  # one block per extracted layer and encoder
            count += sum(shallow_layers * block_parameters(w, r) for w in widths)
        elif self.style == "dense":  # an "attn" and an "mlp" block per dense layer and encoder
            count += sum(len(set(self.dense_layers)) * 2 * block_parameters(w, r) for w in widths)
        if self.conditional:
            count += block_parameters(self.projection_dim, self.cond_bottleneck)
        return count

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> AdapterConfig:
        try:
            cfg = cls(
                variant=str(data["variant"]),
                style=str(data["style"]),
                scope=str(data["scope"]),
                vision_dim=int(data["vision_dim"]),
                text_dim=int(data["text_dim"]),
                projection_dim=int(data["projection_dim"]),
                extract_layers=tuple(int(i) for i in data["extract_layers"]),
                bottleneck=int(data["bottleneck"]),
                cond_bottleneck=int(data.get("cond_bottleneck", COND_R)),
                dense_layers=tuple(int(i) for i in data.get("dense_layers", ())),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise AdapterError(f"adapter metadata is incomplete or malformed ({err!r})") from None
        if cfg.variant not in VARIANTS or cfg.variant != _variant_name(cfg.style, cfg.scope):
            raise AdapterError(f"adapter metadata names an unknown variant {cfg.variant!r}")
        return cfg

    def check_base(self, clipseg_config) -> None:
        """Refuse a base model whose architecture does not fit these adapters."""
        expected = AdapterConfig.from_variant(self.variant, clipseg_config)
        mine = (self.vision_dim, self.text_dim, self.projection_dim, self.extract_layers)
        theirs = (expected.vision_dim, expected.text_dim, expected.projection_dim, expected.extract_layers)
        if mine != theirs:
            raise AdapterError(
                "this adapter was made for another base architecture "
                f"(vision/text/projection width and extracted layers {mine}, the loaded model has {theirs}); "
                "load the base model it was trained on, or train a new adapter"
            )
        # Checked before anything is built: a file claiming a huge bottleneck or thousands of dense
        # layers would otherwise allocate gigabytes before the tensor shapes could be compared.
        mine = (self.style, self.scope, self.bottleneck, self.cond_bottleneck, self.dense_layers)
        theirs = (expected.style, expected.scope, expected.bottleneck, expected.cond_bottleneck,
                  expected.dense_layers)
        if mine != theirs:
            raise AdapterError(
                f"adapter settings {mine} do not match the {self.variant} variant {theirs}; "
                "the adapter file is damaged or was edited: train a new adapter"
            )


def block_parameters(dim: int, bottleneck: int) -> int:
    """Weights and biases of one ``AdapterBlock(dim, bottleneck)``: down d x r + r, up r x d + d."""
    return 2 * dim * bottleneck + bottleneck + dim


def _variant_name(style: str, scope: str) -> str:
    return style if style == "none" else f"{style}-{scope}"
