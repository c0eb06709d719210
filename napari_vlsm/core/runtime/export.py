"""Export the frozen image encoder to ONNX (and int8) once per model, into the user's cache.

Three frozen parts, one graph each (``kind``):

- ``onnx-int8`` / ``onnx-fp32``: ``VLSMModel.encode_image`` without adapters: the patch embedding,
  the interpolated position embedding for the model's input size, and the blocks up to the last
  extracted layer, whose outputs are the graph's outputs. Batch axis dynamic, input size fixed.
- ``text-fp32``: ``encode_text`` without adapters (prompts x tokens dynamic): the conditional
  embedding. fp32: ONNX Runtime runs the few-token products ~2x faster than torch, exactly.
- ``decoder-fp32``: ``decode`` (batch dynamic), frozen in every variant (adapters act on its inputs).

The cache folder is named by everything the graph depends on (model fingerprint, input size,
extracted layers, kind, onnxruntime version, this format's version). It is built in a temporary
folder beside it and renamed into place, so a crash or a concurrent export never leaves half a
folder; a process that loses the race uses the winner's. Only ONNX protobuf and JSON are written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
import warnings
from pathlib import Path

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: one graph.onnx per frozen part (1: image_encoder.onnx only)
GRAPH_NAME = "graph.onnx"
IMAGE_KINDS = ("onnx-fp32", "onnx-int8")
KINDS = (*IMAGE_KINDS, "text-fp32", "decoder-fp32")
META_NAME = "meta.json"


def cache_root() -> Path:
    """``$NAPARI_VLSM_RUNTIME_CACHE`` or the user's cache folder (platformdirs) / runtime."""
    env = os.environ.get("NAPARI_VLSM_RUNTIME_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("napari-vlsm")) / "runtime"


def cache_key(fingerprint: str, size: int, layers: tuple[int, ...], kind: str) -> str:
    import onnxruntime

    text = f"{fingerprint}|{size}|{layers}|{kind}|ort{onnxruntime.__version__}|v{FORMAT_VERSION}"
    return f"{fingerprint}-{size}-{kind}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _part_module(base, kind: str):
    """The frozen part ``kind`` of the plain model as an nn.Module returning a tuple (for export)."""
    import torch

    from ..forward import VLSMModel

    class Part(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vlsm = VLSMModel(base, None)
            self.vlsm.detach_runtimes()  # export torch's graph, never an attached runtime

        def forward(self, *inputs):
            if kind in IMAGE_KINDS:
                return tuple(self.vlsm.encode_image(inputs[0]))
            if kind == "text-fp32":
                return (self.vlsm.encode_text(inputs[0]),)
            return (self.vlsm.decode(list(inputs[:-1]), inputs[-1]),)

    return Part().eval()


def example_inputs(base, size: int, layers: tuple[int, ...], kind: str) -> dict:
    """name -> example tensor of each input of the ``kind`` graph (axis 0 dynamic everywhere)."""
    import torch

    config = base.config
    if kind in IMAGE_KINDS:
        return {"pixel_values": torch.zeros(1, 3, size, size)}
    if kind == "text-fp32":
        text = config.text_config
        return {"input_ids": torch.tensor([[text.bos_token_id, 10, 11, 12, text.eos_token_id]])}
    vision = config.vision_config
    tokens = (size // vision.patch_size) ** 2 + 1
    acts = {f"layer_{i}": torch.zeros(1, tokens, vision.hidden_size) for i in layers}
    return {**acts, "cond": torch.zeros(1, config.projection_dim)}


def output_names(layers: tuple[int, ...], kind: str) -> list[str]:
    if kind in IMAGE_KINDS:
        return [f"layer_{i}" for i in layers]
    return ["cond"] if kind == "text-fp32" else ["logits"]


def export_fp32(base, size: int, layers: tuple[int, ...], path: Path, kind: str = "onnx-fp32") -> None:
    import torch

    inputs = example_inputs(base, size, layers, kind)
    outputs = output_names(layers, kind)
    axes = {name: {0: "batch"} for name in [*inputs, *outputs]}
    if kind == "text-fp32":
        axes["input_ids"] = {0: "batch", 1: "tokens"}
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(_part_module(base, kind), tuple(inputs.values()), str(path), input_names=list(inputs),
                          output_names=outputs, dynamic_axes=axes, opset_version=17, dynamo=False)


def quantize_int8(source: Path, target: Path, reduce_range: bool = False) -> None:
    """Dynamic quantisation: int8 weights (per tensor), uint8 activations quantised per call.

    ``reduce_range``: 7-bit weights. CPUs without VNNI multiply uint8 x int8 pairs into int16 with
    saturation (VPMADDUBSW), which large values can overflow; 7 bits cannot (ONNX Runtime's advice),
    at about twice the rounding error.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs a "consider pre-processing" hint on the root logger
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, reduce_range=reduce_range)
    finally:
        root.setLevel(level)


def build(base, fingerprint: str, size: int, layers: tuple[int, ...], kind: str, check) -> tuple[Path, dict]:
    """The cached graph folder for this model and kind, exported now if missing.

    ``check(graph_path) -> dict`` measures agreement with torch; its result is stored in meta.json
    with the graph's sha256, so a later load needs neither torch's pass nor a new export.
    """
    root = cache_root()
    final = root / cache_key(fingerprint, size, layers, kind)
    if (final / META_NAME).is_file() and (final / GRAPH_NAME).is_file():
        return final, json.loads((final / META_NAME).read_text(encoding="utf-8"))
    if final.exists():  # a graph deleted by hand (or a cache cleaner): build it again
        shutil.rmtree(final, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    tmp.mkdir()  # not mkdtemp (0700): the folder follows the user's umask like any other
    try:
        log.warning("napari-vlsm: preparing the %s graph for this CPU (once per model, seconds)", kind)
        graph = tmp / GRAPH_NAME
        extra = {}
        if kind == "onnx-int8":
            fp32 = tmp / "fp32.onnx"
            export_fp32(base, size, layers, fp32, "onnx-fp32")
            quantize_int8(fp32, graph)
            agreement = check(graph)
            if not agreement["ok"]:  # saturation on a CPU without VNNI? 7-bit weights cannot saturate
                first = agreement
                quantize_int8(fp32, graph, reduce_range=True)
                agreement = check(graph)
                extra = {"reduce_range": True, "agreement_8bit": first}
            fp32.unlink()
        else:
            export_fp32(base, size, layers, graph, kind)
            agreement = check(graph)
        meta = {"kind": kind, "fingerprint": fingerprint, "size": size, "layers": list(layers),
                "sha256": file_sha256(graph), "bytes": graph.stat().st_size, "format": FORMAT_VERSION,
                "agreement": agreement, **extra}
        (tmp / META_NAME).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        try:
            os.rename(tmp, final)
        except OSError:  # another process finished first: use its folder
            if not (final / META_NAME).is_file():
                raise
        return final, json.loads((final / META_NAME).read_text(encoding="utf-8"))
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
