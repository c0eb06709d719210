"""One rule per user input: the engine, the trainer and the store accept and refuse the same."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from napari_vlsm.core import validation
from napari_vlsm.core.errors import ImageError, PromptError, SettingError, StoreError, TrainingError
from napari_vlsm.core.store.records import clean_prompts as store_prompts
from napari_vlsm.core.store.records import clean_window as store_window
from napari_vlsm.core.training.prepare import phrasings

BAD_PROMPTS = ["", "   ", [], [""], ["liver", " "], [1], None, 5, {"liver"}, b"liver"]
GOOD_PROMPTS = ["liver", "  liver ", ["liver", "spleen"], ("Leber größe", "肝臓")]
BAD_WINDOWS = [(1, 1), (2, 1), (0, float("nan")), (0, float("inf")), (1,), "ab", 3, (1, 2, 3)]


@pytest.mark.parametrize("prompts", BAD_PROMPTS)
def test_every_caller_refuses_the_same_prompts(prompts):
    from napari_vlsm.core.engine import clean_prompts as engine_prompts

    messages = set()
    for check in (engine_prompts, store_prompts, lambda p: phrasings(p, "training sample a")):
        with pytest.raises(PromptError) as info:
            check(prompts)
        messages.add(str(info.value).removeprefix("training sample a: "))
    assert len(messages) == 1  # one rule, one message


@pytest.mark.parametrize("prompts", GOOD_PROMPTS)
def test_every_caller_accepts_the_same_prompts(prompts):
    from napari_vlsm.core.engine import clean_prompts as engine_prompts

    want = validation.clean_prompts(prompts)
    assert tuple(engine_prompts(prompts)) == want == store_prompts(prompts)
    assert phrasings(prompts, "x") == tuple(dict.fromkeys(want))  # training keeps each phrasing once


@pytest.mark.parametrize("window", BAD_WINDOWS)
def test_every_caller_refuses_the_same_windows(window):
    from napari_vlsm.core.preprocess import normalize_intensity

    with pytest.raises(ImageError, match="window"):
        normalize_intensity(np.zeros((2, 2), np.float32), window)
    with pytest.raises(StoreError, match="window"):
        store_window(window)
    with pytest.raises(TrainingError, match="window"):
        validation.check_window(window, TrainingError)


def test_threshold_and_batch_size_are_settings_not_images():
    for bad in (-0.1, 1.5, float("nan"), True, np.bool_(True), "0.5", None):
        with pytest.raises(SettingError, match="threshold"):
            validation.check_threshold(bad)
    assert validation.check_threshold(np.float32(0.25)) == 0.25
    for bad in (0, -1, 2.0, True, "3", None):
        with pytest.raises(SettingError, match="batch_size"):
            validation.check_positive_int(bad, "batch_size")
    assert validation.check_positive_int(np.int64(3), "batch_size") == 3
    assert not issubclass(SettingError, ImageError)


def test_validation_imports_neither_torch_nor_numpy():
    code = "import sys, napari_vlsm.core.validation; print('torch' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.parametrize("bad", [0, -2, True, 2.0, "3"])
def test_every_count_refuses_the_same_values_with_one_message(bad, tmp_path):
    # core.validation.check_positive_int is the one rule: the trainer's settings, the model input's
    # size, and the CLI's --batch-size / --slices-per-task / serve's limits all call it
    from argparse import Namespace

    from napari_vlsm.cli import batch as batch_cli
    from napari_vlsm.cli import predict as predict_cli
    from napari_vlsm.cli import serve as serve_cli
    from napari_vlsm.core.errors import VLSMError
    from napari_vlsm.core.preprocess import to_model_input
    from napari_vlsm.core.training import TrainConfig

    rule = "must be a positive integer; got "
    with pytest.raises(TrainingError, match=f"batch_size {rule}"):
        TrainConfig(batch_size=bad).validate()
    with pytest.raises(ValueError, match=rule):
        to_model_input(np.zeros((8, 8), np.uint8), bad, (0.5,) * 3, (0.5,) * 3)
    args = Namespace(batch_size=bad, prompt=["liver"], inputs=[str(tmp_path)], threshold=0.5, window="auto",
                     multilabel=False, cluster=None, scheduler=None, jobs=None, overwrite=False, out=str(tmp_path))
    with pytest.raises(VLSMError, match=f"--batch-size {rule}"):
        predict_cli.run(args)
    batch_args = Namespace(slices_per_task=bad, batch_size=4)
    with pytest.raises(VLSMError, match=f"--slices-per-task {rule}"):
        batch_cli.run_batch(batch_args)
    serve_args = Namespace(max_sessions=bad, max_side=4096, max_waiting=16, port=0)
    with pytest.raises(VLSMError, match=f"--max-sessions {rule}"):
        serve_cli.run(serve_args)
