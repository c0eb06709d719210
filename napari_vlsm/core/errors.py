"""Errors a user can cause. Each message names the bad value and the fix.

The CLI prints ``str(err)`` on one line and exits with code 2; the widget shows it as a
notification. Anything that is not a :class:`VLSMError` is a bug in napari-vlsm.
"""


class VLSMError(Exception):
    """Base class for every problem the user can fix (bad input, missing model, bad file)."""


class ModelLoadError(VLSMError):
    """The model source (hub id or folder) cannot be loaded."""


class AdapterError(VLSMError):
    """An adapter file is missing, damaged, or made for another base model."""


class ImageError(VLSMError):
    """An image cannot be turned into model input (shape, dtype, content)."""


class PromptError(VLSMError):
    """A text prompt is empty or otherwise unusable."""


class MaskError(VLSMError):
    """A mask (correction) does not match its image or is not binary."""


class StoreError(VLSMError):
    """The correction store cannot be read or written (permissions, disk full, damage)."""


class TrainingError(VLSMError):
    """Finetuning cannot start or continue (no samples, bad settings)."""


class SettingError(VLSMError, ValueError):
    """A setting is out of range (threshold, batch size); the message names the allowed range."""


class WorklistError(VLSMError):
    """The series worklist cannot be read or written (read-only folder, busy, unknown item)."""
