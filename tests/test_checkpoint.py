"""Adapter checkpoints: safetensors + JSON metadata, atomic, refusing the wrong base or a bad file."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch

from napari_vlsm.core.adapters import AdapterConfig, build_adapters
from napari_vlsm.core.adapters.checkpoint import build_metadata, load_adapter, read_metadata, save_adapter
from napari_vlsm.core.errors import AdapterError
from napari_vlsm.core.loading import load_model
from napari_vlsm.core.random_model import clipseg_config, write_random_clipseg


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_model(tiny_model_dir, device="cpu", precision="fp32")


@pytest.fixture()
def saved(tiny, tmp_path):
    torch.manual_seed(3)
    adapters = build_adapters(AdapterConfig.from_variant("shallow-vlc", tiny.config))
    meta = build_metadata(adapters, tiny, {"prompts": ["polyp"], "metrics": {"after": {"dice": 0.8}}})
    return save_adapter(tmp_path / "polyp.safetensors", adapters, meta), adapters


def test_round_trip(tiny, saved):
    path, adapters = saved
    loaded, meta = load_adapter(path, tiny)
    for (name, a), (_, b) in zip(adapters.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    assert meta["adapter_config"]["variant"] == "shallow-vlc"
    assert meta["base_model"]["fingerprint"] == tiny.fingerprint
    assert meta["prompts"] == ["polyp"] and meta["metrics"]["after"]["dice"] == 0.8
    assert {"napari_vlsm", "torch", "transformers"} <= set(meta["versions"])
    assert json.loads(path.with_suffix(".json").read_text())["created"] == meta["created"]
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_other_architecture_is_refused(tiny, tmp_path):
    full = clipseg_config("full", vocab_size=49408)
    adapters = build_adapters(AdapterConfig.from_variant("dense-v", full))
    meta = build_metadata(adapters, tiny)  # metadata claims this base, shapes say otherwise
    path = save_adapter(tmp_path / "full.safetensors", adapters, meta)
    with pytest.raises(AdapterError, match="another base architecture"):
        load_adapter(path, tiny)


def test_same_architecture_other_weights_warns_or_refuses(saved, tmp_path):
    path, _ = saved
    other = load_model(write_random_clipseg(tmp_path / "other", arch="tiny", seed=7), device="cpu")
    with pytest.warns(UserWarning, match="trained on base model"):
        load_adapter(path, other)
    with pytest.raises(AdapterError, match="trained on base model"):
        load_adapter(path, other, strict_base=True)


def test_truncated_file(tiny, saved):
    path, _ = saved
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(AdapterError, match="truncated"):
        load_adapter(path, tiny)


def test_wrong_tensor_shapes(tiny, saved, tmp_path):
    from safetensors.torch import save_file

    path, adapters = saved
    state = {k: torch.zeros(3, 3) for k in adapters.state_dict()}
    save_file(state, str(path), metadata={"napari_vlsm": json.dumps(read_metadata(path))})
    with pytest.raises(AdapterError, match="does not fit"):
        load_adapter(path, tiny)


def test_foreign_safetensors_and_future_format(tiny, saved, tmp_path):
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(AdapterError, match="not saved by napari-vlsm"):
        load_adapter(foreign, tiny)
    path, adapters = saved
    meta = read_metadata(path)
    meta["format_version"] = 99
    save_file(adapters.state_dict(), str(path), metadata={"napari_vlsm": json.dumps(meta)})
    with pytest.raises(AdapterError, match="update napari-vlsm"):
        load_adapter(path, tiny)


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['VLSM_PWNED']}",))


def test_malicious_pickle_disguised_as_adapter_executes_nothing(tiny, tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("VLSM_PWNED", str(marker))
    evil = tmp_path / "adapter.safetensors"
    evil.write_bytes(pickle.dumps(_Exploit()))
    with pytest.raises(AdapterError):
        load_adapter(evil, tiny)
    with pytest.raises(AdapterError):
        read_metadata(evil)
    assert not marker.exists()


def test_save_is_atomic_when_interrupted(tiny, saved, monkeypatch):
    path, adapters = saved
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        save_adapter(path, adapters, read_metadata(path))
    assert path.read_bytes() == before
    assert load_adapter(path, tiny)[1]["prompts"] == ["polyp"]


_SAVE_LOOP = """
import sys, torch
from napari_vlsm.core.adapters import AdapterConfig, build_adapters
from napari_vlsm.core.adapters.checkpoint import build_metadata, save_adapter
from napari_vlsm.core.loading import load_model
loaded = load_model(sys.argv[1], device="cpu")
adapters = build_adapters(AdapterConfig.from_variant("shallow-vlc", loaded.config))
for i in range(10_000):
    with torch.no_grad():
        for p in adapters.parameters():
            p.fill_(i)
    save_adapter(sys.argv[2], adapters, build_metadata(adapters, loaded, {"round": i}))
    print(i, flush=True)
"""


@pytest.mark.parametrize("kill_after", [1, 4])
def test_sigkill_while_saving_leaves_a_loadable_adapter(tiny, tiny_model_dir, saved, kill_after):
    import signal
    import subprocess
    import sys

    path, _ = saved
    proc = subprocess.Popen([sys.executable, "-c", _SAVE_LOOP, str(tiny_model_dir), str(path)],
                            stdout=subprocess.PIPE, text=True)
    acknowledged = -1
    try:
        for _ in range(kill_after):
            acknowledged = int(proc.stdout.readline())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    adapters, meta = load_adapter(path, tiny)
    # the file is the last acknowledged save or a later complete one, never a torn one
    assert meta["round"] >= acknowledged
    value = next(iter(adapters.parameters())).flatten()[0].item()
    assert all(torch.all(p == value) for p in adapters.parameters()) and value == meta["round"]
