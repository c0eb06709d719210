"""Helpers shared by the test modules (fixtures live in conftest.py): a training sample and the
bright-disk images the tiny model can learn, the tiny model made able to learn them
(``drawable_tiny``), a synthetic DICOM series (``dicom_series``), the OS threads named after
core.torch_threads (``torch_os_threads``). Import as
``from helpers import Sample, disks`` (pytest puts tests/ on sys.path)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest


@dataclass
class Sample:
    """What the trainer reads from a correction: ``.image``, ``.mask``, ``.prompts``, ``.name``
    (and ``.window`` when the correction was predicted with a fixed window)."""

    image: np.ndarray
    mask: np.ndarray
    prompts: tuple = ("disk",)
    name: str = ""
    window: tuple[float, float] | None = None


def disk_mask(h: int = 32, w: int = 32, center=None, radius: float = 8) -> np.ndarray:
    """A filled disk, centred unless ``center=(y, x)`` is given."""
    cy, cx = (h // 2, w // 2) if center is None else center
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 < radius * radius


def bright_disk_uint8(seed: int, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """A uint8 image of a bright disk (radius 7) on noise, and its mask."""
    rng = np.random.default_rng(seed)
    cy, cx = rng.integers(10, size - 10, 2)
    mask = disk_mask(size, size, (cy, cx), 7)
    image = np.clip(rng.normal(60, 15, (size, size)) + 140 * mask, 0, 255).astype(np.uint8)
    return image, mask


def disks(n: int, seed: int = 0, size=(64, 64)) -> list[Sample]:
    """Bright float32 disks on noise, two phrasings each: a task the tiny model can learn in ~100 steps."""
    rng = np.random.default_rng(seed)
    h, w = size
    out = []
    for i in range(n):
        img = rng.normal(0.3, 0.1, size).astype(np.float32)
        cy, cx, r = rng.integers(20, h - 20), rng.integers(20, w - 20), rng.integers(10, 18)
        mask = disk_mask(h, w, (cy, cx), r)
        img[mask] += 0.6
        out.append(Sample(img, mask, ("disk", "a bright disk"), f"disk{seed}-{i}"))
    return out


def drawable_tiny(tiny_model_dir):
    """The tiny random CLIPSeg, loaded (fp32, CPU), with its last decoder layer made able to draw a mask.

    A random 8-channel transposed convolution cannot output a uniform region (checked: optimising
    the decoder's inputs directly leaves Dice near 0), so nothing could learn through it. With
    non-negative weights and a negative bias, "more activation" means "foreground", as in a trained
    CLIPSeg; everything else stays random and frozen.
    """
    import torch

    from napari_vlsm.core.loading import load_model

    model = load_model(tiny_model_dir, device="cpu", precision="fp32")
    last = model.model.decoder.transposed_convolution[-1]
    with torch.no_grad():
        last.weight.abs_().mul_(0.05)
        last.bias.fill_(-2.0)
    return model


def dicom_series(folder, positions, names=None, instance_numbers=None):
    """A synthetic one-series DICOM folder: slice n is filled with the value 100 * n."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    folder.mkdir()
    series = generate_uid()
    for n, z in enumerate(positions):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False))
        ds.SeriesInstanceUID, ds.SOPInstanceUID = series, generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.ImagePositionPatient = [-10.0, -20.0, float(z)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.InstanceNumber = instance_numbers[n] if instance_numbers else n + 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.PixelData = np.full((ds.Rows, ds.Columns), 100 * n, np.int16).tobytes()
        ds.save_as(folder / (names[n] if names else f"s{n:03d}.dcm"), enforce_file_format=True)
    return folder


# ------------------------------------------------------------------ OS threads (Linux /proc)
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/task")


def os_thread_names() -> list[str]:
    names = []
    for task in Path("/proc/self/task").glob("*"):
        try:
            names.append((task / "comm").read_text().strip())
        except OSError:  # the thread ended while we looked
            pass
    return names


def torch_os_threads() -> int:
    """Threads named as core.torch_threads names its own (OpenMP's helpers inherit the name)."""
    from napari_vlsm.core.torch_threads import THREAD_NAME

    return os_thread_names().count(THREAD_NAME)


def wait_for_no_torch_threads(timeout=10.0, leave: int = 0) -> int:
    """Wait until at most ``leave`` such threads are left; -> how many are."""
    deadline = time.monotonic() + timeout
    while torch_os_threads() > leave and time.monotonic() < deadline:
        time.sleep(0.02)
    return torch_os_threads()
