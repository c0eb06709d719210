"""Packaging: light imports, the npe2 manifest, entry points, dependencies, the built wheel."""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DIST = "napari-vlsm"
GUI_TOP_LEVEL = {"napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "superqt",
                 "vispy"}
GUI_BINDINGS = {"pyqt5", "pyqt6", "pyside2", "pyside6"}
# Modules that must import without napari/Qt: every module of the core and the CLI, found on disk
# (a new one is covered by itself); these must be among them (a missing one fails the test).
REQUIRED = ["napari_vlsm.core.errors", "napari_vlsm.core.loading", "napari_vlsm.core.forward",
            "napari_vlsm.core.engine", "napari_vlsm.core.training", "napari_vlsm.core.store",
            "napari_vlsm.core.preprocess", "napari_vlsm.core.validation", "napari_vlsm.core.model_input",
            "napari_vlsm.cli"]


def headless_modules() -> list[str]:
    names = ["napari_vlsm"]
    for package in ("core", "cli"):
        for path in sorted((ROOT / "napari_vlsm" / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__main__":
                continue  # importing it would run the CLI
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _loaded_after(imports: list[str]) -> set[str]:
    """Top-level names in sys.modules after importing ``imports`` in a fresh interpreter."""
    code = ("import importlib, json, sys\n"
            f"for name in {imports!r}: importlib.import_module(name)\n"
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_core_and_cli_import_no_napari_or_qt():
    modules = headless_modules()
    assert set(REQUIRED) <= set(modules), sorted(set(REQUIRED) - set(modules))
    gui = _loaded_after(modules) & GUI_TOP_LEVEL  # exact names: napari_vlsm is not napari
    assert not gui, f"{modules} pulled in GUI modules {sorted(gui)}"


def test_package_import_is_light():
    heavy = _loaded_after(["napari_vlsm"]) & ({"torch", "transformers"} | GUI_TOP_LEVEL)
    assert not heavy, f"`import napari_vlsm` loaded {sorted(heavy)}"


# --- the npe2 manifest ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def manifest():
    from npe2 import PluginManifest

    return PluginManifest.from_distribution(DIST)


def test_manifest_is_found_through_the_entry_point(manifest):
    (ep,) = [e for e in md.entry_points(group="napari.manifest") if e.name == DIST]
    assert ep.value == "napari_vlsm:napari.yaml"
    assert manifest.name == DIST
    assert set(manifest.categories) == {"Segmentation", "Annotation"}


def test_package_manifest_is_the_top_level_file():
    import napari_vlsm

    packaged = Path(napari_vlsm.__file__).parent / "napari.yaml"
    assert packaged.read_bytes() == (ROOT / "napari.yaml").read_bytes()
    if (ROOT / "napari_vlsm" / "napari.yaml").is_symlink():  # a checkout, not a wheel install
        assert (ROOT / "napari_vlsm" / "napari.yaml").resolve() == (ROOT / "napari.yaml")


def test_manifest_validates_from_the_top_level_file():
    from npe2 import PluginManifest

    assert PluginManifest.from_file(ROOT / "napari.yaml").name == DIST


def test_manifest_python_names_resolve(manifest):
    for command in manifest.contributions.commands:
        module, _, attr = command.python_name.partition(":")
        assert re.fullmatch(r"napari_vlsm(\.\w+)+", module) and attr.isidentifier(), command
        if importlib.util.find_spec(module) is None:
            # Only the dock may still be unwritten; everything else must exist.
            assert command.id == "napari-vlsm.make_dock", f"{module} does not exist"
            continue
        assert callable(getattr(importlib.import_module(module), attr)), command.python_name


def test_manifest_contributions(manifest):
    contrib = manifest.contributions
    (widget,) = contrib.widgets
    assert (widget.command, widget.display_name) == ("napari-vlsm.make_dock", "Text segmentation")
    assert {s.key for s in contrib.sample_data} == {"retina", "ct_slice", "mr_slice"}
    assert [m.command for m in contrib.menus["napari/layers/segment"]] == [widget.command]


def test_console_script_is_declared():
    (script,) = [e for e in md.entry_points(group="console_scripts") if e.name == DIST]
    assert script.value == "napari_vlsm.cli:main"


# --- pyproject ------------------------------------------------------------------------------------

def test_dependencies():
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = {Requirement(r).name.lower(): Requirement(r) for r in project["dependencies"]}
    assert deps["torch"].specifier.contains("2.13.0")  # the CPU wheel CI and users install first
    assert not GUI_BINDINGS & set(deps), "no Qt binding in the runtime dependencies"
    assert {"napari", "pydicom", "npe2", "imageio"} <= set(deps)  # imageio: the store's PNG masks
    extras = project["optional-dependencies"]
    assert "pyqt6" in {Requirement(r).name.lower() for r in extras["all"]}
    assert {"pytest", "pytest-qt", "pytest-xvfb"} <= {Requirement(r).name for r in extras["testing"]}


# --- the wheel ------------------------------------------------------------------------------------

def test_wheel_holds_the_manifest_as_a_file(tmp_path):
    """The wheel must carry napari.yaml itself (not a dangling link) beside the entry point."""
    import setuptools
    from npe2 import PluginManifest
    from packaging.version import Version

    if Version(setuptools.__version__) < Version("77"):
        pytest.skip(f"setuptools {setuptools.__version__} < 77 cannot build this pyproject offline")
    # Build from a copy (links kept as links) so the shared checkout gets no build/ folder.
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", ".*cache", ".hypothesis",
        "tests", "benchmarks"))
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(src)],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (wheel,) = tmp_path.glob("napari_vlsm-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        info = zf.getinfo("napari_vlsm/napari.yaml")
        assert (info.external_attr >> 16) & 0o170000 != 0o120000, "napari.yaml is a symlink"
        (tmp_path / "napari.yaml").write_bytes(zf.read(info))
        entry_points = next(n for n in zf.namelist() if n.endswith(".dist-info/entry_points.txt"))
        assert "napari-vlsm = napari_vlsm:napari.yaml" in zf.read(entry_points).decode()
    assert (tmp_path / "napari.yaml").read_bytes() == (ROOT / "napari.yaml").read_bytes()
    assert PluginManifest.from_file(tmp_path / "napari.yaml").name == DIST


def test_the_import_contracts_hold():
    """import-linter (pyproject.toml [tool.importlinter]): the layers, checked on every import,
    including those inside functions; CI runs it too (scripts/lint.sh)."""
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.skip("import-linter is not installed (pip install -e .[testing])")
    out = subprocess.run([str(lint)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert out.stdout.count(" KEPT") >= 3  # core, CLI, client


def test_the_lint_tools_come_with_the_testing_extra():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = {re.split(r"[<>=\[ ]", d, maxsplit=1)[0].lower() for d in extras["testing"]}
    assert {"ruff", "import-linter", "pre-commit"} <= names
