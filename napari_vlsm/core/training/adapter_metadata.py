"""What a finetune writes down: adapter metadata (provenance, recipe, metrics) and its summary line."""

from __future__ import annotations

from dataclasses import asdict

from ..adapters.checkpoint import build_metadata

MAX_PROMPTS = 200  # phrasings listed in the metadata; the count is always complete


def parent_summary(base_metadata: dict | None) -> dict | None:
    """The lineage of an adapter trained from another one: enough to tell which it was."""
    if not base_metadata:
        return None
    training = base_metadata.get("training") or {}
    metrics = base_metadata.get("metrics") or {}
    return {
        "created": base_metadata.get("created"),
        "variant": (base_metadata.get("adapter_config") or {}).get("variant"),
        "steps": training.get("steps"),
        "n_train": (base_metadata.get("data") or {}).get("n_train"),
        "after": metrics.get("after"),
    }


def summary(before: dict, after: dict, heldout: bool, steps: int, stopped: str) -> str:
    where = (
        f"on {before.get('n', 0)} validation sample(s)"
        if heldout
        else f"on the {before.get('n', 0)} TRAINING sample(s) (no validation samples: not a held-out score)"
    )
    if not after:
        return f"stopped ({stopped}) after {steps} step(s) before any evaluation; nothing to keep"
    return (
        f"Dice {before['dice']:.3f} -> {after['dice']:.3f}, IoU {before['iou']:.3f} -> {after['iou']:.3f} "
        f"{where}; {steps} step(s), stopped by {stopped}"
    )


def training_metadata(adapters, loaded, config, *, prompts: list[str], before: dict, after: dict,
                      heldout: bool, n_train: int, n_val: int, steps: int, best_step: int | None,
                      epochs: int, elapsed_s: float, stopped: str, fast_path: bool, eval_every,
                      history: list[dict], base_metadata: dict | None, extra: dict | None) -> dict:
    recipe = asdict(config)
    recipe.update(
        lr=config.resolved_lr(),
        eval_every=eval_every,
        loss_definition="mean per-sample soft Dice of sigmoid(logits) + BCE-with-logits, weights 1 and 1, "
                        "targets area-resized to the model resolution",
        optimizer="AdamW (adapter parameters only)",
        mixed_precision=getattr(loaded, "precision", str(loaded.dtype)),
    )
    meta = {
        "prompts": prompts[:MAX_PROMPTS],
        "n_prompts": len(prompts),
        "recipe": recipe,
        "metrics": {
            "before": before, "after": after, "heldout": heldout,
            "evaluated_on": "validation" if heldout else "training",
            "threshold": 0.5, "resolution": "original image size",
        },
        "data": {"n_train": n_train, "n_val": n_val},
        "training": {
            "steps": steps, "best_step": best_step, "epochs": epochs, "time_s": round(elapsed_s, 2),
            "stopped": stopped, "fast_path": fast_path, "device": str(loaded.device),
        },
        "history": history,
        "parent": parent_summary(base_metadata),
    }
    meta.update(extra or {})
    return build_metadata(adapters, loaded, extra=meta)
