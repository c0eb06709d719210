"""The finetune panel's run when the dock works through a server (``RemoteEngine``).

Same look as a local run: ``remote.remote_train_job`` yields the server's ProgressEvents (curve,
status, napari's activity bar) and Cancel asks the server to stop; the result is an adapter FILE
ON THE SERVER, which the engine then uses by name (nothing is trained or saved on this computer).
"""

from __future__ import annotations

from . import texts, workers

NOT_IMPROVED = ("It did not beat the model in use, which stays in use. The new adapter is kept on the server as "
                "{name}: choose it under Model & adapter > Server adapter to use it anyway.")


def start_remote(panel, engine):
    """GUI thread: start the server finetune for ``panel`` (a FinetunePanel); returns the worker."""
    from .finetune_panel import auto_budget
    from .remote import remote_train_job

    s = panel.session
    budget = s.budget_s or auto_budget(str(engine.info().get("device", "cpu")))
    settings = {"variant": s.variant, "max_steps": s.max_steps or None, "budget_s": budget,
                "batch_size": s.train_batch_size, "init_adapter": engine.adapter}
    panel.begin_run(budget, settings["max_steps"], f"Starting on {engine.client.url}…")
    panel.worker = workers.start(
        remote_train_job, engine.client, engine.project, settings, panel._cancel, what="finetuning on the server",
        on_yield=panel._event, on_return=lambda result: remote_done(panel, engine, result),
        on_finish=lambda: panel._set_running(False),
        progress={"total": int(settings["max_steps"] or budget), "desc": "Finetuning adapter (server)"},
        cancel_event=panel._cancel, group=s.workers, title=texts.finetune_title(s.prompt) + " on the server")
    pbar = getattr(panel.worker, "pbar", None)
    if pbar is not None:  # as locally: only steps (or seconds) move the bar
        panel.worker.yielded.disconnect(pbar.increment_with_overflow)
        pbar.bar_format = texts.finetune_bar_format(panel._bar_seconds)
    return panel.worker


def remote_done(panel, engine, result) -> None:
    """GUI thread: show before -> after, and use the server's new adapter when it did better."""
    if result is None or result.cancelled or not result.adapter_name:
        panel._done(result)  # the local "Cancelled." text reads the same fields
        return
    s = panel.session
    panel._result_prompt = s.prompt
    text = texts.dice_result(result.before.get("dice"), result.after.get("dice"), result.heldout, False)
    panel.status.setText(texts.done_status(result))
    if result.before and not result.improved:
        panel.result.setText(f"{text}\n{NOT_IMPROVED.format(name=result.adapter_name)}")
        return
    engine.load_adapter(result.adapter_name)
    s.model_changed.emit()  # the Server adapter row shows it
    panel.result.setText(f"{text}\nServer adapter {result.adapter_name} is now in use.")
    s.resegment_requested.emit()
