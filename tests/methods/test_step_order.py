"""The step order (architecture step first or not) is a fact of a (method, space) pair: this
table pins it for every registered method on every space it names, in every profile.

Sources (docs/reference/methods.md#step-order):
- AutoDL-Projects exps/NAS-Bench-201-algos/DARTS-V1.py: weight step, then architecture step.
- AutoDL-Projects exps/NAS-Bench-201-algos/DARTS-V2.py: architecture step (unrolled) first.
- automl/nasbench-1shot1 optimizers/darts/train_search.py: architect.step before the weight
  step, for first and second order (--unrolled).
- quark0/darts cnn/train_search.py (the DARTS space): architect.step before the weight step.
- chenxiangning/SmoothDARTS: architecture step first, on NB201 and in its 1Shot1 copy of the
  1Shot1 train_search.py.
- BaLeNAS: architecture first (docs/reference/methods.md#step-order; assumed there).
- BayesNAS and random-ws have no architecture step (BayesNAS trains its switches with the
  weights, random-ws only selects): the order is immaterial; the values are pinned anyway,
  since they are part of a run's config.
"""
import pytest

from benchmark.harness.config import PROFILES, resolve_config
from methods.registry import available as methods
from spaces import available as spaces

NB1SHOT1 = ("nb1shot1-s1", "nb1shot1-s2", "nb1shot1-s3")

# (method, space) -> arch_first, the same in every profile.
EXPECTED = {}
# the RobustDARTS spaces darts-s1..s4 are searched with the DARTS space's code and protocol
# (SmoothDARTS sota/cnn/train_search.py: architect.step before the weight step)
ROBUST_DARTS = ("darts-s1", "darts-s2", "darts-s3", "darts-s4")
for _space, _darts in [("nb201", False), *((s, True) for s in NB1SHOT1), ("darts", True),
                       *((s, True) for s in ROBUST_DARTS)]:
    EXPECTED.update({
        ("darts", _space): _darts,          # DARTS-V1 (NB201) / 1Shot1 / DARTS cnn train_search.py
        ("darts-2nd", _space): True,        # DARTS-V2 (NB201) / 1Shot1 --unrolled
        ("sdarts-rs", _space): True,        # SmoothDARTS
        ("sdarts-adv", _space): True,       # SmoothDARTS
        ("balenas", _space): True,          # BaLeNAS (assumed, docs/reference/methods.md#step-order)
        ("balenas-tf", _space): True,       # as BaLeNAS
        ("bayesnas", _space): True,         # immaterial: no architecture step
        ("random-ws", _space): False,       # immaterial: no architecture step
    })
KNOWN_SPACES = sorted({s for _, s in EXPECTED})


def test_every_registered_method_has_rows():
    assert set(methods()) == {m for m, _ in EXPECTED}


def test_step_order_table():
    """Every registered method x every registered space in the table x every profile.
    (A space registered without rows here is left out; add its rows with its sources.)"""
    got, want = {}, {}
    for space in spaces():
        if space not in KNOWN_SPACES:
            continue
        for method in methods():  # every space the table names must be registered (below)
            for profile in PROFILES:
                got[method, space, profile] = resolve_config(space, method, 0, profile).arch_first
                want[method, space, profile] = EXPECTED[method, space]
    assert set(KNOWN_SPACES) == set(spaces()), "a registered space has no rows here"
    assert got == want, {k: v for k, v in got.items() if want[k] != v}


@pytest.mark.parametrize("profile", PROFILES)
def test_darts_on_1shot1_architecture_first(profile):
    """The departure issue 11 found: a method-level override beat the 1Shot1 profile."""
    assert resolve_config("nb1shot1-s1", "darts", 0, profile).arch_first is True
    assert resolve_config("nb201", "darts", 0, profile).arch_first is False
