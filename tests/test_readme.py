"""The README's command-line examples run as written (issue 14: its finetune example once lacked
--prompt). Each example line is taken from README.md itself; only the model folder is replaced by a
small random-weight CLIPSeg (nothing is downloaded: HF_HUB_OFFLINE is set)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
MODEL = "./clipseg-rd64-refined"


def readme_examples() -> list[str]:
    """The lines of the bash block that follows 'Examples:' in README.md."""
    text = README.read_text(encoding="utf-8")
    match = re.search(r"Examples:\s*```bash\n(.*?)```", text, re.S)
    assert match, "README.md has no 'Examples:' bash block"
    return [line for line in match.group(1).splitlines() if line.strip() and not line.startswith("#")]


def test_the_examples_are_there_and_finetune_names_a_prompt():
    lines = readme_examples()
    assert {shlex.split(line)[1] for line in lines} == {"info", "predict", "finetune", "evaluate"}
    finetune = next(line for line in lines if shlex.split(line)[1] == "finetune")
    assert "--prompt" in finetune


@pytest.fixture
def readme_folder(tmp_path, tiny_model_dir):
    """What the examples expect in the current folder: the model, fundus.png, scan.nii.gz, corrections/."""
    import nibabel as nib
    from PIL import Image

    os.symlink(tiny_model_dir, tmp_path / MODEL)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "fundus.png")
    scan = rng.integers(-200, 300, (32, 32, 4)).astype(np.int16)  # a small CT in Hounsfield units
    nib.save(nib.Nifti1Image(scan, np.diag([0.8, 0.8, 2.5, 1.0])), tmp_path / "scan.nii.gz")
    for sub in ("images", "masks"):
        (tmp_path / "corrections" / sub).mkdir(parents=True)
    for i in range(3):
        image = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
        mask = np.zeros((64, 64), np.uint8)
        mask[10 + 5 * i: 40 + 5 * i, 16:48] = 255
        Image.fromarray(image).save(tmp_path / "corrections" / "images" / f"case{i}.png")
        Image.fromarray(mask).save(tmp_path / "corrections" / "masks" / f"case{i}.png")
    return tmp_path


def test_the_readme_examples_run_as_written(readme_folder):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(README.parent), os.environ.get("PYTHONPATH", "")])}
    for line in readme_examples():  # in order: finetune writes the adapter evaluate reads
        argv = shlex.split(line)
        assert argv[0] == "napari-vlsm" and MODEL in argv, line
        cmd = [sys.executable, "-c", "import sys; from napari_vlsm.cli import main; sys.exit(main())", *argv[1:]]
        proc = subprocess.run(cmd, cwd=readme_folder, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{line}\n{proc.stderr[-2000:]}"
    assert (readme_folder / "disc.safetensors").is_file()
    assert any((readme_folder / "masks").iterdir())
    assert (readme_folder / "masks" / "scan__liver.nii.gz").is_file()
    assert (readme_folder / "labels" / "fundus__labels.png").is_file()
