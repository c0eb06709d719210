"""Hub id or local folder → a frozen CLIPSeg ready for inference, offline-first.

A local folder never touches the network. A hub id is looked up in the local Hugging Face cache
first; the network is tried only when the cache misses and ``HF_HUB_OFFLINE`` is not set. Only
safetensors weights are read (no pickle) and ``trust_remote_code`` is never passed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from .constants import DEFAULT_MODEL, DEVICES, PRECISIONS
from .errors import ModelLoadError
from .model_source import MODEL_FILES, hub_offline, is_hub_id

log = logging.getLogger(__name__)

TOKENIZER_FILES = (("vocab.json", "merges.txt"), ("tokenizer.json",))
HUB_PATTERNS = ["config.json", "model.safetensors", "*.json", "vocab.json", "merges.txt"]
# CLIPSeg's published preprocessing, used when a folder has no processor config.
CLIP_SIZE, IMAGENET_MEAN, IMAGENET_STD = 352, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass
class LoadedModel:
    model: object  # CLIPSegForImageSegmentation, eval mode, every parameter frozen
    tokenizer: object
    source: str
    folder: Path
    fingerprint: str
    device: object  # torch.device
    dtype: object  # compute dtype used under autocast
    image_size: int
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    backend: str = "torch"  # what computes the frozen image encoder: torch, onnx-fp32, onnx-int8
    # ONNX Runtime graphs of the frozen parts (kind -> OnnxPart; {} with torch): core/runtime
    runtimes: dict = field(default_factory=dict)

    def runtimes_for(self, base) -> dict:
        """The runtimes a ``VLSMModel`` over ``base`` may use: this model's own, when ``base``
        computes with the same frozen weights (the model itself, or the trainer's modules around
        its tensors); {} for a low-precision copy, whose numbers the graphs do not reproduce."""
        try:
            same = (base.clip.vision_model.embeddings.patch_embedding.weight
                    is self.model.clip.vision_model.embeddings.patch_embedding.weight)
        except AttributeError:
            same = False
        return self.runtimes if same else {}

    @property
    def config(self):
        return self.model.config

    @property
    def precision(self) -> str:
        import torch

        return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]


def resolve_device(name: str = "auto"):
    import torch

    if name not in DEVICES:
        raise ModelLoadError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    if name == "auto":
        # MPS only when asked for: it has not been measured faster for this model yet.
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device 'cuda' was asked for but no CUDA GPU is available; use --device cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelLoadError("device 'mps' was asked for but Apple MPS is not available; use --device cpu")
    return torch.device(name)


def cpu_has_native_bf16() -> bool:
    """True on CPUs with bf16 instructions (AVX512-BF16 or AMX), where bf16 autocast is 2-4x faster.

    ``NAPARI_VLSM_NATIVE_BF16=0`` (or 1) overrides the detection: to run what a CPU without bf16
    runs (benchmarks, tests), or to keep fp32 where bf16 is present but slow."""
    override = os.environ.get("NAPARI_VLSM_NATIVE_BF16", "").strip().lower()
    if override in ("0", "false", "no", "1", "true", "yes"):
        return override in ("1", "true", "yes")
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:  # macOS/Windows: no cpuinfo; stay with fp32 unless asked
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(name: str, device):
    import torch

    if name not in PRECISIONS:
        raise ModelLoadError(f"unknown precision {name!r}; choose one of {', '.join(PRECISIONS)}")
    if name == "auto":
        if device.type == "cuda":
            return torch.float16
        if device.type == "cpu" and cpu_has_native_bf16():
            return torch.bfloat16
        return torch.float32
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def resolve_folder(source: str | os.PathLike) -> Path:
    """A local folder holding the model files; downloads only for a hub id, only when allowed."""
    source = str(source)
    if not is_hub_id(source):  # the dock's notice reads the same rule (core/model_source.py)
        folder = Path(source).expanduser()
        if not folder.is_dir():
            raise ModelLoadError(f"model folder {folder} does not exist; pass a folder in the hub's layout or a hub id")
        return folder
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(source, allow_patterns=HUB_PATTERNS, local_files_only=True))
    except Exception:  # not in the cache (or the cache is incomplete): go online if allowed
        pass
    if hub_offline():
        reason = "HF_HUB_OFFLINE is set and the model is not in the local Hugging Face cache"
    else:
        try:
            return Path(snapshot_download(source, allow_patterns=HUB_PATTERNS))
        except Exception as err:  # network down, firewall, unknown repo, ...
            reason = f"it could not be downloaded ({type(err).__name__}: {str(err).splitlines()[0][:200]})"
    raise ModelLoadError(
        f"model {source!r} is not available: {reason}. Fix: on a connected machine run "
        f"`hf download {source} --local-dir clipseg` and pass that folder as the model "
        "(--model /path/to/clipseg), or copy a Hugging Face cache that holds it into HF_HOME."
    )


def check_folder(folder: Path) -> None:
    missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
    if not (folder / "model.safetensors").is_file() and any(folder.glob("*.bin")):
        raise ModelLoadError(
            f"{folder} holds only pickle weights (*.bin); napari-vlsm reads safetensors only. "
            "Download model.safetensors from the hub or convert the weights with safetensors."
        )
    if not any(all((folder / f).is_file() for f in group) for group in TOKENIZER_FILES):
        missing.append("vocab.json + merges.txt (or tokenizer.json)")
    if missing:
        raise ModelLoadError(
            f"model folder {folder} is incomplete: missing {', '.join(missing)}. "
            "It needs the hub's file layout (config.json, model.safetensors, vocab.json, merges.txt, "
            "tokenizer_config.json, preprocessor_config.json); download the whole model again."
        )


def read_image_processing(folder: Path) -> tuple[int, tuple, tuple]:
    """Input size, mean and std from preprocessor_config.json or processor_config.json."""
    for name in ("preprocessor_config.json", "processor_config.json"):
        path = folder / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ModelLoadError(f"{path} is not valid JSON ({err}); download the model again") from None
        try:
            data = data.get("image_processor", data)
            size = data.get("size", CLIP_SIZE)
            if isinstance(size, dict):
                size = size.get("height", size.get("shortest_edge", CLIP_SIZE))
            mean = tuple(float(v) for v in data.get("image_mean", IMAGENET_MEAN))
            std = tuple(float(v) for v in data.get("image_std", IMAGENET_STD))
            size = int(size)
        except (AttributeError, TypeError, ValueError):  # a list, a string, "size": "big", ...
            size, mean, std = 0, (), ()
        if not (0 < size <= 4096 and len(mean) == len(std) == 3 and all(v > 0 for v in std)):
            raise ModelLoadError(
                f"{path} holds unusable image settings (size, image_mean, image_std); "
                "download the model again"
            )
        return size, mean, std
    return CLIP_SIZE, IMAGENET_MEAN, IMAGENET_STD


# Parameters this package never reads: a checkpoint without them still segments correctly.
UNUSED_PARAMETERS = ("clip.visual_projection.", "clip.logit_scale", "clip.vision_model.post_layernorm.")


def check_complete(folder: Path, model, info: dict) -> None:
    """Refuse weights that lack parameters: transformers would fill them with random numbers and
    (with its log silenced) the model would give wrong masks without a word."""
    params = dict(model.named_parameters())
    missing = sorted(k for k in info.get("missing_keys", ()) if k in params and not k.startswith(UNUSED_PARAMETERS))
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ModelLoadError(
            f"{folder / 'model.safetensors'} lacks {len(missing)} weight tensor(s) ({shown}); the file is "
            "incomplete or belongs to another model: download the model again"
        )


def fingerprint_model(model) -> str:
    """Identity of a base model: config + name, shape and leading values of every tensor (fast)."""
    import torch

    h = hashlib.sha256(model.config.to_json_string(use_diff=False).encode())
    with torch.no_grad():
        for name, tensor in sorted(model.state_dict().items()):
            h.update(name.encode())
            h.update(str(tuple(tensor.shape)).encode())
            h.update(tensor.detach().flatten()[:256].float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def load_model(source: str | os.PathLike = DEFAULT_MODEL, device: str = "auto", precision: str = "auto",
               backend: str = "auto") -> LoadedModel:
    """Load CLIPSeg from a hub id or a local folder; every parameter is frozen.

    ``backend`` computes the frozen image encoder: ``auto`` (``runtime.choice``: ONNX Runtime int8
    on a CPU without native bf16 when precision is auto, torch elsewhere), ``torch``, ``onnx-fp32``
    or ``onnx-int8``. A runtime that cannot be prepared or disagrees with torch falls back to torch
    with a warning; ``LoadedModel.backend`` says what runs.
    """
    import torch
    from transformers import CLIPSegForImageSegmentation, CLIPTokenizer
    from transformers.utils import logging as hf_logging

    from . import runtime

    runtime.check_backend(backend)
    dev = resolve_device(device)
    # an explicit ONNX backend computes in fp32/int8: "auto" precision means fp32 with it
    dtype = resolve_precision("fp32" if precision == "auto" and backend.startswith("onnx") else precision, dev)
    backend = runtime.resolve_backend(backend, dev, dtype, precision)
    folder = resolve_folder(source)
    check_folder(folder)
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"{folder / 'config.json'} is not valid JSON ({err}); download the model again") from None
    if not isinstance(config, dict):
        raise ModelLoadError(f"{folder / 'config.json'} is not a JSON object; download the model again")
    model_type = config.get("model_type")
    if model_type != "clipseg":
        raise ModelLoadError(
            f"{folder} holds a {model_type!r} model, not CLIPSeg; "
            f"use a CLIPSeg checkpoint such as {DEFAULT_MODEL}"
        )
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # no "weights not initialised" chatter for a user
    hf_logging.disable_progress_bar()
    try:
        model, info = CLIPSegForImageSegmentation.from_pretrained(
            folder, use_safetensors=True, local_files_only=True, output_loading_info=True)
        tokenizer = CLIPTokenizer.from_pretrained(folder, local_files_only=True)
    except Exception as err:
        raise ModelLoadError(
            f"the model in {folder} could not be read ({type(err).__name__}: {str(err).splitlines()[0][:300]}); "
            "the weights or tokenizer files are damaged or incomplete: download the model again"
        ) from None
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    check_complete(folder, model, info)
    model.eval().requires_grad_(False).to(dev)
    size, mean, std = read_image_processing(folder)
    fingerprint = fingerprint_model(model)
    runtimes = {}
    if backend != "torch":
        layers = tuple(int(i) for i in model.config.extract_layers)
        runtimes = runtime.prepare_runtimes(model, fingerprint, size, layers, backend, torch.get_num_threads())
        backend = backend if runtimes else "torch"
    return LoadedModel(
        model=model, tokenizer=tokenizer, source=str(source), folder=folder,
        fingerprint=fingerprint, device=dev, dtype=dtype,
        image_size=size, image_mean=mean, image_std=std, backend=backend, runtimes=runtimes,
    )
