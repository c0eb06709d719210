"""Faults: full disks, out-of-memory, a store shared by processes, training on a snapshot.

SIGKILL during a correction, a training run and an adapter save is already tested in
tests/test_store.py, tests/test_training.py and tests/test_checkpoint.py (see docs/reliability.md);
this file adds the faults those do not cover. Widget-level faults are in test_reliability_gui.py.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import safetensors.torch
import torch

from napari_vlsm.cli import main
from napari_vlsm.core.adapters import AdapterConfig, build_adapters
from napari_vlsm.core.adapters.checkpoint import build_metadata, load_adapter, read_metadata, save_adapter
from napari_vlsm.core.engine import Segmenter
from napari_vlsm.core.errors import AdapterError, VLSMError
from napari_vlsm.core.forward import VLSMModel
from napari_vlsm.core.store import CorrectionStore, DamagedSampleWarning
from napari_vlsm.core.training import TrainConfig, finetune, run_to_end

from helpers import Sample, bright_disk_uint8

pytestmark = pytest.mark.usefixtures("one_thread")


def disk_sample(seed: int, name: str = "") -> Sample:
    return Sample(*bright_disk_uint8(seed), ("disk",), name or f"s{seed}")


def enospc(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# ----------------------------------------------------------------------------- full disk


@pytest.fixture()
def previous(loaded, tmp_path):
    """An adapter already on disk: what a failed save must leave untouched."""
    torch.manual_seed(0)
    adapters = build_adapters(AdapterConfig.from_variant("shallow-vl", loaded.config))
    path = save_adapter(tmp_path / "adapters" / "liver.safetensors", adapters,
                        build_metadata(adapters, loaded, {"round": 1}))
    return path, path.read_bytes(), path.with_suffix(".json").read_bytes()


def test_disk_full_in_the_middle_of_an_adapter_save_keeps_the_previous_one(loaded, previous, monkeypatch):
    path, weights, sidecar = previous
    real = safetensors.torch.save_file

    def half_then_full(state, filename, metadata=None):
        real(state, filename, metadata=metadata)
        with open(filename, "r+b") as fh:  # the disk filled up half-way through the file
            fh.truncate(os.path.getsize(filename) // 2)
        enospc()

    monkeypatch.setattr(safetensors.torch, "save_file", half_then_full)
    adapters = build_adapters(AdapterConfig.from_variant("shallow-vl", loaded.config))
    with pytest.raises(AdapterError) as info:
        save_adapter(path, adapters, build_metadata(adapters, loaded, {"round": 2}))
    message = str(info.value)
    assert isinstance(info.value, VLSMError) and isinstance(info.value, OSError)
    assert "No space left on device" in message and "previous adapter file is unchanged" in message
    assert path.read_bytes() == weights and path.with_suffix(".json").read_bytes() == sidecar
    assert sorted(p.name for p in path.parent.iterdir()) == ["liver.json", "liver.safetensors"]  # no temp left
    assert load_adapter(path, loaded)[1]["round"] == 1


def test_disk_full_for_the_readable_copy_says_the_adapter_itself_is_saved(loaded, previous, monkeypatch):
    from napari_vlsm.core.adapters import checkpoint

    path, _, sidecar = previous
    monkeypatch.setattr(checkpoint, "write_bytes_atomic", enospc)
    adapters = build_adapters(AdapterConfig.from_variant("shallow-vl", loaded.config))
    with pytest.raises(AdapterError, match="only its readable copy liver.json is stale"):
        save_adapter(path, adapters, build_metadata(adapters, loaded, {"round": 2}))
    assert read_metadata(path)["round"] == 2  # the file that is read is complete and new
    assert path.with_suffix(".json").read_bytes() == sidecar


def test_finetune_on_a_full_disk_is_a_clear_error_and_keeps_the_previous_adapter(loaded, previous, monkeypatch):
    path, weights, _ = previous
    monkeypatch.setattr(safetensors.torch, "save_file", enospc)
    with pytest.raises(AdapterError, match="could not save the adapter"):
        run_to_end(finetune(loaded, [disk_sample(0), disk_sample(1)], [], TrainConfig(max_steps=1, variant="shallow-vl"),
                            out_path=path))
    assert path.read_bytes() == weights


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("disks")
    for sub in ("images", "masks"):
        (root / sub).mkdir()
    for i in range(3):
        image, mask = bright_disk_uint8(i)
        iio.imwrite(root / "images" / f"c{i}.png", image)
        iio.imwrite(root / "masks" / f"c{i}.png", mask.astype(np.uint8) * 255)
    return root


def test_cli_finetune_on_a_full_disk_is_one_line_exit_2(tiny_model_dir, data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(safetensors.torch, "save_file", enospc)
    code = main(["finetune", "--model", str(tiny_model_dir), "--device", "cpu", "--precision", "fp32", "--data",
                 str(data_dir), "--prompt", "disk", "--out", str(tmp_path / "a.safetensors"), "--steps", "1"])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("napari-vlsm: error: could not save the adapter") and "No space left" in lines[0]
    assert not list(tmp_path.iterdir())


def test_cli_predict_on_a_full_disk_is_one_line_exit_2(tiny_model_dir, data_dir, tmp_path, capsys, monkeypatch):
    from napari_vlsm.core import atomic

    monkeypatch.setattr(atomic, "_create", enospc)  # every atomic write fails to start
    code = main(["predict", "--model", str(tiny_model_dir), "--prompt", "disk", str(data_dir / "images"),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "cannot write" in lines[0] and "No space left" in lines[0]
    assert not list((tmp_path / "out").iterdir())


def test_cli_predict_summary_on_a_full_disk_is_one_line(tiny_model_dir, data_dir, tmp_path, capsys, monkeypatch):
    from napari_vlsm.core import atomic

    monkeypatch.setattr(atomic, "write_bytes_atomic", enospc)  # the masks fit, the summary does not
    code = main(["predict", "--model", str(tiny_model_dir), "--prompt", "disk", str(data_dir / "images" / "c0.png"),
                 "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "No space left" in err and "Traceback" not in err
    assert (tmp_path / "c0__disk.png").is_file()  # what was written stays


# ----------------------------------------------------------------------------- out of memory


def oom_when(predicate, kind="typed"):
    """A VLSMModel.decode that fails like a GPU out of memory when ``predicate(batch)`` holds."""
    real = VLSMModel.decode
    calls = []

    def decode(self, activations, cond):
        batch = max(activations[0].shape[0], cond.shape[0])
        calls.append(batch)
        if predicate(batch):
            if kind == "typed":
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 4.00 GiB")
            raise RuntimeError("CUDA error: out of memory")  # older torch / other backends
        return real(self, activations, cond)

    return decode, calls


@pytest.mark.parametrize("kind", ["typed", "runtime-error"])
def test_batched_inference_out_of_memory_in_the_decoder_retries_smaller(loaded, monkeypatch, kind):
    seg = Segmenter(loaded=loaded)
    stack = np.random.default_rng(0).random((5, 24, 24)).astype(np.float32)
    expected = [p[0].probability for _, p in seg.predict_stack(stack, "x", batch_size=1, window=(0, 1))]
    decode, calls = oom_when(lambda batch: batch > 1, kind)
    monkeypatch.setattr(VLSMModel, "decode", decode)
    got = list(seg.predict_stack(stack, "x", batch_size=4, window=(0, 1)))
    assert [i for i, _ in got] == list(range(5)) and calls[:3] == [4, 2, 1]
    for (_, preds), ref in zip(got, expected):
        np.testing.assert_allclose(preds[0].probability, ref, atol=1e-5)


def test_other_runtime_errors_are_not_taken_for_out_of_memory(loaded, monkeypatch):
    def broken(self, activations, cond):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(VLSMModel, "decode", broken)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):  # a bug stays visible, not retried
        Segmenter(loaded=loaded).predict(np.zeros((8, 8)), "x")


def test_training_out_of_memory_retries_with_a_smaller_batch(loaded, monkeypatch):
    decode, calls = oom_when(lambda batch: batch > 1)
    monkeypatch.setattr(VLSMModel, "decode", decode)
    samples = [disk_sample(i) for i in range(4)]
    result = run_to_end(finetune(loaded, samples, [disk_sample(9)], TrainConfig(max_steps=3, batch_size=4)))
    assert result.steps == 3 and result.after and max(calls[-3:]) == 1


def test_out_of_memory_while_preparing_features_encodes_fewer_at_once(loaded, monkeypatch):
    real = VLSMModel.encode_image
    sizes = []

    def encode_image(self, pixel_values):
        sizes.append(pixel_values.shape[0])
        if pixel_values.shape[0] > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return real(self, pixel_values)

    monkeypatch.setattr(VLSMModel, "encode_image", encode_image)
    samples = [disk_sample(i) for i in range(3)]
    result = run_to_end(finetune(loaded, samples, [], TrainConfig(max_steps=2, batch_size=4)))
    assert result.steps == 2 and sizes.count(1) == 3  # each image encoded once, one at a time


def test_training_out_of_memory_even_with_one_sample_is_a_clear_error(loaded, monkeypatch):
    decode, _ = oom_when(lambda batch: True)
    monkeypatch.setattr(VLSMModel, "decode", decode)
    with pytest.raises(VLSMError, match="memory"):
        run_to_end(finetune(loaded, [disk_sample(0), disk_sample(1)], [], TrainConfig(max_steps=2, batch_size=2)))


# ----------------------------------------------------------------------------- snapshots, sharing


def test_training_runs_on_its_snapshot_while_the_store_changes(loaded, tmp_path):
    """The store's files may be replaced or removed while a finetune runs: it trains on the samples
    it was given (in memory), and the changes are there for the next round."""
    store = CorrectionStore(tmp_path / "project")
    for i in range(3):
        store.add(*bright_disk_uint8(i), "disk", source="scan.tif", slice_index=i)
    train, val = store.samples(split="train"), store.samples(split="val")
    seen = []

    def meanwhile(event):
        if event.kind == "step" and not seen:
            seen.append(event.step)
            store.add(*bright_disk_uint8(7), "disk", source="scan.tif", slice_index=0)  # replaces slice 0 (a train sample)
            store.remove(val[0].id)
            store.add(*bright_disk_uint8(8), "disk", source="scan.tif", slice_index=5)

    result = run_to_end(finetune(loaded, train, val, TrainConfig(max_steps=3, batch_size=2)), meanwhile)
    assert seen and result.steps == 3
    assert result.metadata["data"] == {"n_train": len(train), "n_val": len(val)}
    now = store.samples()
    assert len(now) == 3 and {s.slice_index for s in now} == {(0,), (2,), (5,)}
    np.testing.assert_array_equal(next(s for s in now if s.slice_index == (0,)).image, bright_disk_uint8(7)[0])


_WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from napari_vlsm.core.store import CorrectionStore
    store = CorrectionStore(sys.argv[1])
    for i in range(int(sys.argv[2])):
        rng = np.random.default_rng(i)
        image = rng.integers(0, 60000, (48, 40), dtype=np.uint16)
        image[0, 0] = i
        store.add(image, rng.random((48, 40)) > 0.5, "liver", source="ct.tif", slice_index=i % 4)
        print(i, flush=True)
    """
)


