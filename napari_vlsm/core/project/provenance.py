"""An adapter file as a list shows it: where it came from and how it scored (its header only)."""

from __future__ import annotations

from pathlib import Path


def adapter_info(path: Path) -> dict:
    """Name, size and provenance of one adapter; ``error`` instead for a damaged file (listed, but
    marked: nobody should pick it)."""
    from ..adapters.checkpoint import read_metadata

    info = {"name": path.name, "bytes": path.stat().st_size}
    try:
        meta = read_metadata(path)
    except Exception as err:  # noqa: BLE001 - any unreadable file is reported in its row
        return {**info, "error": str(err)}
    metrics = meta.get("metrics") or {}
    training = meta.get("training") or {}
    return {**info, "created": meta.get("created"), "variant": (meta.get("adapter_config") or {}).get("variant"),
            "before": metrics.get("before"), "after": metrics.get("after"), "heldout": metrics.get("heldout"),
            "steps": training.get("steps"), "parent": (meta.get("parent") or {}).get("created")}
