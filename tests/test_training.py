"""finetune(): learning, the fast path, reproducibility, cancel, continuing, metadata, errors, SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import torch

from napari_vlsm.core import forward
from napari_vlsm.core.adapters.checkpoint import load_adapter, read_metadata, save_adapter
from napari_vlsm.core.errors import MaskError, PromptError, TrainingError
from napari_vlsm.core.loading import load_model
from napari_vlsm.core.training import TrainConfig, finetune, run_to_end
from napari_vlsm.core.training.loop import seeded_adapters

from helpers import Sample, disks, drawable_tiny

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    """The tiny random CLIPSeg, with its last decoder layer made able to draw a mask (helpers.drawable_tiny)."""
    return drawable_tiny(tiny_model_dir)


def train(loaded, samples, val=(), **kw):
    events = []
    extra = {k: kw.pop(k) for k in ("init_adapters", "out_path", "cancel", "save_on_cancel", "base_metadata",
                                     "on_event") if k in kw}
    on_event = extra.pop("on_event", None)

    def record(event):
        events.append(event)
        if on_event is not None:
            on_event(event)

    config = TrainConfig(**{"lr": 3e-3, "max_steps": 20, **kw})
    result = run_to_end(finetune(loaded, samples, list(val), config, **extra), record)
    return result, events


def step_losses(events):
    return [e.loss for e in events if e.kind == "step"]


@pytest.mark.parametrize("variant", ["shallow-vlc", "dense-vl"])
def test_loss_falls_and_train_dice_rises(loaded, variant):
    result, events = train(loaded, disks(16), variant=variant, max_steps=100)
    losses = step_losses(events)
    assert len(losses) == 100 and result.steps == 100
    assert np.mean(losses[-10:]) < 0.75 * np.mean(losses[:10])
    assert result.after["dice"] > result.before["dice"] + 0.15
    assert result.heldout is False and "TRAINING" in result.message  # no validation: said so
    assert result.improved


def _count_encodes(monkeypatch):
    seen = {"image": 0, "text": 0}
    real_image, real_text = forward.VLSMModel.encode_image, forward.VLSMModel.encode_text

    def encode_image(self, pixel_values):
        seen["image"] += pixel_values.shape[0]
        return real_image(self, pixel_values)

    def encode_text(self, input_ids, attention_mask=None):
        seen["text"] += 1
        return real_text(self, input_ids, attention_mask)

    monkeypatch.setattr(forward.VLSMModel, "encode_image", encode_image)
    monkeypatch.setattr(forward.VLSMModel, "encode_text", encode_text)
    return seen


@pytest.mark.parametrize("steps", [5, 15])
def test_fast_path_encodes_each_image_once(loaded, monkeypatch, steps):
    seen = _count_encodes(monkeypatch)
    result, _ = train(loaded, disks(6), disks(3, seed=1), variant="shallow-vl", max_steps=steps, batch_size=4)
    assert seen["image"] == 6 + 3  # once per training and validation sample, whatever the steps
    assert result.metadata["training"]["fast_path"] is True


@pytest.mark.parametrize("variant, cached", [("shallow-v", True), ("shallow-vlc", True), ("dense-vl", False)])
def test_text_encoder_runs_once_unless_dense(loaded, monkeypatch, variant, cached):
    counts = []
    for steps in (4, 12):
        seen = _count_encodes(monkeypatch)
        train(loaded, disks(4), variant=variant, max_steps=steps, batch_size=2, eval_every=100)
        counts.append(seen["text"])
    assert (counts[0] == counts[1]) == cached  # shallow: per prompt, not per step


@pytest.mark.parametrize("variant", ["shallow-vl", "shallow-vlc"])
def test_cached_text_side_equals_encode_text(loaded, variant):
    from napari_vlsm.core.training.forward_passes import TextSide

    adapters = seeded_adapters(variant, loaded, 3)
    model = forward.VLSMModel(loaded.model, adapters)
    ids = loaded.tokenizer(["disk", "a bright disk"], padding=True, return_tensors="pt").input_ids
    text = TextSide(model, ids, lambda: torch.autocast("cpu", enabled=False))
    assert text.mode == "shallow"
    cond = text.cond([1, 0, 1])
    torch.testing.assert_close(cond, model.encode_text(ids[[1, 0, 1]]), rtol=1e-6, atol=1e-6)
    cond.sum().backward()  # the text adapters still train
    assert all(p.grad is not None for p in adapters.text_shallow.parameters())
    assert adapters.cond is None or adapters.cond.down.weight.grad is not None


def test_dense_encodes_every_step(loaded, monkeypatch):
    seen = _count_encodes(monkeypatch)
    result, _ = train(loaded, disks(4), variant="dense-v", max_steps=6, batch_size=2, eval_every=100)
    assert seen["image"] >= 6 * 2  # backprop through the encoder needs it every step
    assert result.metadata["training"]["fast_path"] is False


def test_fast_path_gives_the_reference_losses(loaded):
    fast, ev_fast = train(loaded, disks(6), variant="shallow-vlc", max_steps=8, batch_size=3)
    slow, ev_slow = train(loaded, disks(6), variant="shallow-vlc", max_steps=8, batch_size=3, cache_features=False)
    # Adam divides by each gradient's running RMS: last-bit differences (other batch shapes, other
    # kernels) grow ~10x a step. The first two steps (same weights, then one update apart) agree to
    # fp32 rounding of a mean over a batch's pixels (eps * sqrt(n)); later steps only loosely.
    fast_losses, slow_losses = step_losses(ev_fast), step_losses(ev_slow)
    eps, pixels = np.finfo(np.float32).eps, 3 * loaded.image_size**2
    np.testing.assert_allclose(fast_losses[:2], slow_losses[:2], rtol=eps * np.sqrt(pixels))
    np.testing.assert_allclose(fast_losses, slow_losses, rtol=1e-2)
    assert slow.metadata["training"]["fast_path"] is False


def test_same_seed_same_losses(loaded):
    runs = [step_losses(train(loaded, disks(6), max_steps=10, batch_size=3, seed=s)[1]) for s in (7, 7, 8)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_global_random_state_untouched(loaded):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train(loaded, disks(3), max_steps=2)
    assert torch.equal(torch.rand(3), expected)


def test_start_event_comes_before_any_heavy_work(loaded, monkeypatch):
    seen = _count_encodes(monkeypatch)
    gen = finetune(loaded, disks(10), disks(2, seed=1), TrainConfig(max_steps=20, batch_size=4))
    event = next(gen)
    assert event.kind == "start" and seen["image"] == 0
    gen.close()


def test_event_sequence(loaded):
    result, events = train(loaded, disks(10), disks(2, seed=1), max_steps=20, batch_size=4)
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and "prepare" in kinds
    assert kinds.index("prepare") < kinds.index("step")
    assert kinds.count("step") == 20 and kinds.count("eval") == 1 + 10  # the start, then about 10
    first_eval = events[kinds.index("eval")]
    assert first_eval.step == 0 and first_eval.val_dice == result.before["dice"]
    assert kinds.index("eval") < kinds.index("step")
    steps = [e for e in events if e.kind == "step"]
    assert [e.step for e in steps] == list(range(1, 21)) and all(e.total == 20 for e in steps)
    assert steps[-1].eta_s == 0 and all(e.eta_s >= 0 for e in steps)
    assert all(0 <= e.val_dice <= 1 for e in events if e.kind == "eval")
    assert events[-1].message == result.message and "->" in result.message
    assert len(result.history) == 10 and result.heldout


def test_cancel_stops_within_a_step_and_saves_nothing(loaded, tmp_path):
    cancel = threading.Event()
    out = tmp_path / "a.safetensors"

    def stop_at_3(event):
        if event.kind == "step" and event.step == 3:
            cancel.set()

    result, events = train(loaded, disks(6), disks(2, seed=1), max_steps=50, batch_size=2, out_path=out,
                           cancel=cancel, on_event=stop_at_3)
    assert result.cancelled and result.steps == 3 and result.stopped == "cancelled"
    assert result.adapter_path is None and not out.exists()
    assert events[-1].kind == "done" and "nothing saved" in events[-1].message


def test_cancel_with_save_keeps_the_best_so_far(loaded, tmp_path):
    cancel = threading.Event()
    out = tmp_path / "a.safetensors"
    result, _ = train(loaded, disks(6), disks(2, seed=1), max_steps=50, batch_size=2, out_path=out, cancel=cancel,
                      save_on_cancel=True, on_event=lambda e: e.step == 4 and e.kind == "step" and cancel.set())
    assert result.cancelled and result.steps == 4
    assert result.adapter_path == out and out.exists()
    adapters, meta = load_adapter(out, loaded)
    assert meta["training"]["stopped"] == "cancelled" and meta["training"]["best_step"] == result.best_step
    for key, value in result.adapters.state_dict().items():
        assert torch.equal(adapters.state_dict()[key], value)


def test_cancel_while_preparing(loaded):
    cancel = threading.Event()
    result, events = train(loaded, disks(6), max_steps=50, batch_size=2, cancel=cancel,
                           on_event=lambda e: e.kind == "start" and cancel.set())
    assert result.cancelled and result.steps == 0 and result.adapters is None
    assert [e.kind for e in events][-1] == "done" and "step" not in [e.kind for e in events]


def test_continue_from_an_adapter(loaded):
    data, val = disks(8), disks(3, seed=1)
    first, _ = train(loaded, data, val, max_steps=30, batch_size=4)
    keep = {k: v.clone() for k, v in first.adapters.state_dict().items()}
    second, _ = train(loaded, data, val, max_steps=10, batch_size=4, init_adapters=first.adapters,
                      base_metadata=first.metadata)
    assert second.before["dice"] != first.before["dice"]  # starts from the adapter, not the base model
    assert second.before["dice"] == pytest.approx(first.after["dice"], abs=1e-9)
    assert second.after["dice"] >= second.before["dice"]  # the start is a candidate: never worse
    assert all(torch.equal(first.adapters.state_dict()[k], v) for k, v in keep.items())  # not modified
    assert second.metadata["parent"]["steps"] == first.steps


def test_init_adapter_variant_wins(loaded):
    init = seeded_adapters("shallow-v", loaded, 0)
    result, _ = train(loaded, disks(3), max_steps=2, variant="dense-vlc", init_adapters=init)
    assert result.adapters.variant == "shallow-v" and result.metadata["recipe"]["variant"] == "shallow-v"


def test_metadata_and_saved_file(loaded, tmp_path):
    out = tmp_path / "sub" / "adapter.safetensors"
    result, _ = train(loaded, disks(6), disks(2, seed=1), max_steps=6, batch_size=3, out_path=out, variant="dense-vl")
    assert result.adapter_path == out
    meta = read_metadata(out)
    assert meta["metrics"]["before"] == result.before and meta["metrics"]["after"] == result.after
    assert set(result.after) == {"dice", "iou", "n"} and result.after["n"] == 2
    assert meta["metrics"]["heldout"] is True and meta["metrics"]["evaluated_on"] == "validation"
    assert meta["prompts"] == ["disk", "a bright disk"]
    recipe = meta["recipe"]
    assert recipe["variant"] == "dense-vl" and recipe["lr"] == 3e-3 and recipe["weight_decay"] == 1e-3
    assert recipe["grad_clip"] == 0.5 and recipe["batch_size"] == 3 and recipe["max_steps"] == 6
    assert meta["data"] == {"n_train": 6, "n_val": 2}
    assert meta["training"]["steps"] == 6 and meta["training"]["time_s"] >= 0
    assert meta["base_model"]["fingerprint"] == loaded.fingerprint
    assert len(meta["history"]) == len(result.history)
    assert (tmp_path / "sub" / "adapter.json").exists()
    adapters, _ = load_adapter(out, loaded)
    assert adapters.variant == "dense-vl"


def test_config_imports_without_torch():
    code = ("import sys; from napari_vlsm.core.training import TrainConfig, ProgressEvent, TrainResult; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"  # the dock builds its controls without loading torch


def test_default_learning_rates():
    assert TrainConfig(variant="shallow-vl").resolved_lr() == 3e-4
    assert TrainConfig(variant="dense-v").resolved_lr() == 1e-3
    assert TrainConfig(variant="dense-v", lr=0.01).resolved_lr() == 0.01


def test_epochs_budget_and_early_stopping(loaded):
    result, events = train(loaded, disks(10), disks(2, seed=1), epochs=2, batch_size=4)
    assert result.steps == 6 and result.stopped == "epochs" and len(result.history) == 2
    assert [e.epoch for e in events if e.kind == "eval"] == [0, 1, 2]
    result, _ = train(loaded, disks(4), max_steps=None, budget_s=1e-9)
    assert result.steps == 1 and result.stopped == "budget"
    # parameters that cannot move (lr 1e-30): validation never improves, patience 2 stops it
    result, _ = train(loaded, disks(4), max_steps=50, lr=1e-30, eval_every=1, early_stop_patience=2)
    assert result.stopped == "early_stopping" and result.steps == 3 and result.best_step == 1


@pytest.mark.parametrize("variant", ["dense-vlc", "shallow-vlc"])
def test_bf16_autocast_runs(tiny_model_dir, monkeypatch, variant):
    from napari_vlsm.core.training import prepare as prep

    kept = []
    real = prep.prepare

    def spy(*args):
        data = yield from real(*args)
        kept.append(data)
        return data

    monkeypatch.setattr("napari_vlsm.core.training.loop.prepare", spy)
    bf16 = load_model(tiny_model_dir, device="cpu", precision="bf16")
    result, events = train(bf16, disks(4), max_steps=3, batch_size=2, variant=variant)
    assert result.steps == 3 and all(np.isfinite(step_losses(events)))
    if variant.startswith("shallow"):  # cached features in the compute dtype: half the memory
        assert all(f.dtype == torch.bfloat16 for f in kept[0].features)


def _oom_above(monkeypatch, method: str, limit: int):
    real = getattr(forward.VLSMModel, method)
    sizes = []

    def call(self, *args):
        size = args[0][0].shape[0] if method == "decode" else args[0].shape[0]
        sizes.append(size)
        if size > limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, *args)

    monkeypatch.setattr(forward.VLSMModel, method, call)
    return sizes


def test_out_of_memory_splits_the_batch_and_keeps_its_gradients(loaded, monkeypatch):
    whole = step_losses(train(loaded, disks(8), max_steps=6, batch_size=4, variant="shallow-vl")[1])
    sizes = _oom_above(monkeypatch, "decode", 2)
    result, events = train(loaded, disks(8), max_steps=6, batch_size=4, variant="shallow-vl")
    assert result.steps == 6 and 2 in sizes and 4 in sizes  # tried whole, then in pieces of 2
    # pieces of 2 whose weighted gradients add up to the batch's: the same training
    # Tolerances as in test_fast_path_gives_the_reference_losses: Adam amplifies last-bit differences
    losses, eps, pixels = step_losses(events), np.finfo(np.float32).eps, 4 * loaded.image_size**2
    np.testing.assert_allclose(losses[:2], whole[:2], rtol=eps * np.sqrt(pixels))
    np.testing.assert_allclose(losses, whole, rtol=1e-2)


def test_out_of_memory_while_preparing_encodes_fewer_images_at_once(loaded, monkeypatch):
    sizes = _oom_above(monkeypatch, "encode_image", 1)
    result, _ = train(loaded, disks(5), max_steps=2, batch_size=4)
    assert result.steps == 2 and sizes.count(1) == 5 and sizes[0] == 4  # 4 failed, then one by one


def test_out_of_memory_with_one_sample_is_a_clear_error(loaded, monkeypatch):
    _oom_above(monkeypatch, "decode", 0)
    with pytest.raises(TrainingError, match="out of cpu memory .* even one sample at a time; use a shallow"):
        train(loaded, disks(2), max_steps=2, batch_size=2)


def test_other_errors_are_not_taken_for_out_of_memory(loaded, monkeypatch):
    def broken(self, activations, cond):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(forward.VLSMModel, "decode", broken)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):  # a bug stays visible
        train(loaded, disks(2), max_steps=1)


@pytest.mark.parametrize(
    "samples, config, error, match",
    [
        ([], TrainConfig(), TrainingError, "no training samples"),
        (disks(2), TrainConfig(variant="none"), TrainingError, "cannot be trained"),
        (disks(2), TrainConfig(batch_size=0), TrainingError, "batch_size"),
        (disks(2), TrainConfig(max_steps=None), TrainingError, "no limit"),
        (disks(2), TrainConfig(budget_s=-1), TrainingError, "budget_s"),
        ([Sample(np.zeros((8, 8)), np.zeros((8, 8), bool), ())], TrainConfig(), PromptError, "no prompt"),
        ([Sample(np.zeros((8, 8)), np.zeros((9, 8), bool), ("x",), "case7")], TrainConfig(), MaskError, "case7"),
        ([object()], TrainConfig(), TrainingError, "lacks .image"),
    ],
)
def test_bad_input_is_a_clear_error(loaded, samples, config, error, match):
    with pytest.raises(error, match=match):
        run_to_end(finetune(loaded, samples, [], config))


CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np, torch
    import safetensors.torch
    from napari_vlsm.core.loading import load_model
    from napari_vlsm.core.training import TrainConfig, finetune, run_to_end
    sys.path.insert(0, {tests!r})
    from helpers import disks
    torch.set_num_threads(1)
    loaded = load_model({model!r}, device="cpu", precision="fp32")
    if {hang_in_save!r}:
        real = safetensors.torch.save_file
        def slow_save(state, path, metadata=None):
            real(state, path, metadata=metadata)   # the new file is complete but not yet renamed
            print("in-save", flush=True)
            time.sleep(120)
        safetensors.torch.save_file = slow_save
    print("ready", flush=True)
    def tell(event):
        if event.kind == "step" and event.step == 2:
            print("training", flush=True)
    while True:
        gen = finetune(loaded, disks(4), [], TrainConfig(max_steps=3, batch_size=2), out_path={out!r})
        run_to_end(gen, tell)
        print("saved", flush=True)
    """
)


@pytest.mark.parametrize("when", ["in-save", "training", "saved"])
def test_sigkill_leaves_a_loadable_adapter(loaded, tiny_model_dir, tmp_path, when):
    """A training process killed while training or while saving never leaves a broken adapter."""
    out = tmp_path / "adapter.safetensors"
    good, _ = train(loaded, disks(3), max_steps=2)
    save_adapter(out, good.adapters, good.metadata)
    script = CHILD.format(tests=os.path.dirname(__file__), model=str(tiny_model_dir), out=str(out),
                          hang_in_save=when == "in-save")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:  # kill when the child reports the moment we want
            if line.strip() == when:
                break
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    adapters, meta = load_adapter(out, loaded)  # the previous adapter or the new one, complete
    assert meta["format"] == "napari-vlsm-adapter" and adapters.variant == "shallow-vlc"
    if when == "in-save":  # killed before the rename: still the previous file
        assert meta["training"]["steps"] == 2  # the child trains 3 steps
