"""finetune(): the paper's recipe as a generator of progress events, cancellable between steps.

AdamW on the adapter parameters only, weight decay 1e-3, gradient clipping at norm 0.5, soft Dice +
BCE, a random phrasing per sample per step, ReduceLROnPlateau(0.3, 5) on the validation loss, early
stopping on validation Dice, and the best state by validation Dice is the one kept. Mixed precision
follows the loaded model (bf16/fp16 autocast; fp16 with a GradScaler). Everything random comes from
``config.seed``: the same seed gives the same sequence of losses.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Generator
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..adapters import AdapterConfig, build_adapters
from ..adapters.checkpoint import save_adapter
from ..errors import TrainingError
from ..forward import VLSMModel
from ..metrics import dice_bce_loss
from .config import ProgressEvent, TrainConfig, TrainResult
from .passes import TextSide, evaluate, logits_for
from .prepare import PromptTable, prepare
from .record import summary, training_metadata


def amp_factory(loaded):
    enabled = loaded.dtype != torch.float32
    if not enabled:
        return nullcontext
    return lambda: torch.autocast(device_type=loaded.device.type, dtype=loaded.dtype)


def seeded_adapters(variant: str, loaded, seed: int):
    # fork_rng: seed the adapters' init without touching the caller's global random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_adapters(AdapterConfig.from_variant(variant, loaded.config))


def batch_stream(n: int, batch_size: int, rng: np.random.Generator):
    """(epoch, indices, last batch of the epoch) forever; a fresh shuffle each epoch."""
    epoch = 0
    while True:
        epoch += 1
        order = rng.permutation(n).tolist()
        for start in range(0, n, batch_size):
            yield epoch, order[start : start + batch_size], start + batch_size >= n


class _Cancelled(Exception):
    pass


class _Best:
    """The best state by validation Dice (ties: lower validation loss), copied, not referenced."""

    def __init__(self):
        self.state, self.metrics, self.step, self.since = None, None, None, 0

    def offer(self, adapters, metrics: dict, step: int) -> bool:
        better = self.metrics is None or (metrics["dice"], -metrics["loss"]) > (self.metrics["dice"], -self.metrics["loss"])
        if better:
            self.state = {k: v.detach().clone() for k, v in adapters.state_dict().items()}
            self.metrics, self.step, self.since = metrics, step, 0
        else:
            self.since += 1
        return better

    def adapters(self, like):
        if self.state is None:
            return None
        out = copy.deepcopy(like)
        out.load_state_dict(self.state)
        return out.requires_grad_(False)


def _public(metrics: dict | None) -> dict:
    return {k: metrics[k] for k in ("dice", "iou", "n")} if metrics else {}


def finetune(loaded, train_samples, val_samples, config: TrainConfig | None = None, init_adapters=None,
             out_path=None, cancel=None, base_metadata: dict | None = None, save_on_cancel: bool = False,
             extra_metadata: dict | None = None) -> Generator[ProgressEvent, None, TrainResult]:
    """Train adapters on ``train_samples``; yields ProgressEvents, returns a TrainResult.

    ``init_adapters`` (an AdapterSet) is continued from and never modified (a copy trains; its
    variant wins over ``config.variant``). ``cancel.is_set()`` is checked between steps; a cancelled
    run saves its best adapter only with ``save_on_cancel``. Raises TrainingError for bad input.
    """
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

    if init_adapters is not None:
        adapters = copy.deepcopy(init_adapters).to(loaded.device)
    else:
        adapters = seeded_adapters(config.variant, loaded, config.seed).to(loaded.device)
    adapters.requires_grad_(True)
    model = VLSMModel(loaded.model, adapters)
    fast = config.cache_features and not model.image_features_depend_on_adapters
    amp, bs = amp_factory(loaded), config.batch_size
    table = PromptTable()

    def prepared(samples, what):
        gen = prepare(samples, what, loaded, model, table, fast, bs, amp)
        while True:
            try:
                done, total = next(gen)
            except StopIteration as stop:
                return stop.value
            yield ProgressEvent("prepare", step=done, total=total, elapsed_s=time.perf_counter() - t0,
                                message=f"preparing {what} samples {done}/{total}")
            if cancel is not None and cancel.is_set():
                raise _Cancelled

    try:
        train = yield from prepared(train_samples, "training")
        val = (yield from prepared(val_samples, "validation")) if heldout else train
    except _Cancelled:
        message = "cancelled while preparing the samples; nothing was trained or saved"
        yield ProgressEvent("done", elapsed_s=time.perf_counter() - t0, message=message)
        return TrainResult(adapters=None, adapter_path=None, metadata={}, before={}, after={}, steps=0,
                           best_step=None, cancelled=True, heldout=heldout, stopped="cancelled", message=message)
    prompts = list(table.phrasings)
    input_ids = table.tokenize(loaded.tokenizer, loaded.device)

    # The starting point: the adapter continued from, or the plain base model.
    base = VLSMModel(loaded.model, None) if init_adapters is None else model
    before = evaluate(base, TextSide(base, input_ids, amp), val, amp, bs)
    per_epoch = math.ceil(len(train) / bs)
    total = config.epochs * per_epoch if config.epochs else config.max_steps
    yield ProgressEvent("eval", step=0, total=total, loss=None, val_dice=before["dice"], val_iou=before["iou"],
                        elapsed_s=time.perf_counter() - t0, message=f"starting point: Dice {before['dice']:.3f}")
    best = _Best()
    if init_adapters is not None:
        best.offer(adapters, before, 0)  # never end worse than what we started from
    text = TextSide(model, input_ids, amp)

    params = [p for p in adapters.parameters() if p.requires_grad]
    lr = config.resolved_lr()
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=config.plateau_factor,
                                                       patience=config.plateau_patience)
    scaler = torch.amp.GradScaler(loaded.device.type, enabled=loaded.dtype == torch.float16)
    rng = np.random.default_rng(config.seed)
    stream = batch_stream(len(train), bs, rng)
    eval_every = per_epoch if config.epochs else (config.eval_every or (max(1, round(total / 10)) if total else None))
    eval_interval_s = None if eval_every else config.budget_s / 10  # budget-only runs: time-based
    history, losses, step, epoch, last_eval, stopped = [], [], 0, 0, -1, ""
    t_train = next_eval_t = time.perf_counter()

    def run_eval():
        nonlocal last_eval, next_eval_t
        metrics = evaluate(model, text, val, amp, bs)
        improved = best.offer(adapters, metrics, step)
        sched.step(metrics["loss"])
        now = time.perf_counter()
        row = {"step": step, "epoch": epoch, "loss": float(np.mean(losses)) if losses else None,
               "val_loss": metrics["loss"], "val_dice": metrics["dice"], "val_iou": metrics["iou"],
               "lr": opt.param_groups[0]["lr"], "elapsed_s": round(now - t0, 3), "best": improved}
        history.append(row)
        losses.clear()
        last_eval = step
        if eval_interval_s:
            next_eval_t = now + eval_interval_s
        return ProgressEvent("eval", step=step, total=total, epoch=epoch, loss=row["loss"], val_dice=metrics["dice"],
                             val_iou=metrics["iou"], elapsed_s=now - t0, lr=row["lr"],
                             message=f"{'validation' if heldout else 'training'} Dice {metrics['dice']:.3f}")

    if eval_interval_s:
        next_eval_t = t_train + eval_interval_s
    while True:
        elapsed = time.perf_counter() - t0
        if cancel is not None and cancel.is_set():
            stopped = "cancelled"
        elif total is not None and step >= total:
            stopped = "epochs" if config.epochs else "max_steps"
        elif config.budget_s is not None and elapsed >= config.budget_s and step > 0:
            stopped = "budget"
        elif best.since >= config.early_stop_patience:
            stopped = "early_stopping"
        if stopped:
            break
        epoch, idx, end_of_epoch = next(stream)
        choice = [train.prompt_ids[i][rng.integers(len(train.prompt_ids[i]))] for i in idx]
        logits = logits_for(model, text, train, idx, choice, amp)
        loss = dice_bce_loss(logits, train.targets[idx])
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        scaler.step(opt)
        scaler.update()
        step += 1
        losses.append(loss.item())
        now = time.perf_counter()
        eta = None
        if total is not None:
            eta = (now - t_train) / step * (total - step)
        if config.budget_s is not None:
            eta = min(eta if eta is not None else math.inf, max(0.0, config.budget_s - (now - t0)))
        yield ProgressEvent("step", step=step, total=total, epoch=epoch, loss=losses[-1], elapsed_s=now - t0,
                            eta_s=eta, lr=opt.param_groups[0]["lr"])
        if cancel is not None and cancel.is_set():
            continue  # stop before spending an evaluation
        due = (end_of_epoch if config.epochs else step % eval_every == 0) if eval_every else now >= next_eval_t
        if due:
            yield run_eval()

    cancelled = stopped == "cancelled"
    if step > last_eval and step > 0 and (not cancelled or save_on_cancel):
        yield run_eval()  # the final state is a candidate too
    result_adapters = best.adapters(adapters)
    elapsed = time.perf_counter() - t0
    after = _public(best.metrics)
    meta = training_metadata(
        result_adapters if result_adapters is not None else adapters, loaded, config, prompts=prompts,
        before=_public(before), after=after, heldout=heldout, n_train=len(train), n_val=len(val_samples),
        steps=step, best_step=best.step, epochs=epoch, elapsed_s=elapsed, stopped=stopped, fast_path=fast,
        eval_every=eval_every, history=history, base_metadata=base_metadata, extra=extra_metadata,
    )
    path = None
    if out_path is not None and result_adapters is not None and (not cancelled or save_on_cancel):
        path = save_adapter(Path(out_path), result_adapters, meta)
    message = summary(_public(before), after, heldout, step, stopped)
    if path is not None:
        message += f"; saved {path}"
    elif cancelled:
        message += "; cancelled: " + ("nothing saved" if not save_on_cancel else "no adapter to save")
    yield ProgressEvent("done", step=step, total=total, epoch=epoch, loss=history[-1]["loss"] if history else None,
                        val_dice=after.get("dice"), val_iou=after.get("iou"), elapsed_s=elapsed, eta_s=0.0,
                        message=message)
    return TrainResult(
        adapters=result_adapters, adapter_path=path, metadata=meta, before=_public(before), after=after,
        steps=step, best_step=best.step, cancelled=cancelled, history=history, heldout=heldout,
        stopped=stopped, message=message,
    )


def run_to_end(gen: Generator[ProgressEvent, None, TrainResult], on_event=None) -> TrainResult:
    """Drive a finetune generator to its end (calling ``on_event(event)`` for each); its result."""
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_event is not None:
            on_event(event)
