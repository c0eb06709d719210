"""Adapter-only checkpoints: one safetensors file whose header carries JSON metadata.

The file holds only the adapter tensors (a few MB) and, under the header key ``napari_vlsm``,
a JSON document: variant and dims, the base model's id and fingerprint, prompts, training recipe
and metrics, package versions, time. A human-readable copy of the metadata is written beside it
(``<name>.json``); the copy inside the safetensors file is the one that is read. Nothing is ever
unpickled: safetensors cannot execute code, and the JSON is validated before use.
"""

from __future__ import annotations

import json
import platform
import warnings
from datetime import UTC, datetime
from pathlib import Path

from ..atomic import atomic_path, write_bytes_atomic
from ..errors import AdapterError
from .adapter_set import AdapterSet, build_adapters
from .config import AdapterConfig

FORMAT = "napari-vlsm-adapter"
FORMAT_VERSION = 1
HEADER_KEY = "napari_vlsm"


def _versions() -> dict:
    import torch
    import transformers

    from ... import __version__

    return {"napari_vlsm": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version()}


def build_metadata(adapters: AdapterSet, loaded, extra: dict | None = None) -> dict:
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "adapter_config": adapters.config.to_dict(),
        "base_model": {"source": str(loaded.source), "fingerprint": loaded.fingerprint},
        "versions": _versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    meta.update(extra or {})
    return meta


class AdapterSaveError(AdapterError, OSError):
    """Writing an adapter failed (disk full, no permission). Still an OSError for old callers, but
    a VLSMError, so the CLI prints one line and the widget one notification instead of a traceback."""


def save_adapter(path: str | Path, adapters: AdapterSet, metadata: dict) -> Path:
    """Write adapter weights + metadata atomically (a crash leaves the previous file intact).

    Raises :class:`AdapterSaveError` when the disk is full or the folder is not writable.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_suffix(".safetensors")
    state = {k: v.detach().to("cpu").float().contiguous() for k, v in adapters.state_dict().items()}
    header = {HEADER_KEY: json.dumps(metadata, default=str)}
    committed = False
    try:
        with atomic_path(path) as tmp:
            save_file(state, str(tmp), metadata=header)
        committed = True
        write_bytes_atomic(path.with_suffix(".json"), json.dumps(metadata, indent=2, default=str).encode())
    except OSError as err:
        state_of = (
            f"the adapter itself was saved; only its readable copy {path.with_suffix('.json').name} is stale"
            if committed
            else ("the previous adapter file is unchanged" if path.exists() else "nothing was written")
        )
        raise AdapterSaveError(
            f"could not save the adapter to {path}: {err.strerror or err}; free some disk space or "
            f"choose a writable folder, then try again ({state_of})"
        ) from err
    return path


def read_metadata(path: str | Path) -> dict:
    """The validated metadata of an adapter file (no tensors are loaded)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise AdapterError(f"adapter file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as fh:
            header = fh.metadata() or {}
    except Exception as err:
        raise AdapterError(
            f"{path} is not a readable safetensors adapter ({type(err).__name__}); it may be truncated, "
            "damaged or another kind of file (only .safetensors adapters saved by napari-vlsm load)"
        ) from None
    try:
        meta = json.loads(header[HEADER_KEY])
    except (KeyError, ValueError, TypeError, RecursionError):  # RecursionError: a nesting bomb
        raise AdapterError(f"{path} has no napari-vlsm metadata; it was not saved by napari-vlsm") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise AdapterError(f"{path} is not a napari-vlsm adapter (format {found!r})")
    if type(meta.get("format_version")) is not int:
        raise AdapterError(f"{path} has malformed metadata (format_version {meta.get('format_version')!r})")
    if meta["format_version"] > FORMAT_VERSION:
        raise AdapterError(
            f"{path} uses adapter format {meta.get('format_version')!r}, newer than this napari-vlsm "
            f"understands ({FORMAT_VERSION}); update napari-vlsm"
        )
    if not isinstance(meta.get("adapter_config"), dict) or not isinstance(meta.get("base_model", {}), dict):
        raise AdapterError(f"{path} has malformed metadata (adapter_config / base_model)")
    return meta


def load_adapter(path: str | Path, loaded, strict_base: bool = False) -> tuple[AdapterSet, dict]:
    """Rebuild the adapter set saved at ``path`` for the loaded base model.

    Another base architecture is refused. The same architecture with other weights (fingerprint
    differs) only warns unless ``strict_base``: a user may knowingly move an adapter between
    copies of a model, but should be told.
    """
    from safetensors.torch import load_file

    meta = read_metadata(path)
    try:
        config = AdapterConfig.from_dict(meta["adapter_config"])
        config.check_base(loaded.config)
    except AdapterError as err:  # name the file: the user may have chosen several
        raise AdapterError(f"{path}: {err}") from None
    fingerprint = meta.get("base_model", {}).get("fingerprint")
    if fingerprint != loaded.fingerprint:
        message = (
            f"adapter {Path(path).name} was trained on base model {fingerprint} "
            f"({meta.get('base_model', {}).get('source')}), the loaded model is {loaded.fingerprint} "
            f"({loaded.source}); its predictions may be meaningless"
        )
        if strict_base:
            raise AdapterError(message)
        warnings.warn(message, stacklevel=2)
    adapters = build_adapters(config)
    if adapters is None:
        raise AdapterError(f"{path} describes the 'none' variant, which has no weights")
    try:
        state = load_file(str(path))
        adapters.load_state_dict(state, strict=True)
    except Exception as err:
        raise AdapterError(
            f"{path} does not fit the {config.variant} variant ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:300]}); the file is damaged or was edited"
        ) from None
    return adapters.to(loaded.device), meta
