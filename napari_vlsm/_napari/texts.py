"""Every sentence the dock shows a user, in one place (wording is reviewed here, not in code)."""

from __future__ import annotations

PREFIX = "napari-vlsm: "

NO_IMAGE = (
    "no image to segment: open an image (File > Open, or File > Open Sample > napari-vlsm) "
    "and choose it under 'Image'"
)
EMPTY_PROMPT = "type what to segment under 'Prompt' (for example: polyp, liver, skin lesion), then press Enter"
MULTISCALE = (
    "image '{name}' is multiscale (a pyramid); napari-vlsm segments single-resolution images. "
    "Open a single resolution level as its own layer"
)
NO_MASK = (
    "there is no '{target}' mask for image '{image}' yet: press 'Segment slice' first "
    "(the model's proposal becomes a Labels layer you can correct)"
)
NO_PROPOSAL = "no model proposal is kept for this slice of '{layer}': segment it first"
BUSY = "busy ({job}): wait for it to finish or press Cancel"
NO_CORRECTIONS = (
    "no corrections stored yet: correct a mask, press 'Add correction'. Project {root} has none; "
    "store at least one per structure before finetuning"
)
NO_LATEST = (
    "no adapter has been trained in project {root} yet: finetune once, or choose an adapter file"
)
NEW_ADAPTER_EDITED = (
    "the new adapter is in use. Your edits on this slice are kept: press 'Segment slice' to see "
    "the adapter's proposal here (Ctrl+Z brings your mask back)"
)
NOT_IMPROVED = (
    "It did not beat the model in use, which stays in use. The new adapter is saved as {name}: "
    "choose it under Model & adapter > Adapter to use it anyway."
)
NOT_IMPROVED_SERVER = (
    "It did not beat the model in use, which stays in use. The new adapter is kept on the server as "
    "{name}: choose it under Model & adapter > Server adapter to use it anyway."
)


def not_improved(name: str | None, on_server: bool) -> str:
    return (NOT_IMPROVED_SERVER if on_server else NOT_IMPROVED).format(name=name or "(not saved)")


def in_use(name: str, on_server: bool) -> str:
    return f"{'Server adapter' if on_server else 'Adapter'} {name} is now in use."

# Tooltips and labels -------------------------------------------------------------------------
TIP_PROMPT = "What to segment, in plain words. Enter runs 'Segment slice'. Recent prompts are kept."
TIP_THRESHOLD = (
    "Probability above which a pixel belongs to the mask. Moving it re-thresholds the last "
    "prediction instantly (no model run); each change is one undo step."
)
TIP_SEG_SLICE = "Segment the slice you are looking at (Alt+S)."
TIP_SEG_ALL = "Segment every slice of the stack into the same Labels layer, in the background."
TIP_REVERT = "Put the model's last proposal back on this slice (your edits on it are replaced; Ctrl+Z undoes)."
TIP_PROB = "Also show the model's probability map as an image layer."
TIP_ADD = "Store this slice, its corrected mask and the model's proposal in the project (Alt+C)."
TIP_AUTOSAVE = "Store every slice you edit about one second after your last brush stroke."
TIP_FINETUNE = (
    "Train a small adapter on the stored corrections, in the background. The viewer stays usable; "
    "Cancel keeps the adapter you had."
)
ADAPTER_LATEST_ITEM = "latest of this project"
AUTO_BUDGET = "auto (90 s CPU, 30 s GPU)"
TIP_BUDGET = (
    "How long a finetune may take. It ends at this time (or the step limit) and keeps the best "
    "adapter it found."
)
TIP_MODEL = "A Hugging Face model id, or a local CLIPSeg folder (offline)."
TIP_VARIANT = "Adapter type for a NEW finetune (shallow-vlc: small and fast, the recommended default)."


