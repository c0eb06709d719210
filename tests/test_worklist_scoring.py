"""Uncertainty scores of worklist items: the formula, one shared image pass, caching, volumes."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from napari_vlsm.core.engine import Segmenter
from napari_vlsm.core.worklist import Worklist, scoring

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def segmenter(loaded):
    return Segmenter(loaded=loaded)


@pytest.fixture
def encoded(segmenter, monkeypatch):
    """How many images the image encoder has seen (the costly pass), counted at the encoder."""
    seen = []
    runner = segmenter._runner
    real = runner.encode_image

    def counting(pixels):
        seen.append(int(pixels.shape[0]))
        return real(pixels)

    monkeypatch.setattr(runner, "encode_image", counting)
    return seen


def _image(path, seed=0, shape=(48, 64, 3)):
    iio.imwrite(path, np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8))
    return path


def test_phrasings_of_a_prompt():
    assert scoring.phrasings("polyp")[0] == "polyp"
    assert "a photo of a polyp" in scoring.phrasings("polyp")
    assert len(set(scoring.phrasings("  polyp "))) == len(scoring.TEMPLATES)


def test_agreement_scores_zero_and_disagreement_more():
    sure = np.zeros((4, 40, 40), np.float32)
    sure[:, 10:30, 10:30] = 0.95
    assert scoring.map_parts(sure) == (0.0, 0.0)
    unsure = sure.copy()
    unsure[1, 10:30, 10:20] = 0.05  # one phrasing sees half of it
    unsure[2, 10:30, 10:30] = 0.55  # another barely above the threshold
    disagreement, near = scoring.map_parts(unsure)
    assert disagreement > 0.05 and near > 0.1
    assert scoring.image_score([unsure]) > scoring.image_score([sure])


def test_scores_do_not_depend_on_the_image_size():
    rng = np.random.default_rng(0)
    probs = rng.random((4, 30, 40)).astype(np.float32)
    big = np.kron(probs, np.ones((1, 9, 9), np.float32))  # the same content at 270 x 360
    assert scoring.image_score([big]) == pytest.approx(scoring.image_score([probs]), abs=0.02)


def test_volume_summary_is_the_worst_tenth():
    scores = [0.1] * 18 + [0.9, 0.7]
    value, worst = scoring.summarize_slices(scores)
    assert value == pytest.approx(0.8) and worst[:2] == (18, 19)
    assert scoring.summarize_slices([0.3])[0] == pytest.approx(0.3)


def test_one_image_pass_per_item_whatever_the_phrasings(tmp_path, segmenter, encoded):
    wl = Worklist(tmp_path / "p")
    items = wl.add([_image(tmp_path / f"{n}.png", seed=n) for n in range(3)]).added
    scoring.score_item(segmenter, items[0], ["polyp"])
    assert encoded == [1]
    scoring.score_item(segmenter, items[1], ["polyp", "tumour", "left kidney"])  # 12 phrasings
    assert encoded == [1, 1]
    plain = segmenter.predict(iio.imread(items[2].path), ["polyp"])
    assert encoded == [1, 1, 1] and plain  # a plain prediction costs the same one pass


def test_a_stack_is_scored_slice_by_slice_in_one_pass_per_slice(tmp_path, segmenter, encoded):
    stack = np.random.default_rng(1).integers(0, 4000, (5, 32, 32)).astype(np.uint16)
    stack[3] = 0  # a blank slice
    tifffile.imwrite(tmp_path / "s.tif", stack, photometric="minisblack")
    wl = Worklist(tmp_path / "p")
    item = wl.add([tmp_path / "s.tif"]).added[0]
    assert item.kind == "stack"
    score, worst = scoring.score_item(segmenter, item, ["polyp", "cyst"])
    assert sum(encoded) == 5
    assert sorted(worst) == list(range(5)) and 0.0 <= score <= 1.0


def test_rank_caches_scores_and_rescores_when_the_question_changes(tmp_path, segmenter, encoded):
    wl = Worklist(tmp_path / "p")
    items = wl.add([_image(tmp_path / f"{n}.png", seed=n) for n in range(3)]).added
    wl.set_status(items[2].id, "done")  # done items are not ranked
    progress = []
    ranked = scoring.rank(wl, segmenter, ["polyp"], on_progress=lambda d, t: progress.append((d, t)))
    assert progress == [(1, 2), (2, 2)] and sum(encoded) == 2
    scored = [i for i in ranked if i.score is not None]
    assert {i.id for i in scored} == {items[0].id, items[1].id}
    assert [i.score for i in scored] == sorted((i.score for i in scored), reverse=True)
    assert len({i.score_key for i in scored}) == 1
    scoring.rank(wl, segmenter, ["polyp"])
    assert sum(encoded) == 2  # same model, adapter and phrasings: cached in the worklist
    key = scored[0].score_key
    scoring.rank(wl, segmenter, ["polyp", "tumour"])
    assert sum(encoded) == 2  # another question on the same images: the engine's feature cache
    assert all(i.score_key != key for i in wl.items() if i.score is not None)


def test_rank_marks_a_file_that_no_longer_reads(tmp_path, segmenter):
    wl = Worklist(tmp_path / "p")
    good, bad = wl.add([_image(tmp_path / "a.png"), _image(tmp_path / "b.png", seed=1)]).added
    (tmp_path / "b.png").write_bytes(b"broken")
    scoring.rank(wl, segmenter, ["polyp"])
    assert wl.get(bad.id).status == "unreadable" and "b.png" in wl.get(bad.id).reason
    assert wl.get(good.id).score is not None


def test_the_key_follows_the_adapter(loaded):
    from napari_vlsm.core.adapters import AdapterConfig, build_adapters

    seg = Segmenter(loaded=loaded)
    plain = scoring.score_key(seg, ["polyp"])
    assert scoring.score_key(seg, ["polyp"]) == plain != scoring.score_key(seg, ["polyp"], threshold=0.4)
    seg.set_adapters(build_adapters(AdapterConfig.from_variant("shallow-v", loaded.config)))
    assert scoring.score_key(seg, ["polyp"]) != plain


def test_large_images_are_scored_at_the_model_scale():
    big = np.random.default_rng(0).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    small = scoring.model_scale(big, 352)
    assert small.shape == (360, 640, 3) and small.dtype == np.uint8
    assert abs(float(small.mean()) - float(big.mean())) < 1.0
    same = big[:500, :600]
    assert scoring.model_scale(same, 352) is same  # under twice the input size: kept as it is


def test_rank_stops_when_cancelled(tmp_path, segmenter, encoded):
    import threading

    wl = Worklist(tmp_path / "p")
    wl.add([_image(tmp_path / f"{n}.png", seed=n) for n in range(3)])
    cancel = threading.Event()
    cancel.set()
    ranked = scoring.rank(wl, segmenter, ["polyp"], cancel=cancel)
    assert encoded == [] and all(i.score is None for i in ranked)
