"""Random-weight CLIPSeg checkpoints in the hub's file layout.

The hub cannot be reached from every machine (CI, firewalled hospitals), so tests, benchmarks
and the offline demo write a CLIPSeg of the real or a tiny architecture with ``save_pretrained``
and load it through exactly the path a user's local folder takes.

The tokenizer is a byte-level CLIP BPE with no merges: every character is a token. It is a valid
``CLIPTokenizer`` folder (vocab.json + merges.txt), only with a far smaller vocabulary than CLIP's.
"""

from __future__ import annotations

import json
from pathlib import Path

ARCHITECTURES = ("tiny", "full")


def _bytes_to_unicode() -> dict[int, str]:
    # The GPT-2/CLIP byte <-> printable-character table that byte-level BPE vocabularies use.
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


def write_byte_tokenizer(folder: Path) -> int:
    """Write vocab.json + merges.txt of a merge-free CLIP BPE; return the vocabulary size."""
    chars = list(_bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)  # the largest id, as in CLIP: argmax finds end-of-text
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    return len(vocab)


def clipseg_config(arch: str, vocab_size: int):
    from transformers import CLIPSegConfig

    eos = vocab_size - 1
    special = {"eos_token_id": eos, "bos_token_id": eos - 1, "pad_token_id": eos}
    if arch == "full":
        # The architecture of CIDAS/clipseg-rd64-refined (150,747,746 parameters).
        # CLIP's embedding table keeps its 49,408 rows; the byte tokenizer uses the first 514.
        return CLIPSegConfig(
            text_config={"vocab_size": max(vocab_size, 49408), **special},
            vision_config={"patch_size": 16},
            use_complex_transposed_convolution=True,
        )
    if arch == "tiny":
        return CLIPSegConfig(
            text_config=dict(
                vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                num_attention_heads=2, max_position_embeddings=77, **special,
            ),
            vision_config=dict(
                hidden_size=48, intermediate_size=96, num_hidden_layers=5, num_attention_heads=2,
                image_size=64, patch_size=16,
            ),
            projection_dim=32, extract_layers=[1, 2, 3], reduce_dim=16,
            decoder_num_attention_heads=2, decoder_intermediate_size=32,
            use_complex_transposed_convolution=True,
        )
    raise ValueError(f"unknown architecture {arch!r}; choose one of {ARCHITECTURES}")


def write_random_clipseg(folder: str | Path, arch: str = "tiny", seed: int = 0) -> Path:
    """Write a random-weight CLIPSeg (model, tokenizer, processor) into ``folder``; return it."""
    import torch
    from transformers import CLIPSegForImageSegmentation, CLIPSegProcessor, CLIPTokenizer

    try:  # transformers 5: the PIL processor by its own name (the plain name asks for torchvision,
        from transformers import ViTImageProcessorPil as ViTImageProcessor  # which must not be installed)
    except ImportError:  # transformers 4: the plain name is the PIL one
        from transformers import ViTImageProcessor

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab_size = write_byte_tokenizer(folder)
    config = clipseg_config(arch, vocab_size)
    torch.manual_seed(seed)
    model = CLIPSegForImageSegmentation(config)
    model.save_pretrained(folder)
    # CIDAS/clipseg-rd64-refined feeds 352 x 352 images to a ViT whose position embeddings were
    # made for 224 (interpolated at run time); the tiny model keeps its own size.
    size = 352 if arch == "full" else config.vision_config.image_size
    image_processor = ViTImageProcessor(
        do_resize=True, size={"height": size, "width": size}, resample=2,
        do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
        image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
    )
    tokenizer = CLIPTokenizer.from_pretrained(folder)
    CLIPSegProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder
