"""The frozen decoder MLP of a training step as one autograd Function (CPU).

CLIPSeg's decoder MLP is ``fc1 (64 -> 2048) -> ReLU -> fc2`` over (B x 485) tokens. Autograd runs
it as separate passes over (B x 485 x 2048) tensors: ``addmm`` first copies the bias into its
output, ReLU writes a new tensor, its backward reads two, and fc1's output is kept for nothing.
Those passes cost more than the matrix products (profiler, full architecture, batch 4, 1 thread:
40 ms of a 147 ms fast-path step in bf16, 140 of 380 ms in fp32). Here:

* forward: bias and ReLU inside the matrix product where oneDNN offers it (bf16), else ``addmm``
  and an in-place ReLU; only the ReLU output is kept for the backward;
* backward: the input gradient only (the weights are frozen).

The numbers are the unfused module's numbers: the same products in the same dtype (autocast's
compute dtype when autocast is on), tested in tests/test_fused.py. Off the CPU, or for anything
unusual (another activation, trainable weights), the original module runs.

Tried and dropped: the same fusion for the adapter blocks (trainable; no faster in the training
step, measured), and chunking the MLP so the 2048-wide hidden stays in cache (slower: the
matrix products lose more than the passes save).
"""

from __future__ import annotations

import torch
from torch import nn

_ONEDNN: dict[torch.dtype, bool] = {}


def _onednn_ok(dtype: torch.dtype) -> bool:
    """Whether oneDNN's fused linear+ReLU runs here in ``dtype`` and agrees with addmm + ReLU.

    Only bf16 uses it (measured faster there; slower than addmm in fp32). Probed once per dtype: the
    op is internal to PyTorch (inductor uses it), so any failure means the plain path.
    """
    if dtype not in _ONEDNN:
        ok = False
        if dtype == torch.bfloat16 and torch.backends.mkldnn.is_available():
            try:
                gen = torch.Generator().manual_seed(0)
                x, w, b = (torch.randn(s, generator=gen).to(dtype) for s in ((5, 8), (3, 8), (3,)))
                fused = torch.ops.mkldnn._linear_pointwise(x, w, b, "relu", [], "")
                plain = torch.addmm(b, x, w.t()).relu_()
                ok = torch.allclose(fused.float(), plain.float(), rtol=2e-2, atol=2e-2)
            except Exception:  # noqa: BLE001 - op missing or unsupported on this build: plain path
                ok = False
        _ONEDNN[dtype] = ok
    return _ONEDNN[dtype]


def _linear_relu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """relu(x @ weight.T + bias) for a 2-D ``x`` in one pass where oneDNN can."""
    if x.device.type == "cpu" and _onednn_ok(x.dtype):
        return torch.ops.mkldnn._linear_pointwise(x.contiguous(), weight, bias, "relu", [], "")
    return torch.addmm(bias, x, weight.t()).relu_()


class _FrozenReluMLP(torch.autograd.Function):
    """fc2(relu(fc1(x))) with frozen weights, x 2-D: the backward gives the input gradient only."""

    @staticmethod
    def forward(ctx, x, w1, b1, w2, b2):
        hidden = _linear_relu(x, w1, b1)
        ctx.save_for_backward(hidden, w1, w2)
        return torch.addmm(b2, hidden, w2.t())

    @staticmethod
    def backward(ctx, grad):
        hidden, w1, w2 = ctx.saved_tensors
        # Where the ReLU's output is 0 its input was <= 0: the same rule as autograd's ReLU backward.
        g_hidden = torch.ops.aten.threshold_backward(torch.mm(grad.contiguous(), w2), hidden, 0)
        return torch.mm(g_hidden, w1), None, None, None, None


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


class FusedReluMLP(nn.Module):
    """Stands in for a frozen ``fc1 -> ReLU -> fc2`` MLP (CLIPSeg's decoder MLP) in the trainer."""

    def __init__(self, mlp: nn.Module):
        super().__init__()
        self.fc1, self.fc2 = mlp.fc1, mlp.fc2
        self.original = [mlp]  # a list: not registered as a submodule (its weights are ours already)

    @staticmethod
    def applies_to(mlp: nn.Module) -> bool:
        linears = isinstance(getattr(mlp, "fc1", None), nn.Linear) and isinstance(getattr(mlp, "fc2", None), nn.Linear)
        return (linears and isinstance(getattr(mlp, "activation_fn", None), nn.ReLU)
                and mlp.fc1.bias is not None and mlp.fc2.bias is not None
                and not any(p.requires_grad for p in mlp.parameters()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":
            return self.original[0](x)
        dtype = _compute_dtype(x)
        if not torch.is_autocast_enabled("cpu") and self.fc1.weight.dtype != dtype:
            return self.original[0](x)
        with torch.autocast("cpu", enabled=False):
            shape = x.shape
            flat = x.reshape(-1, shape[-1]).to(dtype)
            params = [t.to(dtype) for t in (self.fc1.weight, self.fc1.bias, self.fc2.weight, self.fc2.bias)]
            return _FrozenReluMLP.apply(flat, *params).view(*shape[:-1], -1)


def fuse_decoder_mlps(decoder: nn.Module) -> int:
    """Swap each frozen ReLU MLP of ``decoder.layers`` for :class:`FusedReluMLP`; how many."""
    count = 0
    for layer in getattr(decoder, "layers", ()):
        mlp = getattr(layer, "mlp", None)
        if mlp is not None and FusedReluMLP.applies_to(mlp):
            layer.mlp = FusedReluMLP(mlp)
            count += 1
    return count
