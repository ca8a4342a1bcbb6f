"""Arithmetic of an encoder and of the machine: the numbers that say how far a latency target is
from what the hardware can do.

* :func:`encoder_gmac`: multiply-accumulates of one forward pass (convolutions + linear layers,
  the >99.9 % of the work; BatchNorm folds into the convolutions on export), counted with
  forward hooks on a real input of the encoder's size. ResNet-50 at 224: 4.09 GMAC.
* :func:`gemm_gflops`: the float32 GEMM rate ONNX Runtime's own kernels (MLAS, the ones its
  convolutions run on) reach on ``threads`` threads: a practical ceiling for a convolution
  network's fp32 throughput in ONNX Runtime on that CPU.

A row's achieved rate is ``2 · GMAC / per-image seconds`` (GFLOP/s): an fp32 latency target
needs at least ``2 · GMAC / ceiling`` seconds.
"""

from __future__ import annotations

import time


def encoder_gmac(encoder, size: int) -> float:
    """Giga multiply-accumulates of ``encoder`` on one ``(1, 3, size, size)`` input."""
    import torch

    total = [0]

    def hook(mod, _inp, out):
        if isinstance(mod, torch.nn.Conv2d):
            total[0] += out.numel() * mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
        elif isinstance(mod, torch.nn.Linear):
            total[0] += out.numel() * mod.in_features

    handles = [m.register_forward_hook(hook) for m in encoder.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    was_training = encoder.training
    try:
        encoder.eval()
        with torch.no_grad():
            encoder(torch.zeros(1, 3, size, size))
    finally:
        for h in handles:
            h.remove()
        encoder.train(was_training)
    return total[0] / 1e9


def gemm_gflops(threads: int | None, n: int = 1024, repeat: int = 8) -> float:
    """Best-of-``repeat`` float32 ``n×n @ n×n`` rate (GFLOP/s): one ONNX ``MatMul`` in an ONNX
    Runtime CPU session with ``threads`` intra-op threads (spinning on, as in the encoder rows)."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [n, n])
    c = helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm", [a, b], [c])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 8)
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    sess = ort.InferenceSession(model.SerializeToString(),
                                opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {"a": rng.standard_normal((n, n), dtype=np.float32), "b": rng.standard_normal((n, n), dtype=np.float32)}
    sess.run(None, feeds)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        sess.run(None, feeds)
        best = min(best, time.perf_counter() - t)
    return 2.0 * n ** 3 / best / 1e9
