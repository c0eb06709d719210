"""finetune(): the paper's recipe as a generator of progress events, cancellable between steps.

AdamW on the adapter parameters only, weight decay 1e-3, gradient clipping at norm 0.5, soft Dice +
BCE, a random phrasing per sample per step, ReduceLROnPlateau(0.3, 5) on the validation loss, early
stopping on validation Dice, and the best state by validation Dice is the one kept. Mixed precision
follows the loaded model (bf16/fp16 autocast; fp16 with a GradScaler). Everything random comes from
``config.seed``: the same seed gives the same sequence of losses.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Generator
from dataclasses import replace
from pathlib import Path

import torch

from ..adapters import AdapterConfig, build_adapters
from ..adapters.checkpoint import save_adapter
from ..errors import TrainingError
from ..forward import VLSMModel
from ..precision import autocast
from .adapter_metadata import summary, training_metadata
from .config import ProgressEvent, TrainConfig, TrainResult
from .forward_passes import TextSide, evaluate
from .frozen_model import frozen_model
from .heap import kept_heap
from .memory import MemoryLimit
from .prepare import PromptTable, prepare
from .run import TrainingRun, total_steps


def amp_factory(loaded):
    """A factory of the run's autocast contexts (``precision.autocast``, the engine's policy)."""
    return lambda: autocast(loaded)


def seeded_adapters(variant: str, loaded, seed: int):
    # fork_rng: seed the adapters' init without touching the caller's global random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_adapters(AdapterConfig.from_variant(variant, loaded.config))


class _Cancelled(Exception):
    pass


def _public(metrics: dict | None) -> dict:
    return {k: metrics[k] for k in ("dice", "iou", "n")} if metrics else {}


def _prepared(samples, what, loaded, model, table, fast, amp, cancel, t0, chunk, limit):
    """prepare() with its progress as ProgressEvents; raises _Cancelled when asked to stop."""
    gen = prepare(samples, what, loaded, model, table, fast, chunk, amp, limit)
    while True:
        try:
            done, total = next(gen)
        except StopIteration as stop:
            return stop.value
        yield ProgressEvent("prepare", step=done, total=total, elapsed_s=time.perf_counter() - t0,
                            message=f"preparing {what} samples {done}/{total}")
        if cancel is not None and cancel.is_set():
            raise _Cancelled


def finetune(loaded, train_samples, val_samples, config: TrainConfig | None = None, init_adapters=None,
             out_path=None, cancel=None, base_metadata: dict | None = None, save_on_cancel: bool = False,
             extra_metadata: dict | None = None) -> Generator[ProgressEvent, None, TrainResult]:
    """Train adapters on ``train_samples``; yields ProgressEvents, returns a TrainResult.

    ``init_adapters`` (an AdapterSet) is continued from and never modified (a copy trains; its
    variant wins over ``config.variant``). ``cancel.is_set()`` is checked between steps; a cancelled
    run saves its best adapter only with ``save_on_cancel``. Raises TrainingError for bad input.
    """
    with kept_heap():  # freed step memory stays in the process until the end (heap.py: 1.5x a step)
        return (yield from _finetune(loaded, train_samples, val_samples, config, init_adapters, out_path, cancel,
                                     base_metadata, save_on_cancel, extra_metadata))


def _finetune(loaded, train_samples, val_samples, config, init_adapters, out_path, cancel, base_metadata,
              save_on_cancel, extra_metadata):
    t0 = time.perf_counter()
    config = replace(config or TrainConfig())
    if init_adapters is not None:
        config.variant = init_adapters.variant
    config.validate()
    train_samples, val_samples = list(train_samples or ()), list(val_samples or ())
    if not train_samples:
        raise TrainingError(
            "no training samples: correct at least one proposal and add it to the corrections "
            "(or pass a folder with images/ and masks/)"
        )
    heldout = bool(val_samples)
    start_from = "the loaded adapter" if init_adapters is not None else f"a new {config.variant} adapter"
    yield ProgressEvent("start", message=f"training {start_from} on {len(train_samples)} sample(s)")
    try:
        if cancel is not None and cancel.is_set():  # a Cancel as early as the first event: no heavy work
            raise _Cancelled
        source = copy.deepcopy(init_adapters) if init_adapters is not None else seeded_adapters(
            config.variant, loaded, config.seed)
        adapters = source.to(loaded.device).requires_grad_(True)
        frozen = frozen_model(loaded)  # low-precision frozen weights, fp32 decoder attention (frozen_model.py)
        model = VLSMModel(frozen, adapters, loaded.runtimes_for(frozen))
        fast = config.cache_features and not model.image_features_depend_on_adapters
        amp, table = amp_factory(loaded), PromptTable()
        limit = MemoryLimit(config.batch_size, loaded.device, "encoding or evaluating images")
        prep = (loaded, model, table, fast, amp, cancel, t0, config.batch_size, limit)
        train = yield from _prepared(train_samples, "training", *prep)
        val = (yield from _prepared(val_samples, "validation", *prep)) if heldout else train
    except _Cancelled:
        message = "cancelled before training began; nothing was trained or saved"
        yield ProgressEvent("done", elapsed_s=time.perf_counter() - t0, message=message)
        return TrainResult(adapters=None, adapter_path=None, metadata={}, before={}, after={}, steps=0,
                           best_step=None, cancelled=True, heldout=heldout, stopped="cancelled", message=message)
    input_ids = table.tokenize(loaded)

    # The starting point: the adapter continued from, or the plain base model.
    base = VLSMModel(frozen, None, model.runtimes) if init_adapters is None else model
    before = evaluate(base, TextSide(base, input_ids, amp), val, amp, limit)
    yield ProgressEvent("eval", step=0, total=total_steps(config, len(train)), val_dice=before["dice"],
                        val_iou=before["iou"], elapsed_s=time.perf_counter() - t0,
                        message=f"starting point: Dice {before['dice']:.3f}")
    text = TextSide(model, input_ids, amp, cache=config.cache_features)
    run = TrainingRun(config, model, text, train, val, amp, heldout, t0, loaded.device,
                      fp16=loaded.dtype == torch.float16, limit=limit)
    if init_adapters is not None:
        run.best.offer(adapters, before, 0)  # never end worse than what we started from
    while not (stopped := run.stop_reason(cancel)):
        yield run.train_step()
        if cancel is not None and cancel.is_set():
            continue  # stop before spending an evaluation
        if run.eval_due():
            yield run.evaluate()
    cancelled = stopped == "cancelled"
    if run.step > run.last_eval and run.step > 0 and (not cancelled or save_on_cancel):
        yield run.evaluate()  # the final state is a candidate too
    result = _finish(run, loaded, config, stopped, table.phrasings, _public(before), len(val_samples),
                     out_path if (not cancelled or save_on_cancel) else None, fast, base_metadata, extra_metadata)
    if cancelled and result.adapter_path is None:
        result.message += "; cancelled: " + ("no adapter to save" if save_on_cancel else "nothing saved")
    yield ProgressEvent("done", step=run.step, total=run.total, epoch=run.epoch, val_dice=result.after.get("dice"),
                        val_iou=result.after.get("iou"), elapsed_s=time.perf_counter() - t0, eta_s=0.0,
                        loss=run.history[-1]["loss"] if run.history else None, message=result.message)
    return result


def _finish(run: TrainingRun, loaded, config, stopped, prompts, before, n_val, out_path, fast, base_metadata,
            extra_metadata) -> TrainResult:
    """Metadata, the saved file (if asked) and the result of a finished or stopped run."""
    best = run.best.adapters(run.model.adapters)
    after = _public(run.best.metrics)
    meta = training_metadata(
        best if best is not None else run.model.adapters, loaded, config, prompts=list(prompts), before=before,
        after=after, heldout=run.heldout, n_train=len(run.train), n_val=n_val, steps=run.step,
        best_step=run.best.step, epochs=run.epoch, elapsed_s=time.perf_counter() - run.t0, stopped=stopped,
        fast_path=fast, eval_every=run.eval_every, history=run.history, base_metadata=base_metadata,
        extra=extra_metadata,
    )
    path = save_adapter(Path(out_path), best, meta) if out_path is not None and best is not None else None
    message = summary(before, after, run.heldout, run.step, stopped) + (f"; saved {path}" if path else "")
    return TrainResult(adapters=best, adapter_path=path, metadata=meta, before=before, after=after, steps=run.step,
                       best_step=run.best.step, cancelled=stopped == "cancelled", history=run.history,
                       heldout=run.heldout, stopped=stopped, message=message)


def run_to_end(gen: Generator[ProgressEvent, None, TrainResult], on_event=None) -> TrainResult:
    """Drive a finetune generator to its end (calling ``on_event(event)`` for each); its result."""
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_event is not None:
            on_event(event)
