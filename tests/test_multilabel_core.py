"""core/labelmap.py: the overlap rule, the legend and its JSON, the reverse split, presets; and the
engine's one image pass for N prompts composed into one label map (tiny random model)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_vlsm.core import labelmap as LM
from napari_vlsm.core.errors import PromptError, SettingError


def test_highest_probability_wins_and_below_threshold_is_background():
    p = np.zeros((3, 2, 3), np.float32)
    p[0] = [[0.9, 0.2, 0.6], [0.1, 0.55, 0.0]]
    p[1] = [[0.8, 0.7, 0.6], [0.1, 0.50, 0.0]]
    p[2] = [[0.1, 0.6, 0.1], [0.49, 0.56, 0.0]]
    out = LM.compose(p, 0.5)
    # (0,2): a tie between structures 1 and 2 -> the first listed; (1,0): 0.49 < 0.5 -> background
    np.testing.assert_array_equal(out, [[1, 2, 1], [0, 3, 0]])
    assert out.dtype == np.uint8


def test_threshold_is_inclusive_like_a_single_mask():
    p = np.array([[[0.5, 0.4999]]], np.float32)
    np.testing.assert_array_equal(LM.compose(p, 0.5), [[1, 0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_one_structure_is_exactly_the_single_mask(dtype):
    rng = np.random.default_rng(0)
    prob = rng.random((40, 30)).astype(dtype)
    for t in (0.05, 0.5, 0.93):
        single = prob >= dtype(t)
        np.testing.assert_array_equal(LM.compose(prob, t), single.astype(np.uint8))
        np.testing.assert_array_equal(LM.compose(prob[None], t), single.astype(np.uint8))


def test_compose_then_split_gives_disjoint_masks_that_match_the_rule():
    rng = np.random.default_rng(1)
    p = rng.random((4, 5, 16, 16)).astype(np.float32)  # works on stacks too: (N, Z, H, W)
    out = LM.compose(p, 0.6)
    parts = LM.masks(out, 4)
    assert sum(m.astype(int) for m in parts).max() <= 1  # no pixel in two structures
    for i, m in enumerate(parts):
        others = np.delete(p, i, axis=0).max(axis=0)
        expect = (p[i] >= 0.6) & (p[i] >= others)
        # ties go to the lower index: structure i loses a tie against an earlier one
        earlier = p[:i].max(axis=0) if i else np.full_like(p[0], -1)
        expect &= p[i] > earlier
        np.testing.assert_array_equal(m, expect)
    np.testing.assert_array_equal(out == 0, p.max(axis=0) < 0.6)


def test_many_structures_switch_to_uint16():
    p = np.zeros((300, 1, 1), np.float32)
    p[299] = 1
    out = LM.compose(p, 0.5)
    assert out.dtype == np.uint16 and out[0, 0] == 300


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "0.5", True])
def test_bad_threshold_is_a_clear_error(bad):
    with pytest.raises(SettingError, match="threshold"):
        LM.compose(np.zeros((2, 3, 3), np.float32), bad)


def test_split_structures_reads_semicolons_and_lines():
    assert LM.split_structures("liver; spleen\nleft  kidney;;") == ["liver", "spleen", "left kidney"]
    assert LM.split_structures(" Liver ; liver;LIVER ") == ["Liver"]
    assert LM.split_structures("polyp") == ["polyp"]
    assert LM.split_structures(" ; \n") == []
    assert LM.join_structures(["liver", "spleen"]) == "liver; spleen"
    assert LM.split_structures(LM.join_structures(["a b", "c"])) == ["a b", "c"]


def test_legend_values_names_colours_and_json_round_trip():
    structures = LM.legend(["Liver", "left kidney", "spleen"])
    assert [s.value for s in structures] == [1, 2, 3]
    assert [s.name for s in structures] == ["liver", "left kidney", "spleen"]
    assert structures[0].prompt == "Liver"
    colours = [s.colour for s in structures]
    assert len(set(colours)) == 3 and all(c.startswith("#") and len(c) == 7 for c in colours)
    text = LM.legend_json(structures, source="ct.tif")
    doc = json.loads(text)
    assert doc["labels"]["2"] == {"name": "left kidney", "prompt": "left kidney", "colour": colours[1]}
    assert doc["background"] == 0 and doc["source"] == "ct.tif"
    assert LM.read_legend(text) == structures
    with pytest.raises(ValueError, match="legend"):
        LM.read_legend({"labels": {"1": {"name": "x"}}})


def test_legend_refuses_an_empty_list_and_repeats():
    with pytest.raises(PromptError):
        LM.legend([])
    with pytest.raises(PromptError, match="twice"):
        LM.legend(["liver", " Liver"])


def test_palette_colours_are_distinct_hex():
    assert len(set(LM.PALETTE)) == len(LM.PALETTE)
    for c in LM.PALETTE:
        int(c[1:], 16)


def test_presets_are_valid_structure_lists():
    assert {"Abdominal CT organs", "Chest X-ray", "Brain MR"} <= set(LM.PRESETS)
    assert LM.PRESETS["Chest X-ray"] == ("left lung", "right lung", "heart")
    for prompts in LM.PRESETS.values():
        assert LM.split_structures(LM.join_structures(prompts)) == list(prompts)
        LM.legend(prompts)  # no repeats


def test_core_module_imports_neither_napari_nor_torch():
    import subprocess
    import sys

    code = ("import sys, napari_vlsm.core.labelmap; "
            "assert not {'torch', 'napari', 'qtpy'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_engine_answers_all_structures_from_one_image_pass(loaded):
    """N prompts in one predict call encode the image once; the label map composed from them equals
    the one composed from N separate single-prompt calls."""
    from napari_vlsm.core.engine import Segmenter

    seg = Segmenter(loaded=loaded)
    image = np.random.default_rng(2).integers(0, 255, (48, 40), dtype=np.uint8)
    prompts = ["liver", "spleen", "left kidney"]
    calls = []
    original = seg._runner.encode_image
    seg._runner.encode_image = lambda px: calls.append(px.shape[0]) or original(px)
    together = seg.predict(image, prompts)
    assert calls == [1]
    seg.clear_cache()
    alone = [seg.predict(image, [p])[0] for p in prompts]
    assert calls == [1, 1]  # after clearing: the first single call encodes, the others reuse its pass
    prob = np.stack([p.probability for p in together])
    np.testing.assert_allclose(prob, np.stack([p.probability for p in alone]), atol=100 * np.finfo(np.float32).eps)  # fp32 model: batching order only
    for t in (0.3, 0.5):
        out = LM.compose(prob, t)
        assert out.shape == image.shape
        np.testing.assert_array_equal(out, LM.compose(np.stack([p.probability for p in alone]), t))
