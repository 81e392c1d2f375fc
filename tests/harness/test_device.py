"""CUDA correctness: each test takes a `device` (conftest: 'cpu', and 'cuda' where present;
the cuda cases skip with the reason on a machine without CUDA). `pytest -m device` runs
these and the device cases of test_determinism.py and test_fault_injection.py; that is what
`python -m benchmark.measure.gpu_check --part correctness` runs.

Supernet tolerance on CUDA: fp32 with TF32 off (cuDNN and cuBLAS would otherwise round
products to 10-bit mantissas), logits within rtol 1e-4 / atol 1e-5 of the CPU result and
gradients within rtol 1e-3 / atol 1e-5 (another summation order in convolution and
BatchNorm reductions, amplified by BN's backward); bf16 autocast is compared with fp32 on
the same device at 5e-2 of the logits' scale (bf16 keeps 8 bits of mantissa).
"""
from __future__ import annotations

import copy
import json

import pytest
import torch

from methods.registry import available as methods
from spaces.nb201 import EDGES
from spaces.nb201.ops import OPS
from tests.e2e import check_layout, run_tiny

LOGIT_TOL = dict(rtol=1e-4, atol=1e-5)
GRAD_TOL = dict(rtol=1e-3, atol=1e-5)


@pytest.fixture
def no_tf32():
    """fp32 means fp32: TF32 off for the test, restored after."""
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


def _supernet(impl: str, **kw):
    from spaces.nb201 import NB201Space
    torch.manual_seed(0)
    return NB201Space().supernet(C=4, N=1, impl=impl, **kw)


def _inputs():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 3, 16, 16, generator=g)
    y = torch.randint(10, (6,), generator=g)
    alpha = torch.softmax(torch.randn(len(EDGES), len(OPS), generator=g), -1)
    return x, y, alpha


def _forward_backward(net, device: str):
    """Logits and every gradient (weights and mixing weights), brought back to the CPU."""
    x, y, alpha = _inputs()
    net = net.to(device).train()
    alpha = alpha.to(device).requires_grad_()
    logits = net(x.to(device), {"alpha": alpha})
    torch.nn.functional.cross_entropy(logits, y.to(device)).backward()
    grads = {n: p.grad.detach().cpu() for n, p in net.named_parameters()}
    return logits.detach().float().cpu(), alpha.grad.cpu(), grads


@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_supernet_forward_backward_matches_host(impl, device, no_tf32):
    net = _supernet(impl)
    ref = _forward_backward(copy.deepcopy(net), "cpu")
    got = _forward_backward(net, device)
    assert torch.allclose(got[0], ref[0], **LOGIT_TOL)
    assert torch.allclose(got[1], ref[1], **GRAD_TOL)
    assert ref[1].abs().sum() > 0
    assert got[2].keys() == ref[2].keys()
    for n in ref[2]:
        assert torch.allclose(got[2][n], ref[2][n], **GRAD_TOL), n


@pytest.mark.parametrize("option", ["bf16", "compile"])
def test_fast_supernet_bf16_and_compile(option, device, no_tf32):
    """bf16 autocast stays near fp32; compile computes what eager does. Both are CUDA-only
    options (ignored on the CPU, where this case checks that they are ignored)."""
    eager = _forward_backward(_supernet("fast"), device)
    got = _forward_backward(_supernet("fast", **{option: True}), device)
    if device == "cpu" or option == "compile":
        assert torch.allclose(got[0], eager[0], **LOGIT_TOL)
        assert torch.allclose(got[1], eager[1], **GRAD_TOL)
    else:
        scale = eager[0].abs().max()
        assert (got[0] - eager[0]).abs().max() <= 5e-2 * scale
        assert torch.isfinite(got[1]).all() and got[1].abs().sum() > 0


@pytest.mark.slow
@pytest.mark.parametrize("method", methods())
def test_method_smoke_run_on_device(method, device, tmp_path):
    records = run_tiny(method, tmp_path, device=device)
    check_layout(records)
    prov = json.loads((tmp_path / "nb201" / method / "seed-0" / "provenance.json").read_text())
    assert prov[-1]["device"] == ("cuda:0" if device == "cuda" else "cpu")


def test_hessian_diagnostic_through_a_compiled_model():
    """A compiled supernet (supernet.compile=true) cannot be differentiated twice; the Hessian
    diagnostic runs it eagerly (spaces.base.uncompiled) and gets the uncompiled value. Checked
    on the CPU with the aot_eager backend, which has the same first-order-only backward."""
    from types import SimpleNamespace

    from benchmark.harness.hessian import hessian_max_eig

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 4)

        def forward(self, x, w):
            return self.lin(torch.tanh(x * w["a"]))

    def method(compiled: bool):
        torch.manual_seed(0)
        net = Net()
        if compiled:
            net.forward = torch.compile(net.forward, backend="aot_eager")
        a = torch.full((3,), 0.5, requires_grad=True)
        return SimpleNamespace(
            supernet=net, arch_parameters=lambda: [a], mixing_weights=lambda: {"a": a},
            loss=lambda w, b: (torch.nn.functional.cross_entropy(net(b[0], w), b[1]), None))

    batch = (torch.randn(8, 3, generator=torch.Generator().manual_seed(1)), torch.arange(8) % 4)
    eager = hessian_max_eig(method(False), batch, iters=30)
    assert eager != 0.0
    assert hessian_max_eig(method(True), batch, iters=30) == pytest.approx(eager, rel=1e-6)


def test_cuda_rng_states_restore_on_fewer_gpus(monkeypatch):
    """A checkpoint saved seeing 2 GPUs resumes where 1 is visible: state 0 goes to GPU 0 (as a
    CPU ByteTensor, whatever device map_location put it on), state 1 is not forced onto a GPU
    that is not there. CUDA calls are recorded, so this runs on the CPU."""
    from benchmark.harness import loop
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, i: calls.append((s.device.type, i, s.tolist())))
    g = torch.Generator().manual_seed(0)
    state = {"python": __import__("random").getstate(), "numpy": __import__("numpy").random.get_state(),
             "torch": torch.get_rng_state(), "streams": {"train": g.get_state()},
             "cuda": [torch.tensor([1, 2], dtype=torch.uint8), torch.tensor([3, 4], dtype=torch.uint8)]}
    loop.set_rng_state(state, {"train": torch.Generator()})
    assert calls == [("cpu", 0, [1, 2])]
