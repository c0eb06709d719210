"""The state of one training run: optimiser, schedule, batches, evaluations, the best state kept.

``loop.finetune`` drives it: ``stop_reason`` before each step, ``train_step``, then ``evaluate``
when ``eval_due``. Everything random (shuffling, the phrasing drawn per sample per step) comes from
one generator seeded with ``config.seed``.
"""

from __future__ import annotations

import copy
import math
import time

import numpy as np
import torch

from ..metrics import dice_bce_loss
from .config import ProgressEvent, TrainConfig
from .forward_passes import TextSide, evaluate, logits_for
from .memory import MemoryLimit, is_out_of_memory
from .prepare import PreparedSet


def total_steps(config: TrainConfig, n_train: int) -> int | None:
    """Steps the run will take at most (None: only a time budget bounds it)."""
    if config.epochs:
        return config.epochs * math.ceil(n_train / config.batch_size)
    return config.max_steps


def batch_stream(n: int, batch_size: int, rng: np.random.Generator):
    """(epoch, indices, last batch of the epoch) forever; a fresh shuffle each epoch."""
    epoch = 0
    while True:
        epoch += 1
        order = rng.permutation(n).tolist()
        for start in range(0, n, batch_size):
            yield epoch, order[start : start + batch_size], start + batch_size >= n


class Best:
    """The best state by validation Dice (ties: lower validation loss), copied, not referenced."""

    def __init__(self):
        self.state, self.metrics, self.step, self.since = None, None, None, 0

    def offer(self, adapters, metrics: dict, step: int) -> bool:
        key = (metrics["dice"], -metrics["loss"])
        better = self.metrics is None or key > (self.metrics["dice"], -self.metrics["loss"])
        if better:
            self.state = {k: v.detach().clone() for k, v in adapters.state_dict().items()}
            self.metrics, self.step, self.since = metrics, step, 0
        else:
            self.since += 1  # evaluations without improvement, for early stopping
        return better

    def adapters(self, like):
        if self.state is None:
            return None
        out = copy.deepcopy(like)
        out.load_state_dict(self.state)
        return out.requires_grad_(False)


