"""Model loading: local folders offline, clear errors that name the fix, device and precision."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from napari_vlsm.core import loading
from napari_vlsm.core.errors import ModelLoadError
from napari_vlsm.core.loading import load_model, resolve_device, resolve_precision
from napari_vlsm.core.random_model import write_random_clipseg


@pytest.fixture()
def model_copy(tiny_model_dir, tmp_path):
    return shutil.copytree(tiny_model_dir, tmp_path / "model")


def test_local_folder_never_touches_the_hub(tiny_model_dir, monkeypatch):
    import huggingface_hub

    def no_network(*args, **kwargs):
        raise AssertionError("a local folder must not reach the hub")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_network)
    loaded = load_model(str(tiny_model_dir), device="cpu", precision="fp32")
    assert loaded.folder == tiny_model_dir
    assert not any(p.requires_grad for p in loaded.model.parameters())
    assert loaded.image_size == 64 and loaded.image_mean == (0.485, 0.456, 0.406)


def test_old_preprocessor_config_layout(model_copy):
    processor = json.loads((model_copy / "processor_config.json").read_text())
    (model_copy / "processor_config.json").unlink()
    (model_copy / "preprocessor_config.json").write_text(json.dumps(processor["image_processor"]))
    assert load_model(model_copy, device="cpu").image_size == 64


def test_hub_id_offline_and_not_cached_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache" / "hub"))
    with pytest.raises(ModelLoadError) as err:
        load_model("CIDAS/clipseg-rd64-refined", device="cpu")
    message = str(err.value)
    assert "HF_HUB_OFFLINE" in message and "hf download CIDAS/clipseg-rd64-refined" in message


def test_missing_folder(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "nowhere", device="cpu")


@pytest.mark.parametrize("names", [["model.safetensors"], ["config.json"], ["vocab.json", "tokenizer.json"]])
def test_incomplete_folder_names_the_missing_file(model_copy, names):
    for name in names:
        (model_copy / name).unlink()
    with pytest.raises(ModelLoadError, match=names[0].split(".")[0]):
        load_model(model_copy, device="cpu")


def test_corrupted_weights(model_copy):
    weights = model_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])
    with pytest.raises(ModelLoadError, match="damaged"):
        load_model(model_copy, device="cpu")


def test_pickle_weights_are_refused(model_copy):
    (model_copy / "model.safetensors").rename(model_copy / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="safetensors only"):
        load_model(model_copy, device="cpu")


def test_not_a_clipseg_model(model_copy):
    config = json.loads((model_copy / "config.json").read_text())
    config["model_type"] = "bert"
    (model_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="not CLIPSeg"):
        load_model(model_copy, device="cpu")


def test_devices_and_precisions():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ModelLoadError, match="choose one of"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="no CUDA GPU"):
            resolve_device("cuda")
    cpu = torch.device("cpu")
    expected = torch.bfloat16 if loading.cpu_has_native_bf16() else torch.float32
    assert resolve_precision("auto", cpu) == expected
    assert resolve_precision("auto", torch.device("cuda")) == torch.float16
    assert resolve_precision("fp32", cpu) == torch.float32
    with pytest.raises(ModelLoadError):
        resolve_precision("int8", cpu)


def test_fingerprint_identifies_the_weights(tiny_model_dir, tmp_path):
    a = load_model(tiny_model_dir, device="cpu").fingerprint
    assert a == load_model(tiny_model_dir, device="cpu").fingerprint
    other = write_random_clipseg(tmp_path / "other", arch="tiny", seed=1)
    assert load_model(other, device="cpu").fingerprint != a
