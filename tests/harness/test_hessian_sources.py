"""The Hessian diagnostic each space's source reports: on 1Shot1 (SmoothDARTS
optimizers/analyze.py, the 1Shot1 code) |largest algebraic eigenvalue| with the architecture
weight decay, every epoch; elsewhere the dominant (largest-magnitude) eigenvalue."""
import json

import pytest
import torch
from torch import nn

from benchmark.harness.config import resolve_config
from benchmark.harness.hessian import hessian_max_eig, max_algebraic_eigenvalue


class _Quadratic:
    """loss = 0.5 a^T A a with A = diag(-5, 2, 1): dominant eigenvalue -5, largest algebraic 2."""

    def __init__(self):
        self.a = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64, requires_grad=True)
        self.A = torch.diag(torch.tensor([-5.0, 2.0, 1.0], dtype=torch.float64))
        self.supernet = nn.Module()

    def arch_parameters(self):
        return [self.a]

    def mixing_weights(self):
        return {"a": self.a}

    def loss(self, weights, batch):
        a = weights["a"]
        return 0.5 * a @ self.A @ a, None


def test_kinds_on_a_known_hessian():
    m = _Quadratic()
    assert hessian_max_eig(m, None, iters=200, kind="dominant") == pytest.approx(-5.0, rel=1e-3)
    assert hessian_max_eig(m, None, kind="abs_max_algebraic_wd", weight_decay=1e-3) == pytest.approx(2.001)
    m.A = torch.diag(torch.tensor([-5.0, -2.0, -1.0], dtype=torch.float64))
    assert hessian_max_eig(m, None, kind="abs_max_algebraic_wd", weight_decay=0.5) == pytest.approx(0.5)
    assert max_algebraic_eigenvalue(lambda: m.loss({"a": m.a}, None)[0], [m.a]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="dominant"):
        hessian_max_eig(m, None, kind="nope")


def test_1shot1_profile_reports_the_reference_quantity_every_epoch(tmp_path, monkeypatch):
    from spaces import get_space
    assert resolve_config("nb1shot1-s1", "darts", 0, "paper").hessian_every == 1
    assert get_space("nb1shot1-s1").hessian_diagnostic == "abs_max_algebraic_wd"
    assert getattr(get_space("nb201"), "hessian_diagnostic", "dominant") == "dominant"
    assert resolve_config("nb201", "darts", 0, "paper").hessian_every == 5


@pytest.mark.slow
def test_the_loop_asks_for_the_spaces_quantity(tmp_path, monkeypatch):
    import benchmark.harness.hessian as H
    from tests.e2e import run_tiny
    calls = []
    real = H.hessian_max_eig

    def spy(method, batch, **kw):
        calls.append(kw)
        return real(method, batch, **kw)
    monkeypatch.setattr(H, "hessian_max_eig", spy)
    recs = run_tiny("darts", tmp_path, ["hessian_every=1"], space="nb1shot1-s1")
    assert [(c["kind"], c["weight_decay"]) for c in calls] == [("abs_max_algebraic_wd", 1e-3)]
    assert recs[-1]["diagnostics"]["hessian_max_eig"] >= 0


@pytest.mark.slow
def test_the_hessian_diagnostic_is_outside_the_search_time(tmp_path, monkeypatch):
    # The diagnostic is a measurement, not part of the search: an epoch's time and the run's wall
    # time (the search cost) leave it out; the record carries its value and its own time.
    import time

    import benchmark.harness.hessian as H
    from tests.e2e import run_tiny
    pause = 8.0   # far longer than the tiny epoch itself

    def slow(method, batch, **kw):
        time.sleep(pause)
        return 1.25
    monkeypatch.setattr(H, "hessian_max_eig", slow)
    recs = run_tiny("darts", tmp_path, ["hessian_every=1"])
    last = recs[-1]
    assert last["diagnostics"]["hessian_max_eig"] == 1.25
    assert last["timing"]["hessian_seconds"] >= pause
    assert last["timing"]["epoch_seconds"] < pause
    done = json.loads((tmp_path / "nb201" / "darts" / "seed-0" / "done.json").read_text())
    assert done["wall_seconds"] < pause
