"""Hostile files: only safetensors and JSON are read, metadata is validated before use, and no
file can make napari-vlsm run code or write outside the folders it was given.

The hostile pickle below creates a marker file when unpickled; every test checks that the marker
never appears, whatever path the file takes (core, CLI in a real process, CLI in-process).
Widget-level hostile adapters are in test_reliability_gui.py.
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import napari_vlsm
from napari_vlsm.cli import main
from napari_vlsm.core.adapters import AdapterConfig, build_adapters
from napari_vlsm.core.adapters.checkpoint import build_metadata, load_adapter, read_metadata, save_adapter
from napari_vlsm.core.errors import AdapterError, ModelLoadError
from napari_vlsm.core.loading import load_model
from napari_vlsm.core.store import CorrectionStore, DamagedSampleWarning

PACKAGE = Path(napari_vlsm.__file__).parent


# ----------------------------------------------------------------------------- the source itself

# Modules that can run code from a file: pickle and everything built on it.
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal", "jsonpickle"}


def _unsafe_constructs(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNSAFE_MODULES:
            found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
            if isinstance(func, ast.Name) and name in ("eval", "exec", "compile", "__import__"):
                found.append(f"{name}()")
            if (owner, name) in {("torch", "load"), ("np", "load"), ("numpy", "load"), ("yaml", "load"),
                                 ("yaml", "unsafe_load"), ("pd", "read_pickle"), ("pandas", "read_pickle")}:
                found.append(f"{owner}.{name}()")
            for kw in node.keywords:
                unsafe_true = kw.arg in ("trust_remote_code", "allow_pickle") and not (
                    isinstance(kw.value, ast.Constant) and kw.value.value is False)
                if unsafe_true or (kw.arg == "weights_only" and not (
                        isinstance(kw.value, ast.Constant) and kw.value.value is True)):
                    found.append(f"{kw.arg}={ast.unparse(kw.value)}")
                if kw.arg == "use_safetensors" and not (isinstance(kw.value, ast.Constant) and kw.value.value is True):
                    found.append(f"use_safetensors={ast.unparse(kw.value)}")
    return found


def test_the_checker_finds_what_it_looks_for():
    bad = ("import pickle\nfrom joblib import load\nx = torch.load(p)\neval('1')\nexec(s)\n"
           "m = f.from_pretrained(p, trust_remote_code=True)\nnp.load(p, allow_pickle=True)\n"
           "g.from_pretrained(p, use_safetensors=False)\nyaml.load(s)\n")
    assert len(_unsafe_constructs(ast.parse(bad))) == 10  # np.load counts twice (call + keyword)
    assert _unsafe_constructs(ast.parse("model.eval()\nre.compile('x')\nd.from_pretrained(p, use_safetensors=True)")) == []


def test_the_package_never_unpickles_or_evaluates():
    """Only safetensors and JSON are read for weights and metadata: no pickle, no torch.load, no
    trust_remote_code, no allow_pickle, no eval/exec anywhere in the package source."""
    offences = {}
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20  # the whole package was scanned, not an empty folder
    for path in files:
        found = _unsafe_constructs(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        if found:
            offences[str(path.relative_to(PACKAGE))] = found
    assert offences == {}


def test_every_from_pretrained_call_asks_for_safetensors_only_where_it_reads_weights():
    calls = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "from_pretrained":
                owner = ast.unparse(node.func.value)
                keywords = {kw.arg for kw in node.keywords}
                calls.append((path.name, owner, keywords))
    models = [c for c in calls if "Tokenizer" not in c[1] and "Processor" not in c[1]]
    assert models and all("use_safetensors" in kw for _, _, kw in models), calls


# ----------------------------------------------------------------------------- hostile pickles


class _Exploit:
    """Unpickling this creates the file named by $VLSM_MARKER (a stand-in for any code)."""

    def __reduce__(self):
        return (os.system, (f"touch {os.environ['VLSM_MARKER']}",))


@pytest.fixture()
def marker(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "pwned"
    monkeypatch.setenv("VLSM_MARKER", str(path))
    yield path
    assert not path.exists(), "a hostile file ran code"


@pytest.fixture()
def evil_adapter(tmp_path, marker) -> Path:
    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(_Exploit()))
    # the same bytes a torch.save'd checkpoint would hold (zip container with a data.pkl)
    return path


def test_the_exploit_really_works_when_unpickled(tmp_path, monkeypatch):
    """Guard against a vacuous test: the payload does create its marker when unpickled."""
    marker = tmp_path / "proof"
    monkeypatch.setenv("VLSM_MARKER", str(marker))
    pickle.loads(pickle.dumps(_Exploit()))
    assert marker.exists()


def _cli_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE.parent), env.get("PYTHONPATH", "")])
    return env


def test_cli_predict_with_a_pickle_disguised_as_an_adapter_in_a_real_process(tiny_model_dir, evil_adapter, marker,
                                                                             tmp_path):
    image = tmp_path / "scan.png"
    iio.imwrite(image, np.zeros((16, 16), np.uint8))
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from napari_vlsm.cli import main; sys.exit(main())", "predict", "--model", str(tiny_model_dir), "--adapter",
         str(evil_adapter), "--prompt", "liver", str(image), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, env=_cli_env(),
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("napari-vlsm: error: ") and "evil.safetensors" in lines[0]
    assert "not a readable safetensors adapter" in lines[0]
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.png"))


@pytest.mark.parametrize("command", ["info", "predict"])
def test_cli_refuses_the_hostile_adapter_in_process(capsys, tiny_model_dir, evil_adapter, marker, tmp_path, command):
    image = tmp_path / "scan.png"
    iio.imwrite(image, np.zeros((16, 16), np.uint8))
    argv = [command, "--model", str(tiny_model_dir), "--adapter", str(evil_adapter)]
    if command == "predict":
        argv += ["--prompt", "x", str(image), "--out", str(tmp_path / "out")]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("napari-vlsm: error: ") and "Traceback" not in err


def test_finetune_init_adapter_hostile(capsys, tiny_model_dir, evil_adapter, marker, tmp_path):
    data = tmp_path / "data"
    for sub in ("images", "masks"):
        (data / sub).mkdir(parents=True)
        iio.imwrite(data / sub / "a.png", np.zeros((16, 16), np.uint8))
    code = main(["finetune", "--model", str(tiny_model_dir), "--data", str(data), "--prompt", "x", "--out",
                 str(tmp_path / "new.safetensors"), "--steps", "1", "--init-adapter", str(evil_adapter)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("napari-vlsm: error: ") and "Traceback" not in err
    assert not (tmp_path / "new.safetensors").exists()


@pytest.fixture()
def model_copy(tiny_model_dir, tmp_path):
    return shutil.copytree(tiny_model_dir, tmp_path / "model")


def test_a_pickle_disguised_as_model_weights_is_refused(model_copy, marker, capsys, tmp_path):
    (model_copy / "model.safetensors").unlink()
    (model_copy / "pytorch_model.bin").write_bytes(pickle.dumps(_Exploit()))
    with pytest.raises(ModelLoadError, match="safetensors only"):
        load_model(model_copy, device="cpu")
    code = main(["info", "--model", str(model_copy)])
    err = capsys.readouterr().err
    assert code == 2 and "pickle weights" in err and err.count("\n") == 1


def test_a_pickle_beside_safetensors_weights_is_never_opened(model_copy, marker):
    for name in ("pytorch_model.bin", "model.ckpt", "training_args.bin"):
        (model_copy / name).write_bytes(pickle.dumps(_Exploit()))
    loaded = load_model(model_copy, device="cpu", precision="fp32")  # reads model.safetensors only
    assert loaded.folder == model_copy


# ----------------------------------------------------------------------------- adapter metadata


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_model(tiny_model_dir, device="cpu", precision="fp32")


@pytest.fixture()
def good(tiny, tmp_path):
    adapters = build_adapters(AdapterConfig.from_variant("dense-vl", tiny.config))
    path = save_adapter(tmp_path / "good.safetensors", adapters, build_metadata(adapters, tiny))
    return path, read_metadata(path)


def _with_header(path: Path, text: str, out: Path) -> Path:
    save_file(load_file(str(path)), str(out), metadata={"napari_vlsm": text})
    return out


def _edited(meta: dict, **changes) -> str:
    meta = json.loads(json.dumps(meta))
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        target = meta
        for p in parents:
            target = target[p]
        target[key] = value
    return json.dumps(meta)


HOSTILE_METADATA = {
    "nesting bomb": lambda meta: "[" * 200_000 + "]" * 200_000,
    "a JSON string": lambda meta: '"napari-vlsm-adapter"',
    "a JSON list": lambda meta: "[1, 2]",
    "null": lambda meta: "null",
    "bool version": lambda meta: _edited(meta, format_version=True),
    "path-like variant": lambda meta: _edited(meta, adapter_config__variant="../../etc/passwd"),
    "huge bottleneck": lambda meta: _edited(meta, adapter_config__bottleneck=10**9),
    "many dense layers": lambda meta: _edited(meta, adapter_config__dense_layers=list(range(100_000))),
    "huge conditional bottleneck": lambda meta: _edited(meta, adapter_config__cond_bottleneck=10**9),
    "extracted layer far away": lambda meta: _edited(meta, adapter_config__extract_layers=[1, 2, 10**9]),
    "string width": lambda meta: _edited(meta, adapter_config__vision_dim="48; rm -rf /"),
    "base model not an object": lambda meta: _edited(meta, base_model="../../x"),
}


@pytest.mark.parametrize("case", list(HOSTILE_METADATA))
def test_hostile_adapter_metadata_is_refused_before_anything_is_built(tiny, good, tmp_path, monkeypatch, case):
    path, meta = good
    hostile = _with_header(path, HOSTILE_METADATA[case](meta), tmp_path / "hostile.safetensors")
    from napari_vlsm.core.adapters import checkpoint

    def no_build(config):
        raise AssertionError(f"adapters were built from hostile metadata: {config}")

    monkeypatch.setattr(checkpoint, "build_adapters", no_build)
    with pytest.raises(AdapterError):
        load_adapter(hostile, tiny)


def test_names_in_adapter_metadata_are_never_used_as_paths(capsys, tiny_model_dir, tiny, good, tmp_path,
                                                          monkeypatch):
    """Prompts, sources and names inside an adapter are shown, never written to."""
    path, meta = good
    meta = json.loads(_edited(meta, base_model__source="../../../tmp/evil-source"))
    meta["prompts"] = ["../../escape", "/etc/passwd"]
    planted = _with_header(path, json.dumps(meta), tmp_path / "names.safetensors")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["info", "--model", str(tiny_model_dir), "--adapter", str(planted), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["adapter_metadata"]
    assert shown["prompts"] == ["../../escape", "/etc/passwd"]
    assert list(work.iterdir()) == [] and not (tmp_path.parent / "escape").exists()


# ----------------------------------------------------------------------------- model folder


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("config is a list", "not a JSON object"),
        ("processor size is text", "unusable image settings"),
        ("processor is a list", "unusable image settings"),
        ("processor std is zero", "unusable image settings"),
        ("weights without the decoder", "lacks"),
    ],
)
def test_damaged_or_foreign_model_files_are_refused(model_copy, case, words):
    processor = model_copy / "processor_config.json"
    if case == "config is a list":
        (model_copy / "config.json").write_text("[1, 2]")
    elif case == "processor size is text":
        data = json.loads(processor.read_text())
        data["image_processor"]["size"] = "big"
        processor.write_text(json.dumps(data))
    elif case == "processor is a list":
        processor.write_text("[]")
    elif case == "processor std is zero":
        data = json.loads(processor.read_text())
        data["image_processor"]["image_std"] = [0, 0, 0]
        processor.write_text(json.dumps(data))
    else:  # a checkpoint of another model would load with random decoder weights: wrong masks, no word
        state = {k: v for k, v in load_file(str(model_copy / "model.safetensors")).items()
                 if not k.startswith("decoder.")}
        save_file(state, str(model_copy / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match=words):
        load_model(model_copy, device="cpu")


def test_extra_tensors_in_the_weights_are_harmless(model_copy):
    state = load_file(str(model_copy / "model.safetensors"))
    state["not.a.parameter"] = torch.zeros(3)
    save_file(state, str(model_copy / "model.safetensors"), metadata={"format": "pt"})
    assert load_model(model_copy, device="cpu").folder == model_copy


# ----------------------------------------------------------------------------- the store


def _sample(seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (10, 12), dtype=np.uint8), rng.random((10, 12)) > 0.5


@pytest.mark.parametrize("sample_id", ["../../etc", "/etc", "..", ".", "", "20250101T120000000000-0123abcd/../../x",
                                       "20250101T120000000000-0123ABCD"])
def test_store_remove_refuses_ids_that_are_not_sample_ids(tmp_path, sample_id):
    from napari_vlsm.core.errors import StoreError

    store = CorrectionStore(tmp_path / "store")
    store.add(*_sample(), "liver")
    victim = tmp_path / "etc"
    victim.mkdir()
    with pytest.raises(StoreError):
        store.remove(sample_id)
    assert victim.exists() and len(store.samples()) == 1


def test_a_sample_folder_that_links_outside_is_never_deleted_through(tmp_path):
    """A sample folder replaced by a symbolic link to somewhere else: removing the sample (or
    cleaning up) removes the link, never the files it points to."""
    store = CorrectionStore(tmp_path / "store")
    sample = store.add(*_sample(), "liver")
    outside = tmp_path / "precious"
    shutil.copytree(store.samples_dir / sample.id, outside)
    shutil.rmtree(store.samples_dir / sample.id)
    (store.samples_dir / sample.id).symlink_to(outside, target_is_directory=True)
    store.remove(sample.id)
    assert outside.is_dir() and (outside / "meta.json").is_file()
    CorrectionStore(store.root)  # start-up cleanup of leftovers does not follow links either
    assert outside.is_dir() and (outside / "meta.json").is_file()


def test_store_metadata_values_are_never_used_as_paths(tmp_path):
    store = CorrectionStore(tmp_path / "store")
    sample = store.add(*_sample(), "liver", source="../../../outside.tif", slice_index=[3])
    meta_path = store.samples_dir / sample.id / "meta.json"
    meta = json.loads(meta_path.read_text())
    assert meta["source"] == "../../../outside.tif"  # kept as text: where the slice came from
    meta["image_dtype"] = "object"  # would make numpy unpickle-capable arrays
    meta_path.write_text(json.dumps(meta))
    with pytest.warns(DamagedSampleWarning, match="image_dtype"):
        assert CorrectionStore(store.root).samples() == []
    assert not (tmp_path / "outside.tif").exists()
