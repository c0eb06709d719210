"""Names defined once (core/constants.py), read without torch; the one low-precision copy rule."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from napari_vlsm.core import constants
from napari_vlsm.core.adapters import VARIANTS, AdapterConfig
from napari_vlsm.core.loading import DEFAULT_MODEL, load_model
from napari_vlsm.core.training.config import TRAINABLE


def test_shared_names_are_the_core_constants():
    # not copies kept equal by a test: the same objects
    assert VARIANTS is constants.VARIANTS and TRAINABLE is constants.TRAINABLE
    assert DEFAULT_MODEL is constants.DEFAULT_MODEL
    assert TRAINABLE == VARIANTS[1:] and "none" not in TRAINABLE


def test_devices_and_precisions_are_the_loaders_and_the_clis_choices():
    import argparse

    from napari_vlsm.cli.common import add_model_args
    from napari_vlsm.core import loading

    assert loading.DEVICES is constants.DEVICES and loading.PRECISIONS is constants.PRECISIONS
    parser = argparse.ArgumentParser()
    add_model_args(parser)
    choices = {a.dest: a.choices for a in parser._actions}
    assert choices["device"] is constants.DEVICES and choices["precision"] is constants.PRECISIONS
    for name in constants.PRECISIONS:  # every choice the CLI offers is one the loader takes
        loading.resolve_precision(name, torch.device("cpu"))


@pytest.mark.parametrize("module", ["napari_vlsm.core.constants", "napari_vlsm.core.adapters",
                                    "napari_vlsm.core.adapters.config", "napari_vlsm.core.training.config",
                                    "napari_vlsm.cli.common"])
def test_the_names_import_without_torch(module):
    code = f"import sys, {module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_the_adapters_package_still_gives_its_modules():
    from napari_vlsm.core import adapters
    from napari_vlsm.core.adapters.adapter_set import AdapterSet

    assert adapters.AdapterSet is AdapterSet and callable(adapters.build_adapters)
    with pytest.raises(AttributeError):
        adapters.no_such_name  # noqa: B018 - the attribute access is the test


def test_low_precision_copy_respects_its_skip_list_on_a_cache_hit(tiny_model_dir):
    from napari_vlsm.core.precision import frozen_copy, low_precision_base, unused_prefixes

    model = load_model(tiny_model_dir, device="cpu", precision="fp32").model
    skip = unused_prefixes(model)
    assert skip and "clip.visual_projection" in skip
    everything = low_precision_base(model, torch.bfloat16)  # no skip list
    pruned = frozen_copy(model, torch.bfloat16)
    assert pruned is not everything and frozen_copy(model, torch.bfloat16) is pruned  # shared per key
    assert everything.clip.visual_projection.weight.dtype == torch.bfloat16
    assert pruned.clip.visual_projection.weight is model.clip.visual_projection.weight  # skipped: original
    assert low_precision_base(model, torch.bfloat16) is everything


@pytest.mark.parametrize("variant", VARIANTS)
def test_parameter_count_from_the_config_equals_the_built_adapters(loaded, variant):
    from napari_vlsm.core.adapters import build_adapters, count_trainable

    config = AdapterConfig.from_variant(variant, loaded.config)
    assert config.parameter_count() == count_trainable(build_adapters(config))


@pytest.mark.parametrize("variant", ["shallow-vlc", "dense-vlc"])
def test_parameter_count_at_the_full_architecture(variant):
    from transformers import CLIPSegConfig

    from napari_vlsm.core.adapters import build_adapters, count_trainable

    config = AdapterConfig.from_variant(variant, CLIPSegConfig())  # the published CLIPSeg's sizes
    assert config.parameter_count() == count_trainable(build_adapters(config)) > 1_000_000
