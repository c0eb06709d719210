"""Shared fixtures: small random-weight CLIPSeg checkpoints written with save_pretrained.

First of all, the session's isolation (tests/isolation.py): HOME, the XDG folders, napari's settings
file and napari-vlsm's variables point into a temporary home from here on, for every test and every
subprocess, and the session fails if a file of the real user's napari or napari-vlsm folders changed.
"""

from __future__ import annotations

import isolation  # noqa: I001 (first: nothing may read HOME or the XDG folders before it)

FAKE_HOME, USER_FILES = isolation.isolate()

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def _no_denormals():
    # Random weights on a CPU produce denormal floats that make timings jump 5-40x.
    import torch

    torch.set_flush_denormal(True)
    yield


def pytest_sessionfinish(session, exitstatus):
    """Fail the run when a file of the real user's napari or napari-vlsm folders changed."""
    changed = USER_FILES.changes()
    if changed:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = ["the REAL user's files changed during the tests (tests/isolation.py):", *changed[:20],
                 "(a napari or a test run of an older checkout running at the same time changes them too)"]
        if reporter is not None:
            reporter.write_sep("=", "user files touched", red=True)
            reporter.write_line("\n".join(lines))
        else:
            import sys

            print("\n".join(lines), file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config):
    isolation.remove(FAKE_HOME)


@pytest.fixture(autouse=True)
def _private_dock_settings(tmp_path_factory, monkeypatch):
    # Each test its own dock settings (the session's fake home holds the rest; isolation.py). After a
    # monkeypatch.undo() the session's fake config folder is back, never the user's.
    # (beside the test's tmp_path, not in it: tests list what they wrote there)
    config = tmp_path_factory.mktemp("user-config")
    monkeypatch.setenv("NAPARI_VLSM_CONFIG_DIR", str(config))
    # a returning user: napari's reader preference was set before (tests/test_reader_preference.py
    # removes this to see the first time), so no first-run notice mixes with what a test counts
    from napari_vlsm._napari.reader_preference import MARKER

    (config / MARKER).write_text('{"set": []}\n')


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random CLIPSeg folder in the hub's layout (loads in milliseconds)."""
    from napari_vlsm.core.random_model import write_random_clipseg

    return write_random_clipseg(tmp_path_factory.mktemp("tiny-clipseg"), arch="tiny", seed=0)


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    """The tiny model loaded in fp32 on the CPU, fresh for each test module (modules may override)."""
    from napari_vlsm.core.loading import load_model

    return load_model(tiny_model_dir, device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one thread is faster, and 2 OpenMP threads on a shared 2-core machine stall
    (measured 10-100x slower under load). Use with ``pytestmark = pytest.mark.usefixtures(...)``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def full_model_dir(tmp_path_factory) -> Path:
    """The real CLIPSeg architecture with random weights (150,747,746 parameters, ~600 MB)."""
    from napari_vlsm.core.random_model import write_random_clipseg

    return write_random_clipseg(tmp_path_factory.mktemp("full-clipseg"), arch="full", seed=0)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or skip: a user's machine does not have it."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent (only development and CI machines have it)")
    return SHARED_DATA


# ----------------------------------------------------------------------------- the dock's fixtures
# (plain helpers: tests/dock_helpers.py). napari is imported inside them: non-GUI tests run without it.


@pytest.fixture
def notes():
    """Every notification shown during the test (messages)."""
    from napari.utils.notifications import notification_manager

    seen: list[str] = []

    def record(notification):
        seen.append(str(notification.message))

    notification_manager.notification_ready.connect(record)
    yield seen
    notification_manager.notification_ready.disconnect(record)


@pytest.fixture
def make_dock(make_napari_viewer, tiny_model_dir, tmp_path):
    """``make(**viewer_kwargs) -> (viewer, dock)``: the dock on a (hidden) viewer with the tiny model
    and a project in tmp_path."""
    from napari_vlsm._napari.dock import VLSMDock

    def make(**viewer_kwargs):
        viewer = make_napari_viewer(**viewer_kwargs)
        dock = VLSMDock(viewer)
        viewer.window.add_dock_widget(dock, name="Text segmentation")
        dock.set_model_source(str(tiny_model_dir))
        dock.session.set_project(tmp_path / "project")
        return viewer, dock

    return make


@pytest.fixture
def force_dice(monkeypatch):
    """Set the Dice a real finetune reports, to drive the dock's keep-or-switch decision."""
    import napari_vlsm.core.training as training

    real = training.finetune

    def force(before: float, after: float):
        def finetune(*args, **kwargs):
            result = yield from real(*args, **kwargs)
            result.before = {**result.before, "dice": before}
            result.after = {**result.after, "dice": after}
            return result

        monkeypatch.setattr(training, "finetune", finetune)

    return force
