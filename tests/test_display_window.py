"""The display window (what napari shows) is chosen apart from the model's window: soft tissue for CT."""

from __future__ import annotations

import numpy as np

from napari_vlsm.core.medical.windows import display_presets, display_window, looks_like_ct


def test_ct_known_by_modality_or_by_hounsfield_values():
    rng = np.random.default_rng(0)
    hu = np.concatenate([np.full(5000, -1000), rng.integers(-100, 200, 20000), np.full(200, 1200)]).astype(np.int16)
    assert looks_like_ct(hu.reshape(1, 5, -1))
    assert display_window(hu.reshape(1, 5, -1)) == ((-160.0, 240.0), "soft-tissue")
    mr = rng.integers(0, 1500, (4, 20, 20)).astype(np.int16)
    assert not looks_like_ct(mr)
    assert display_window(mr)[1] == "auto"
    assert not looks_like_ct(hu.reshape(1, 5, -1), modality="MR")  # the header wins
    assert looks_like_ct(mr, modality="ct")
    assert not looks_like_ct(np.zeros((2, 4, 4), np.uint8))
    assert display_presets("CT")[0] == "soft-tissue" and "lung" not in display_presets("MR")


def test_real_ct_and_mr(shared_data):
    from napari_vlsm.core.medical import read_volume

    ct = read_volume(shared_data / "geometry/totalseg/example_ct_sm.nii.gz")
    mr = read_volume(shared_data / "geometry/totalseg/example_mr_sm.nii.gz")
    assert looks_like_ct(ct.array, ct.modality) and display_window(ct.array, ct.modality)[1] == "soft-tissue"
    assert not looks_like_ct(mr.array, mr.modality)
