"""The exported image encoder behind an ONNX Runtime session, called like ``encode_image``."""

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


class OnnxImageEncoder:
    """pixel_values (B, 3, S, S) float32 on the CPU -> list of (B, T, D) float32 torch tensors."""

    def __init__(self, graph: Path, kind: str, size: int, threads: int, meta: dict):
        self.graph, self.kind, self.size, self.meta = Path(graph), kind, int(size), meta
        self.session = make_session(self.graph, threads)
        self._outputs = [o.name for o in self.session.get_outputs()]

    def accepts(self, pixel_values) -> bool:
        """What the graph was exported for: fp32 CPU input of the model's own size."""
        import torch

        return (pixel_values.device.type == "cpu" and pixel_values.dtype == torch.float32
                and tuple(pixel_values.shape[1:]) == (3, self.size, self.size) and not pixel_values.requires_grad)

    def __call__(self, pixel_values) -> list:
        import numpy as np
        import torch

        x = np.ascontiguousarray(pixel_values.detach().numpy())
        outs = self.session.run(self._outputs, {"pixel_values": x})
        return [torch.from_numpy(o) for o in outs]
