"""The trainer's fused decoder MLP computes what CLIPSeg's MLP computes, forward and backward."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from napari_vlsm.core import fused
from napari_vlsm.core.loading import load_model
from napari_vlsm.core.training.frozen_model import frozen_model

pytestmark = pytest.mark.usefixtures("one_thread")


class _MLP(nn.Module):  # CLIPSeg's decoder MLP, as transformers builds it
    def __init__(self, width=16, hidden=64, act=None):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, hidden), nn.Linear(hidden, width)
        self.activation_fn = act or nn.ReLU()

    def forward(self, x):
        return self.fc2(self.activation_fn(self.fc1(x)))


def _frozen(mlp, dtype=torch.float32):
    return mlp.to(dtype).requires_grad_(False)


def _out_and_grad(module, x, grad, autocast=False):
    x = x.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = module(x)
    out.float().backward(grad)
    return out.detach().float(), x.grad


@pytest.mark.parametrize("shape", [(3, 7, 16), (5, 16), (16,)])
def test_fused_mlp_matches_the_module_in_fp32(shape):
    torch.manual_seed(0)
    mlp = _frozen(_MLP())
    x, grad = torch.randn(shape), torch.randn(shape)
    want = _out_and_grad(mlp, x, grad)
    got = _out_and_grad(fused.FusedReluMLP(mlp), x, grad)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_fused_mlp_input_gradient_passes_gradcheck():
    torch.manual_seed(1)
    mlp = _frozen(_MLP(width=4, hidden=6), torch.float64)
    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fused.FusedReluMLP(mlp), (x,))


@pytest.mark.parametrize("onednn", [True, False])
def test_fused_mlp_matches_autocast_on_bf16_weights(monkeypatch, onednn):
    """The trainer's setting: bf16 weights (the shared low-precision copy), fp32 input under autocast;
    with oneDNN's fused linear+ReLU and with the plain addmm path."""
    torch.manual_seed(2)
    if not onednn:
        monkeypatch.setitem(fused._ONEDNN, torch.bfloat16, False)
    mlp = _frozen(_MLP(), torch.bfloat16)
    x, grad = torch.randn(4, 9, 16), torch.randn(4, 9, 16)
    want = _out_and_grad(mlp, x, grad, autocast=True)
    got = _out_and_grad(fused.FusedReluMLP(mlp), x, grad, autocast=True)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert (a - b).abs().max() <= 0.02 * b.abs().max()  # bf16 rounding of the same products


def test_only_frozen_relu_mlps_are_fused():
    decoder = nn.Module()
    layers = [nn.Module() for _ in range(3)]
    layers[0].mlp = _frozen(_MLP())
    layers[1].mlp = _frozen(_MLP(act=nn.GELU()))  # another activation: left alone
    layers[2].mlp = _MLP()  # trainable weights: left alone (the Function gives no weight gradients)
    decoder.layers = nn.ModuleList(layers)
    assert fused.fuse_decoder_mlps(decoder) == 1
    assert isinstance(layers[0].mlp, fused.FusedReluMLP)
    assert isinstance(layers[1].mlp, _MLP) and isinstance(layers[2].mlp, _MLP)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_frozen_model_fuses_its_own_copy_only(tiny_model_dir, precision):
    loaded = load_model(tiny_model_dir, device="cpu", precision=precision)
    base = frozen_model(loaded)
    assert all(isinstance(layer.mlp, fused.FusedReluMLP) for layer in base.decoder.layers)
    # the engine's model (predictions in the app) keeps transformers' modules
    assert not any(isinstance(layer.mlp, fused.FusedReluMLP) for layer in loaded.model.decoder.layers)
