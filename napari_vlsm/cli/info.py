"""``napari-vlsm info``: what a model (and adapter) is, how big, where and how it runs."""

from __future__ import annotations

import json

from .common import VARIANTS, add_model_args
from .segmenters import make_segmenter


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "info", help="model, adapter, parameter counts, device and precision",
        description="Load a model (and optionally an adapter) and report parameter counts "
                    "(base and trainable per adapter variant), device, precision and fingerprint.")
    add_model_args(p)
    p.add_argument("--variant", default="none", metavar="V",
                   help=f"adapter variant whose trainable parameters to report: {', '.join(VARIANTS)} "
                        "(an --adapter file's own variant wins)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=run)


def collect(args) -> dict:
    from ..core.engine import variant_parameters

    seg = make_segmenter(args, variant=args.variant)
    info = seg.info()
    info["trainable_parameters_by_variant"] = {v: variant_parameters(seg.loaded.config, v) for v in VARIANTS}
    if seg.adapter_metadata is not None:
        info["adapter_metadata"] = seg.adapter_metadata
        info["provenance"] = seg.provenance()
    return info


def _backend(name: str) -> str:
    """What runs the frozen parts (core/runtime, docs/runtime.md)."""
    if name == "onnx-int8":
        return "onnx-int8 (ONNX Runtime: image encoder int8, text encoder and decoder fp32)"
    if name == "onnx-fp32":
        return "onnx-fp32 (ONNX Runtime fp32: image encoder, text encoder, decoder)"
    return f"{name} (PyTorch)"


def _text(info: dict) -> str:
    lines = [
        f"model         {info['source']}",
        f"fingerprint   {info['fingerprint']}",
        f"device        {info['device']}",
        f"precision     {info['precision']}",
        f"backend       {_backend(info.get('backend', 'torch'))}",
        f"input size    {info['image_size']} x {info['image_size']}",
        f"base params   {info['base_parameters']:,}",
        f"variant       {info['variant']} ({info['trainable_parameters']:,} trainable)",
        "trainable parameters per variant:",
    ]
    lines += [f"  {v:<12} {n:>12,}" for v, n in info["trainable_parameters_by_variant"].items()]
    meta = info.get("adapter_metadata")
    if meta:
        lines.append(f"adapter       {info['adapter_path']}")
        for key in ("created", "base_model", "prompts", "metrics", "train", "versions"):
            if key in meta:
                lines.append(f"  {key:<11} {json.dumps(meta[key], default=str)}")
    return "\n".join(lines)


def run(args) -> int:
    info = collect(args)
    print(json.dumps(info, indent=2, default=str) if args.json else _text(info))
    return 0
