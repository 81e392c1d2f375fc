"""A smoke grid of every method on NB201 gives the recorded records, bit for bit (CPU, one
thread). Fails when a change alters what any method computes; after an intended change,
record anew with `python tests/grid_digest.py --write` and say why in the commit."""
import json

import pytest
import torch

from methods.registry import available
from tests.grid_digest import FIXTURE, cpu_capability, digests, run_grid

pytestmark = pytest.mark.slow  # every test here runs searches or subprocesses


def test_smoke_grid_matches_recorded_digest(tmp_path, cifar, benchmarks):
    want = json.loads(FIXTURE.read_text())
    if want["torch"] != torch.__version__:
        pytest.skip(f"digest recorded with torch {want['torch']}, this is {torch.__version__}")
    if want.get("cpu_capability") != cpu_capability():
        pytest.skip(f"digest recorded on a {want.get('cpu_capability')} CPU, this one is "
                    f"{cpu_capability()} (their float kernels round differently): "
                    "python tests/grid_digest.py --write records it here")
    r = run_grid(tmp_path, available(), cifar, benchmarks)
    assert r.returncode == 0, r.stderr[-2000:]
    got = digests(tmp_path)
    changed = sorted(k for k in want["runs"].keys() | got.keys() if want["runs"].get(k) != got.get(k))
    assert not changed, f"records changed for {changed} (if intended: python tests/grid_digest.py --write)"
