"""Atomic writes: one implementation, and files that follow the user's umask (not mkstemp's 0600)."""

from __future__ import annotations

import os
import stat
from contextlib import contextmanager

import numpy as np
import pytest

from napari_vlsm.core import atomic
from napari_vlsm.core.store import CorrectionStore


@contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _files(folder):
    return [p for p in folder.rglob("*") if p.is_file()]


@pytest.mark.parametrize("mask, want", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_follow_the_umask(tmp_path, mask, want):
    with umask(mask):
        atomic.write_bytes_atomic(tmp_path / "a.json", b"{}")
        with atomic.atomic_path(tmp_path / "b.tif") as tmp:
            tmp.write_bytes(b"tif")  # a writer that opens the path itself (tifffile, safetensors)
    assert mode(tmp_path / "a.json") == want and mode(tmp_path / "b.tif") == want
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.tif"]  # no temp file left


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_an_explicit_mode_wins_over_the_umask(tmp_path, mask):
    """The server's private files (tokens): exactly 0600, whatever the umask."""
    with umask(mask):
        atomic.write_bytes_atomic(tmp_path / "tokens.json", b"{}", mode=0o600)
        atomic.write_bytes_atomic(tmp_path / "shared.json", b"{}", mode=0o640)
    assert mode(tmp_path / "tokens.json") == 0o600 and mode(tmp_path / "shared.json") == 0o640


@pytest.mark.parametrize("mask, want", [(0o022, 0o644), (0o077, 0o600)])
def test_adapter_files_follow_the_umask(loaded, tmp_path, mask, want):
    from napari_vlsm.core.adapters import AdapterConfig, build_adapters
    from napari_vlsm.core.adapters.checkpoint import build_metadata, save_adapter

    adapters = build_adapters(AdapterConfig.from_variant("shallow-v", loaded.config))
    with umask(mask):
        path = save_adapter(tmp_path / "liver", adapters, build_metadata(adapters, loaded))
    assert mode(path) == want and mode(path.with_suffix(".json")) == want


@pytest.mark.parametrize("mask, want", [(0o022, 0o644), (0o077, 0o600)])
def test_store_files_follow_the_umask(tmp_path, mask, want):
    image = np.arange(64, dtype=np.uint16).reshape(8, 8)
    with umask(mask):
        store = CorrectionStore(tmp_path / "store")
        store.add(image, image > 30, "liver", proposal=image > 20, source="ct.tif", slice_index=3)
    files = _files(store.root)
    assert {p.name for p in files} >= {"store.json", "image.tif", "mask.png", "proposal.png", "meta.json"}
    assert {p.name: mode(p) for p in files} == {p.name: want for p in files}


def test_a_failed_write_leaves_no_temp_file_and_the_old_file(tmp_path):
    target = tmp_path / "a.json"
    atomic.write_bytes_atomic(target, b"old")

    def broken(path, data):
        atomic.write_durable(path, data[:1])
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic.write_bytes_atomic(target, b"new", write=broken)
    with pytest.raises(RuntimeError), atomic.atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("writer failed")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["a.json"]
