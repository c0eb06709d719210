"""Every sentence the dock shows a user, in one place (wording is reviewed here, not in code)."""

from __future__ import annotations

PREFIX = "napari-vlsm: "
# napari's toast shows about 40 characters of a notification's first line on a 1920-pixel screen
# (measured in the real window, issue 22); the rest opens with the toast's arrow. So every text
# here is written "meaning first line\ndetails": the first line at most HEAD_MAX characters
# (placeholders counted as written; toast() shortens what a long value still pushes over). Tooltips
# (TIP_*) are not toasts and are exempt. tests/test_texts_length.py enforces both rules.
HEAD_MAX = 40

NO_IMAGE = (
    "No image to segment\n"
    "Open an image (File > Open, or File > Open Sample > napari-vlsm) and choose it under 'Image'"
)
EMPTY_PROMPT = (
    "Type what to segment under 'Prompt'\n"
    "For example: polyp, liver, skin lesion; then press Enter"
)
MULTISCALE = (
    "Multiscale images cannot be segmented\n"
    "Image '{name}' is a pyramid; napari-vlsm segments single-resolution images. "
    "Open a single resolution level as its own layer"
)
NO_MASK = (
    "No '{target}' mask yet: segment first\n"
    "There is no '{target}' mask for image '{image}' yet: press 'Segment slice' first "
    "(the model's proposal becomes a Labels layer you can correct)"
)
NO_PROPOSAL = "No proposal kept here: segment first\nNo model proposal is kept for this slice of '{layer}'"
BUSY = "Busy: wait, or press Cancel\nStill {job}: wait for it to finish or press Cancel"
NO_CORRECTIONS = (
    "No corrections stored yet\n"
    "Correct a mask, press 'Add correction'. Project {root} has none; "
    "store at least one per structure before finetuning"
)
NO_LATEST = (
    "No adapter trained in this project\n"
    "No adapter has been trained in project {root} yet: finetune once, or choose an adapter file"
)
NEW_ADAPTER_EDITED = (
    "New adapter in use; your edits are kept\n"
    "Your edits on this slice are kept: press 'Segment slice' to see "
    "the adapter's proposal here (Ctrl+Z brings your mask back)"
)
NOT_IMPROVED = (
    "Not better: the model in use stays\n"
    "It did not beat the model in use. The new adapter is saved as {name}: "
    "choose it under Model & adapter > Adapter to use it anyway."
)
NOTHING_IN_FOLDER = (
    "Nothing to open in this folder\n"
    "Folder {folder} {held}. napari-vlsm reads a DICOM series, or NIfTI, NRRD and MHA volumes "
    "(.nii, .nii.gz, .nrrd, .mha), and napari's own reader found no images in it either."
)
READERS_SET = (
    "Medical files now open with napari-vlsm\n"
    "napari will open {patterns} and DICOM folders with napari-vlsm's reader, with their geometry, "
    "without asking. Change it in File > Preferences > Plugins."
)

# BANNER_*: lines shown at the top of the dock (word-wrapped, not toasts): exempt like TIP_*.
BANNER_DEMO = (
    "Demo model: random weights, its masks are noise until you finetune, or choose a real model folder"
)
DEMO_SUFFIX = " (demo model)"

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
    "Earlier finetune ending: wait a moment\n"
    "A finetune started before the dock was closed is finishing its last step; it keeps its best adapter."
)
FINISHED_ELSEWHERE = "Earlier finetune ended. Ready.\nSee its notification for what it kept."

STOPPED = {
    "max_steps": "step limit reached",
    "epochs": "all epochs done",
    "budget": "time budget reached",
    "early_stopping": "no longer improving",
    "cancelled": "cancelled",
    "closed": "the dock or napari was closed",
}


def finetune_title(prompt: str | None) -> str:
    """The running finetune in words, for napari's close dialog and ours (close_guard.py)."""
    return f"Finetuning the adapter for '{prompt}'" if prompt else "Finetuning the adapter"


def finetune_bar_format(seconds: bool) -> str:
    """napari's activity bar for a finetune (a tqdm format; napari shows what follows the "|"):
    seconds of the time budget as seconds, or optimiser steps as steps. tqdm's default read
    "44/90 [00:45<00:46, 1.01s/it]", seconds counted as iterations."""
    unit = "s of the time budget" if seconds else "steps"
    return "{desc}|{n_fmt}/{total_fmt} " + unit + " [{elapsed}<{remaining}]"


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
    if result is None or result.adapters is None or result.adapter_path is None:
        return toast("Finetune stopped: nothing learnt\n"
                     "The dock was closed before anything was learnt. Nothing was saved; the corrections "
                     "are kept. Reopen the dock and finetune again.")
    name = result.adapter_path.name
    dice = dice_result(result.before.get("dice"), result.after.get("dice"), result.heldout, False)
    if result.improved:
        return toast(f"Finetune stopped (dock closed); kept\nIts best adapter is kept: saved as {name}, "
                     f"now the project's latest adapter. {dice}")
    return toast(f"Finetune stopped (dock closed)\nThe adapter in use stays. The run's best, saved as {name}, "
                 f"did not beat the starting point ({dice}); choose it under Model & adapter > Adapter "
                 "to use it anyway.")


_CUTS = ("; ", ". ", ": ", " (", ", ", " \u2192 ", " - ")


def headline(text: str) -> str:
    """The first HEAD_MAX characters' worth of meaning: up to a separator, else whole words and an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= HEAD_MAX:
        return text
    cuts = [text.find(sep) for sep in _CUTS]
    fits = [cut for cut in cuts if 12 <= cut <= HEAD_MAX]
    if fits:
        return text[:min(fits)]
    return text[: HEAD_MAX - 1].rsplit(" ", 1)[0].rstrip(",;:") + "\u2026"


def toast(message: str, what: str = "") -> str:
    """A notification: the meaning first (at most HEAD_MAX characters), then ``napari-vlsm:`` and
    the details, which the toast's arrow opens. A message written "head\ndetails" keeps its head;
    a one-line message (a core error) is cut at a separator and kept whole in the details."""
    text = str(message).strip()
    while text.lower().startswith("napari-vlsm:"):
        text = text[len("napari-vlsm:"):].lstrip()
    head, _, detail = text.partition("\n")
    head, detail = " ".join(head.split()), " ".join(detail.split())
    short = headline(head)
    if short != head:
        detail = f"{head}. {detail}" if detail else head
    short = short.rstrip(".")
    if what:
        detail = f"{detail} (while {what})".strip()
    return f"{short}\n{PREFIX}{detail}".rstrip()  # napari-vlsm always named: where a message came from


def user_error(what: str, exc: BaseException) -> str:
    """A user-caused problem: the core's message already names the bad value and the fix."""
    return toast(str(exc), what)


def unexpected_error(what: str, exc: BaseException) -> str:
    return toast(f"Unexpected error: please report it\n{(what or 'a task').capitalize()} failed: "
                 f"{type(exc).__name__}: {exc}. This is a bug in napari-vlsm; the details are in the log.")


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
