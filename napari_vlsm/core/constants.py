"""Names the core, the CLI and the dock share, defined once.

This module imports nothing, so the CLI's ``--help`` and the dock's start-up read these without
loading torch (``core.adapters`` resolves its torch-backed names lazily for the same reason).
"""

DEFAULT_MODEL = "CIDAS/clipseg-rd64-refined"

# The adapter variants of the VLSM-Adapter paper: "none" (the frozen model alone), then each
# style (shallow: after the encoders; dense: inside their blocks) with its scope (v: vision,
# l: language, c: the conditional embedding).
VARIANTS = ("none", "shallow-v", "shallow-vl", "shallow-vlc", "dense-v", "dense-vl", "dense-vlc")
TRAINABLE = VARIANTS[1:]  # every variant with weights to train
DEFAULT_VARIANT = "shallow-vlc"  # what a finetune trains unless told otherwise

# Where and in what precision the model computes: the loader's rule (``loading.resolve_device``,
# ``resolve_precision``), the CLI's --device/--precision choices and the dock's combo boxes.
DEVICES = ("auto", "cpu", "cuda", "mps")  # auto: CUDA if available, else CPU
PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # auto: fp16 on CUDA, bf16 on CPUs with native bf16, else fp32