FINISHING_ELSEWHERE = (
    "A finetune started before the dock was closed is finishing its last step; it keeps its best "
    "adapter. Wait a moment."
)
FINISHED_ELSEWHERE = "The earlier finetune has ended (see its notification). Ready."

STOPPED = {
    "max_steps": "step limit reached",
    "epochs": "all epochs done",
    "budget": "time budget reached",
    "early_stopping": "no longer improving",
    "cancelled": "cancelled",
    "closed": "the dock or napari was closed",
}


def stopped_reason(stopped: str) -> str:
    return STOPPED.get(stopped, stopped or "finished")


def step_status(event, eta_s: float | None = None) -> str:
    total = f"/{event.total}" if event.total else ""
    eta_s = event.eta_s if eta_s is None else eta_s
    eta = f", about {eta_s:.0f} s left" if eta_s is not None else ""
    return f"Training: step {event.step}{total}{eta}"


def done_status(result) -> str:
    return f"Done after {result.steps} steps: {stopped_reason(result.stopped)}."


def finetune_closed(result) -> str:
    """Notification for a finetune whose dock was closed (first line short, detail after)."""
    if result is None or result.adapter is None:
        return ("Finetune stopped: the dock was closed before anything was learnt.\n"
                "Nothing was saved; the corrections are kept. Reopen the dock and finetune again.")
    name = result.adapter
    dice = dice_result(result.before.get("dice"), result.after.get("dice"), result.heldout, False)
    if result.latest:
        return (f"{PREFIX}finetune stopped (dock closed); its best adapter is kept\n"
                f"Saved as {name}, now the project's latest adapter. {dice}")
    return (f"{PREFIX}finetune stopped (dock closed); the adapter in use stays\n"
            f"The run's best, saved as {name}, did not beat the starting point ({dice}); "
            "choose it under Model & adapter > Adapter to use it anyway.")


HEAD_MAX = 80  # a toast shows its first line; the rest opens with the toast's arrow


def toast(message: str, what: str = "") -> str:
    """A notification: a first line under HEAD_MAX characters saying what happened (and, when it
    fits, what to do), the whole message after it. One "napari-vlsm:" prefix, never two."""
    text = " ".join(str(message).split())
    while text.lower().startswith("napari-vlsm:"):
        text = text[len("napari-vlsm:"):].lstrip()
    room = HEAD_MAX - len(PREFIX)
    head = text
    for sep in ("; ", ". ", ": "):
        if len(head) <= room:
            break
        cut = head.find(sep)
        if cut >= 12:
            head = head[:cut]
    if len(head) > room:
        head = head[: room - 1].rsplit(" ", 1)[0] + "\u2026"
    head = PREFIX + head.rstrip(".")
    rest = text if head != PREFIX + text.rstrip(".") else ""
    if what:
        rest = f"{rest} (while {what})".strip()
    return head if not rest else f"{head}\n{rest}"


def user_error(what: str, exc: BaseException) -> str:
    """A user-caused problem: the core's message already names the bad value and the fix."""
    return toast(str(exc), what)


def unexpected_error(what: str, exc: BaseException) -> str:
    return (
        f"{PREFIX}{what or 'a task'} failed unexpectedly: please report it\n"
        f"{type(exc).__name__}: {exc}. This is a bug in napari-vlsm; the details are in the log."
    )


def info(message: str) -> str:
    return toast(message)


def counts(target: str, train: int, val: int) -> str:
    if not target:
        return "No structure chosen yet."
    return f"'{target}': {train} for training, {val} held out for validation"


def dice_result(before: float | None, after: float | None, heldout: bool, cancelled: bool) -> str:
    if before is None or after is None:
        text = "Finished."
    else:
        where = "held-out corrections" if heldout else "training corrections (no held-out yet)"
        text = f"Dice on {where}: {before:.3f} \u2192 {after:.3f}"
    if cancelled:
        text = "Cancelled: the previous adapter is kept. " + ("" if before is None else text)
    return text