def test_a_reader_never_sees_half_a_sample_while_another_process_writes(tmp_path):
    """Two processes on one project (a napari window reading, the CLI or a second window writing):
    commits are directory renames, so a reader sees each sample whole or not at all."""
    root = tmp_path / "shared"
    CorrectionStore(root)
    n = 16
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(root), str(n)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    reads = 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DamagedSampleWarning)  # any torn sample fails the test
            reader = CorrectionStore(root)
            while proc.poll() is None or reads == 0:
                samples = reader.samples()
                for s in samples:  # every visible sample is complete and consistent
                    i = int(s.image[0, 0])
                    assert s.slice_index == (i % 4,) and s.mask.shape == s.image.shape
                assert len(samples) <= 4  # replaces never show two versions of one slice
                reads += 1
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert out.split() == [str(i) for i in range(n)]
    final = CorrectionStore(root).samples()
    assert sorted(int(s.image[0, 0]) for s in final) == [n - 4, n - 3, n - 2, n - 1]
    assert reads > 1


def test_the_adapter_pointer_is_only_ever_a_name_inside_the_project(tmp_path):
    """latest.json is written atomically and read as a bare file name inside adapters/: a damaged or
    edited pointer means "no adapter yet", never a file elsewhere."""
    pytest.importorskip("qtpy")
    from napari_vlsm._napari.session import DockSession

    session = DockSession(None)
    session.set_project(tmp_path / "project")
    adapters = session.adapters_dir
    adapters.mkdir(parents=True)
    (adapters / "a.safetensors").write_bytes(b"x")
    session.set_latest(adapters / "a.safetensors")
    assert session.latest_adapter() == adapters / "a.safetensors"
    outside = tmp_path / "outside.safetensors"
    outside.write_bytes(b"x")
    for text in ('{"path": "../../outside.safetensors"}', f'{{"path": "{outside}"}}', "{broken", "[]",
                 '{"path": 5}', '{"path": "missing.safetensors"}'):
        (adapters / "latest.json").write_text(text)
        assert session.latest_adapter() in (None,), text
    assert Path(outside).read_bytes() == b"x"
