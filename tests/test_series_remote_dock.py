"""The Series section of a dock connected to ``napari-vlsm serve`` (a real child process on
127.0.0.1, a real hidden napari window): the server's worklist, shared with another annotator.

Next leases from the server, the item comes with its geometry, corrections name the item, Mark done
has the server write the mask on the scan's grid, Skip and a held item are the server's statuses,
the read-ahead follows the server's plan, and a dock opened again lands on the item it held."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")

from napari.layers import Image, Labels  # noqa: E402

from napari_vlsm._napari import layers as L  # noqa: E402
from napari_vlsm._napari.series_remote import RemoteSeries  # noqa: E402
from napari_vlsm._napari.server_client import connect_session, detach_engine  # noqa: E402
from napari_vlsm.client import VLSMClient  # noqa: E402
from napari_vlsm.core.worklist import Worklist  # noqa: E402
from napari_vlsm.server.process import ServerProcess  # noqa: E402

from dock_helpers import WAIT_MS  # noqa: E402
from series_helpers import settle, write_images  # noqa: E402
from worklist_helpers import annotator, server_project  # noqa: E402

pytestmark = pytest.mark.gui
PROJECT = "colon"


def write_scan(path):
    """A small NIfTI whose grid is not the identity (spacing, origin and a flipped axis)."""
    import nibabel as nib

    data = np.random.default_rng(3).normal(40, 30, (20, 24, 6)).astype(np.int16)
    affine = np.array([[-0.8, 0, 0, 12.5], [0, 0.9, 0, -30.0], [0, 0, 2.5, 7.0], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    with ServerProcess(tiny_model_dir, tmp_path_factory.mktemp("server")) as proc:
        yield proc


@pytest.fixture()
def project(server, request, tmp_path_factory):
    """A server project of its own for each test (leases and statuses never leak between tests):
    three frames and a scan, added as an admin does, on the server."""
    folder = tmp_path_factory.mktemp("inputs")
    write_images(folder, n=3)
    write_scan(folder / "scan.nii.gz")
    name = f"{PROJECT}-{request.node.name[5:20].replace('_', '-')}"
    with Worklist(server.project_root / name) as wl:
        wl.add([folder])
    return name


@pytest.fixture()
def connect(make_dock, server, project, tmp_path):
    def make():
        viewer, dock = make_dock()
        dock.segment.prompt.setCurrentText("polyp")
        connect_session(dock.session, server.url, server.token, project, tmp_path / "outbox")
        qtbot_wait(lambda: isinstance(dock.series.worklist, RemoteSeries) and dock.series.worklist.items())
        settle(QTBOT["bot"], dock)  # an item this computer held (an earlier test's) has opened again
        return viewer, dock
    return make


QTBOT = {}


def qtbot_wait(condition):
    QTBOT["bot"].waitUntil(lambda: bool(condition()), timeout=WAIT_MS)


@pytest.fixture(autouse=True)
def _bot(qtbot):
    QTBOT["bot"] = qtbot
    yield
    QTBOT.clear()


def press_next(dock):
    before = dock.series.item.id if dock.series.item else None
    dock.series.btn_next.click()
    qtbot_wait(lambda: not dock.series.opening and (dock.series.item is None or dock.series.item.id != before))
    settle(QTBOT["bot"], dock)


def read_ahead_after_next(dock):
    """In order: Next, then wait for the read-ahead; -> the id it read first."""
    series = dock.series
    series.order.setCurrentIndex(series.order.findData("in-order"))
    press_next(dock)
    qtbot_wait(lambda: series.prefetch.ready())
    return series.prefetch.ready()[0]


def by_name(listing, name):
    return next(i for i in listing["items"] if i["name"] == name)


def test_a_series_on_the_server(qtbot, connect, server, project):
    viewer, dock = connect()
    series = dock.series
    assert series.table.rowCount() == 4 and series.counts.text().startswith("0 / 4 done")
    press_next(dock)
    first = series.item
    assert first is not None and series.worklist.get(first.id).status == "in-progress"
    images = [layer for layer in viewer.layers if isinstance(layer, Image)]
    masks = [layer for layer in viewer.layers if isinstance(layer, Labels)]
    assert len(images) == 1 and len(masks) == 1
    assert L.source_id(images[0], (0, 1)) == f"worklist:{first.id}"  # no server path on this computer

    # another annotator never gets the item this dock holds
    ben = annotator(server, project, "ben")
    assert ben.plan(count=8) and first.id not in [i["id"] for i in ben.plan(count=8)]

    # a correction names the item: the server counts it for the item and can rebuild the mask from it
    masks[0].data_setitem((np.arange(5, 15), np.arange(5, 15)), 1)
    dock.corrections.btn_add.click()
    qtbot.waitUntil(lambda: not dock.corrections.saving, timeout=WAIT_MS)
    stored = VLSMClient(server.url, server.token).corrections(project)["samples"]
    assert [s["source"] for s in stored] == [f"worklist:{first.id}"]
    qtbot.waitUntil(lambda: series.worklist.get(first.id).corrections == 1, timeout=WAIT_MS)
    assert by_name(ben.status(), first.name)["corrections"] == 1

    # Mark done: the server writes the mask, then the status
    series.btn_done.click()
    qtbot.waitUntil(lambda: series.status.text().startswith("Done"), timeout=WAIT_MS)
    listing = ben.status()
    assert by_name(listing, first.name)["status"] == "done"
    saved = list((server.project_root / project / "masks").glob(f"{first.id:04d}_*"))
    assert saved, "the server wrote no mask"
    labels, _legend = ben.mask(first.id)
    np.testing.assert_array_equal(labels != 0, masks[0].data != 0)

    # Skip: the server's status, and Next moves on
    press_next(dock)
    skipped = series.item
    series.btn_skip.click()
    qtbot_wait(lambda: not series.opening and series.item is not None and series.item.id != skipped.id)
    assert by_name(ben.status(), skipped.name)["status"] == "skipped"


def test_a_scan_from_the_server_keeps_its_geometry(qtbot, connect, server, project):
    import nibabel as nib

    from napari_vlsm.core.medical import read_volume

    viewer, dock = connect()
    series = dock.series
    scan = next(i for i in series.worklist.items() if i.name.startswith("scan"))
    series.open_id(scan.id)
    qtbot_wait(lambda: series.item is not None and series.item.id == scan.id and not series.opening)
    settle(qtbot, dock)
    here = read_volume(_scan_path(server, project))
    image = series.image
    np.testing.assert_allclose(image.scale, here.spacing)
    np.testing.assert_allclose(image.translate, here.origin)
    assert image.data.shape == here.shape
    labels = series.mask_layer()
    labels.data[:] = 0
    labels.data[here.shape[0] // 2, 4:10, 4:12] = 1
    series.btn_done.click()
    qtbot.waitUntil(lambda: series.status.text().startswith("Done"), timeout=WAIT_MS)
    written = next((server.project_root / project / "masks").glob(f"{scan.id:04d}_*.nii.gz"))
    mask, source = nib.load(written), nib.load(_scan_path(server, project))
    assert mask.shape == source.shape
    np.testing.assert_allclose(mask.affine, source.affine, atol=1e-4)  # on the scan's own grid
    assert int(np.count_nonzero(np.asarray(mask.dataobj))) == 6 * 8


def _scan_path(server, project):
    with Worklist(server.project_root / project) as wl:
        return next(i.path for i in wl.items() if i.name.startswith("scan"))


def test_read_ahead_follows_the_server_and_a_dock_opened_again_lands_on_its_item(qtbot, connect, server):
    viewer, dock = connect()
    series = dock.series
    planned = read_ahead_after_next(dock)

    def not_again(*args, **kwargs):
        raise AssertionError("Next read or segmented the item again although it was done ahead")

    with pytest.MonkeyPatch.context() as m:
        m.setattr(series.worklist, "read", not_again)
        m.setattr(dock.session.segmenter, "predict", not_again)
        press_next(dock)
    assert series.item.id == planned  # the item read ahead is the one the server handed out
    assert series.status.text().endswith("the model's proposal.")  # the server's, computed ahead
    held = series.item.id
    series.mask_layer().data[2:10, 2:10] = 1
    viewer.window.remove_dock_widget(dock)  # the dock closes: the mask goes to the server, the lease stays
    _viewer, again = connect()
    qtbot_wait(lambda: again.series.item is not None)
    settle(qtbot, again)
    assert again.series.item.id == held
    assert again.series.mask_layer().data[2:10, 2:10].all()  # its saved mask came back from the server


def test_an_item_another_annotator_holds_is_not_opened(qtbot, connect, server, project, notes):
    viewer, dock = connect()
    ana = annotator(server, project, "ana")
    taken = ana.next(order="in-order")
    assert taken is not None
    dock.series.open_id(taken["id"])
    qtbot_wait(lambda: not dock.series.opening)
    assert dock.series.item is None or dock.series.item.id != taken["id"]
    assert "held by" in dock.series.status.text()
    ana.release(taken["id"])


def test_disconnecting_goes_back_to_this_computers_series(qtbot, connect, server, project, notes):
    viewer, dock = connect()
    press_next(dock)
    held = dock.series.item.id
    detach_engine(dock.session)
    qtbot_wait(lambda: not dock.series.remote and dock.series.item is None)
    assert dock.series.worklist is None  # this computer's project has no series
    assert not [layer for layer in viewer.layers if isinstance(layer, (Image, Labels))]
    assert not [n for n in notes if "Traceback" in n or "error" in n.lower()]
    # the item stays leased to this computer until its lease ends: another annotator passes over it
    assert held not in [i["id"] for i in annotator(server, project, "ben").plan(count=8)]


def test_what_was_read_for_one_project_is_never_shown_for_another(qtbot, connect, server, project, tmp_path_factory):
    other = f"{project}-b"  # item ids repeat between projects: ids 1-4 here too, other pixels
    folder = tmp_path_factory.mktemp("other")
    write_images(folder, n=4, shape=(64, 80))
    with Worklist(server.project_root / other) as wl:
        wl.add([folder])
    viewer, dock = connect()
    series = dock.series
    ahead = read_ahead_after_next(dock)
    connect_session(dock.session, server.url, server.token, other, tmp_path_factory.mktemp("outbox"))
    qtbot_wait(lambda: series.remote and series.worklist.key[2] == other and series.worklist.items() and series.settled())
    series.open_id(ahead)
    qtbot_wait(lambda: series.item is not None and series.item.id == ahead and series.settled())
    assert series.image.data.shape[:2] == (64, 80)  # the other project's frame, not the one read ahead


def test_a_disconnect_while_next_is_on_its_way_drops_the_answer(qtbot, connect, server, project, notes, monkeypatch):
    import time

    viewer, dock = connect()
    series = dock.series
    press_next(dock)
    slow = series.worklist.take_next

    def take_next(*args):
        time.sleep(1.5)  # the server answers while the user disconnects
        return slow(*args)

    monkeypatch.setattr(series.worklist, "take_next", take_next)
    series.btn_next.click()
    assert series.opening
    detach_engine(dock.session)
    qtbot.wait(2500)
    qtbot_wait(lambda: not series.opening and not series.remote and series.item is None)
    assert series.btn_next.isEnabled() is False  # this computer's project has no series
    assert not [n for n in notes if "bug" in n.lower() or "Traceback" in n]


def test_the_item_on_screen_stays_leased_and_a_lost_one_is_never_overwritten(qtbot, connect, server, project,
                                                                            notes, monkeypatch):
    from napari_vlsm._napari import series_remote_steps

    monkeypatch.setattr(series_remote_steps, "LEASE_S", 2.0)  # renewed every 0.67 s
    viewer, dock = connect()
    series = dock.series
    press_next(dock)
    mine = series.item.id
    qtbot.wait(4000)  # twice the lease: renewed meanwhile
    ben = annotator(server, project, "ben")
    assert mine not in [i["id"] for i in ben.plan(count=8)]
    # the dock's renewals stop reaching the server (a laptop asleep): the lease ends, a colleague
    # takes the item and saves
    monkeypatch.setattr(series.worklist, "renew", lambda item_id, lease_s: series.worklist.get(item_id))
    qtbot.wait(3000)
    ben.hold(mine, 600)
    ben.save_mask(mine, np.full(series.image.data.shape[:2], 1, np.uint8), [{"value": 1, "name": "polyp", "prompt": "polyp"}])
    series.mask_layer().data[:] = 0
    press_next(dock)  # the dock moves on; its mask of the lost item is not sent
    assert series.item.id != mine
    assert any("Mask not sent" in n for n in notes)
    labels, _ = ben.mask(mine)
    assert labels.all()  # ben's mask, not overwritten by the dock's empty one


def test_skip_without_a_mask_sets_the_status(qtbot, connect, server, project):
    viewer, dock = connect()
    series = dock.series
    dock.segment.prompt.setCurrentText("")  # no prompt: no proposal, no mask layer
    press_next(dock)
    skipped = series.item
    assert series.mask_layer() is None
    series.btn_skip.click()
    qtbot_wait(lambda: not series.opening and series.item is not None and series.item.id != skipped.id)
    assert by_name(annotator(server, project, "ben").status(), skipped.name)["status"] == "skipped"


def test_a_real_ct_series_through_the_server_sits_on_its_scan(qtbot, make_dock, server, shared_data, tmp_path):
    """The DICOM CT of ../shared (20 slices, LAS) and a MR: through the server each opens with the
    spacing and origin this computer's reader gives, and a mask marked done is written by the server
    on the CT's own grid: TotalSegmentator's segmentation of that series has the same shape and affine."""
    import nibabel as nib

    from napari_vlsm.core.worklist import read_item

    base = shared_data / "geometry" / "totalseg"
    project = server_project(server, "shared-ct", [base / "example_ct_dicom", base / "example_mr_sm.nii.gz"])
    viewer, dock = make_dock()
    dock.segment.prompt.setCurrentText("liver")
    connect_session(dock.session, server.url, server.token, "shared-ct", tmp_path / "outbox")
    series = dock.series
    qtbot_wait(lambda: series.remote and len(series.worklist.items()) == 2)
    with Worklist(project) as wl:
        local = {i.id: read_item(i) for i in wl.items()}
    for item in series.worklist.items():
        series.open_id(item.id)
        qtbot_wait(lambda item=item: series.item is not None and series.item.id == item.id and series.settled())
        here = local[item.id]
        np.testing.assert_allclose(series.image.scale, here.spacing, rtol=1e-6)
        np.testing.assert_allclose(series.image.translate, here.origin, rtol=1e-6, atol=1e-4)
        assert series.image.data.shape == here.shape
    ct = next(i for i in series.worklist.items() if i.name == "example_ct_dicom")
    series.open_id(ct.id)
    qtbot_wait(lambda: series.item.id == ct.id and series.settled())
    labels = series.mask_layer()
    labels.data[:] = 0  # the (random) model's proposal goes: only this region is the mask
    labels.data[10, 200:260, 220:300] = 1
    series.btn_done.click()
    qtbot.waitUntil(lambda: series.status.text().startswith("Done"), timeout=WAIT_MS)
    written = nib.load(next((project / "masks").glob(f"{ct.id:04d}_*.nii.gz")))
    reference = nib.load(base / "example_seg_dicom.nii.gz")
    # the same voxels in the world (the files may store the rows in opposite orders: a DICOM series
    # has no NIfTI header of its own to copy), so any viewer overlays them
    ours, theirs = nib.as_closest_canonical(written), nib.as_closest_canonical(reference)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours.affine, theirs.affine, atol=1e-3)
    assert int(np.count_nonzero(np.asarray(written.dataobj))) == 60 * 80
