"""Exported frozen parts behind ONNX Runtime sessions, called like the ``VLSMModel`` methods."""

from __future__ import annotations

from pathlib import Path


def make_session(graph: Path, threads: int):
    """A CPU session using at most ``threads`` threads (the process's torch threads), not spinning:
    idle pool threads that spin would take the cores from the UI, the text encoder and other jobs."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(threads))
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3  # errors only: no optimiser chatter in a user's terminal
    return ort.InferenceSession(str(graph), sess_options=opts, providers=["CPUExecutionProvider"])


class OnnxPart:
    """One exported graph: torch tensors in (CPU, no gradient), float32 torch tensors out."""

    def __init__(self, graph: Path, kind: str, size: int, threads: int, meta: dict):
        self.graph, self.kind, self.size, self.meta = Path(graph), kind, int(size), meta
        self.session = make_session(self.graph, threads)
        self._inputs = [i.name for i in self.session.get_inputs()]
        self._outputs = [o.name for o in self.session.get_outputs()]

    def accepts(self, *tensors) -> bool:
        """CPU tensors that need no gradient, floats in fp32, images of the exported size."""
        import torch

        for t in tensors:
            if t.device.type != "cpu" or t.requires_grad or (t.is_floating_point() and t.dtype != torch.float32):
                return False
        if self.kind.startswith("onnx-"):
            return tuple(tensors[0].shape[1:]) == (3, self.size, self.size)
        return True

    def __call__(self, *tensors) -> list:
        import numpy as np
        import torch

        feeds = {name: np.ascontiguousarray(t.detach().numpy()) for name, t in zip(self._inputs, tensors)}
        return [torch.from_numpy(o) for o in self.session.run(self._outputs, feeds)]