class TrainingRun:
    def __init__(self, config: TrainConfig, model, text: TextSide, train: PreparedSet, val: PreparedSet, amp,
                 heldout: bool, t0: float, device, fp16: bool, limit: MemoryLimit):
        self.config, self.model, self.text, self.train, self.val, self.amp = config, model, text, train, val, amp
        self.heldout, self.t0, self.limit = heldout, t0, limit  # limit: samples per evaluation call
        # Samples per forward/backward piece of a step; lowered after an out-of-memory.
        self.piece = MemoryLimit(config.batch_size, device, "training")
        device_type = device.type
        self.params = [p for p in model.adapters.parameters() if p.requires_grad]
        # fused: one kernel for all adapter tensors (9 vs 23 ms a step for shallow-vlc on this CPU)
        self.opt = torch.optim.AdamW(self.params, lr=config.resolved_lr(), weight_decay=config.weight_decay,
                                     fused=device_type in ("cpu", "cuda"))
        self.sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.opt, mode="min", factor=config.plateau_factor, patience=config.plateau_patience)
        self.scaler = torch.amp.GradScaler(device_type, enabled=fp16)  # fp16 gradients underflow without it
        self.rng = np.random.default_rng(config.seed)
        self.stream = batch_stream(len(train), config.batch_size, self.rng)
        self.total = total_steps(config, len(train))
        per_epoch = math.ceil(len(train) / config.batch_size)
        auto = max(1, round(self.total / 10)) if self.total else None  # about 10 evaluations
        self.eval_every = per_epoch if config.epochs else (config.eval_every or auto)
        # Only a time budget: evaluate every tenth of it instead.
        self.eval_interval_s = None if self.eval_every else config.budget_s / 10
        self.best, self.history, self.losses = Best(), [], []
        self.step = self.epoch = 0
        self.last_eval, self.end_of_epoch = -1, False
        self.t_train = time.perf_counter()
        self.next_eval_t = self.t_train + (self.eval_interval_s or 0)

    @property
    def lr(self) -> float:
        return self.opt.param_groups[0]["lr"]

    def stop_reason(self, cancel) -> str:
        """Why to stop before the next step ("" = go on)."""
        if cancel is not None and cancel.is_set():
            return "cancelled"
        if self.total is not None and self.step >= self.total:
            return "epochs" if self.config.epochs else "max_steps"
        budget = self.config.budget_s
        if budget is not None and self.step > 0 and time.perf_counter() - self.t0 >= budget:
            return "budget"
        if self.best.since >= self.config.early_stop_patience:
            return "early_stopping"
        return ""

    def train_step(self) -> ProgressEvent:
        self.epoch, idx, self.end_of_epoch = next(self.stream)
        ids = self.train.prompt_ids
        choice = [ids[i][self.rng.integers(len(ids[i]))] for i in idx]  # a random phrasing per sample
        while True:
            self.opt.zero_grad(set_to_none=True)
            try:
                loss = self._forward_backward(idx, choice)
                break
            except Exception as err:
                if not is_out_of_memory(err):
                    raise
                self.opt.zero_grad(set_to_none=True)  # a half-done backward: start the step again
                self.piece.shrink(min(self.piece.size, len(idx)), err)
        self.scaler.unscale_(self.opt)  # clip the true gradients, not the scaled ones
        torch.nn.utils.clip_grad_norm_(self.params, self.config.grad_clip)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.step += 1
        self.losses.append(loss)
        now = time.perf_counter()
        return ProgressEvent("step", step=self.step, total=self.total, epoch=self.epoch, loss=self.losses[-1],
                             elapsed_s=now - self.t0, eta_s=self._eta(now), lr=self.lr)

    def _forward_backward(self, idx: list[int], choice: list[int]) -> float:
        """The batch's loss and gradients, in pieces of ``self.piece.size`` samples whose weighted
        gradients add up to the whole batch's (the loss is a mean over samples)."""
        n, size, total = len(idx), self.piece.size, 0.0
        for start in range(0, n, size):
            part, part_choice = idx[start : start + size], choice[start : start + size]
            logits = logits_for(self.model, self.text, self.train, part, part_choice, self.amp)
            loss = dice_bce_loss(logits, self.train.targets[part]) * (len(part) / n)
            self.scaler.scale(loss).backward()
            total += loss.item()
        return total

    def _eta(self, now: float) -> float | None:
        eta = None
        if self.total is not None:
            eta = (now - self.t_train) / self.step * (self.total - self.step)
        if self.config.budget_s is not None:
            left = max(0.0, self.config.budget_s - (now - self.t0))
            eta = left if eta is None else min(eta, left)
        return eta

    def eval_due(self) -> bool:
        if self.config.epochs:
            return self.end_of_epoch
        if self.eval_every:
            return self.step % self.eval_every == 0
        return time.perf_counter() >= self.next_eval_t

    def evaluate(self) -> ProgressEvent:
        metrics = evaluate(self.model, self.text, self.val, self.amp, self.limit)
        improved = self.best.offer(self.model.adapters, metrics, self.step)
        self.sched.step(metrics["loss"])
        now = time.perf_counter()
        row = {"step": self.step, "epoch": self.epoch, "loss": float(np.mean(self.losses)) if self.losses else None,
               "val_loss": metrics["loss"], "val_dice": metrics["dice"], "val_iou": metrics["iou"],
               "lr": self.lr, "elapsed_s": round(now - self.t0, 3), "best": improved}
        self.history.append(row)
        self.losses.clear()
        self.last_eval = self.step
        if self.eval_interval_s:
            self.next_eval_t = now + self.eval_interval_s
        where = "validation" if self.heldout else "training"
        return ProgressEvent("eval", step=self.step, total=self.total, epoch=self.epoch, loss=row["loss"],
                             val_dice=metrics["dice"], val_iou=metrics["iou"], elapsed_s=now - self.t0, lr=self.lr,
                             message=f"{where} Dice {metrics['dice']:.3f}")
