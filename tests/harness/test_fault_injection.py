"""SIGKILL a smoke sweep at random moments, rerun until done: the results equal an uninterrupted sweep.

Records (all fields but TIMING_FIELDS) and the final state in checkpoint.pt (architecture
parameters, their Adam state, supernet weights, SGD momentum, scheduler) must be bitwise
identical. One thread, so CPU numerics do not depend on the machine's core count. On CUDA
(the `device` parameter, conftest) the sweep runs on cuda:0 with --deterministic.
"""
from __future__ import annotations

import pytest
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from benchmark.harness.records import read_json, read_jsonl, strip_timing

pytestmark = pytest.mark.slow  # every test here runs searches or subprocesses

REPO = Path(__file__).resolve().parents[2]
SWEEP = ["--methods", "darts,darts-2nd", "--spaces", "nb201", "--seeds", "0-1", "--epochs", "3",
         "--profile", "smoke", "--set", "train_subset=64", "--threads", "1", "--no-progress"]
RUNS = [f"nb201/{m}/seed-{s}" for m in ("darts", "darts-2nd") for s in (0, 1)]


def _progress(out: Path) -> int:
    """Grows with every record, checkpoint or completion written by the sweep."""
    return sum(p.stat().st_size for p in out.glob("*/*/seed-*/*") if p.name in ("epochs.jsonl", "done.json")) \
        + sum(p.stat().st_mtime_ns % 1000 + 1 for p in out.glob("*/*/seed-*/checkpoint.pt"))


def _env(cifar, benchmarks) -> dict:
    return {**os.environ, "NAS_DATA": str(cifar), "NAS_BENCHMARKS": str(benchmarks)}


def _sweep(device: str) -> list[str]:
    return SWEEP + (["--devices", "cuda:0", "--deterministic"] if device == "cuda" else ["--devices", "cpu"])


def _start(out: Path, env: dict, device: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "benchmark" / "run.py"), *_sweep(device), "--out", str(out)],
                            env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _tear(out: Path) -> bool:
    """What a kill inside a write leaves behind: a half-written checkpoint temp file and a torn
    last line in epochs.jsonl. Returns False if no run has a checkpoint yet."""
    for run in RUNS:
        rd = out / run
        if (rd / "checkpoint.pt").exists() and not (rd / "done.json").exists():
            (rd / ".checkpoint.pt.killed.tmp").write_bytes((rd / "checkpoint.pt").read_bytes()[:100])
            with open(rd / "epochs.jsonl", "ab") as f:
                f.write(b'{"epoch": 99, "genotype": "|none~0|+|no')
            return True
    return False


def _final_state(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=False)


def _assert_same_tree(a, b, where: str) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same_tree(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_tree(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_random_sigkills_change_nothing(tmp_path, fast_cifar, benchmarks, device):
    env = _env(fast_cifar, benchmarks)
    ref = subprocess.run([sys.executable, str(REPO / "benchmark" / "run.py"), *_sweep(device), "--out",
                          str(tmp_path / "ref")], env=env, cwd=REPO, capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr

    out = tmp_path / "killed"
    rng = random.Random(7)  # seeded: the same kill moments on every CI run
    kills, torn, attempts = 0, False, 0
    while True:
        attempts += 1
        assert attempts < 40, "the sweep never finished"
        p = _start(out, env, device)
        if kills < 5:
            # Kill at a random moment after the process starts writing (start-up is seconds
            # of imports and data loading; killing inside it would test little).
            before = _progress(out) if out.exists() else 0
            while p.poll() is None and (not out.exists() or _progress(out) == before):
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 2.0))
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait()
                kills += 1
                if not torn:  # once: leave what a kill inside a write would leave
                    torn = _tear(out)
                continue
        _, err = p.communicate(timeout=300)
        if p.returncode == 0:
            break
        assert p.returncode == -signal.SIGKILL, err
    assert kills >= 5 and torn

    restarts = 0
    for run in RUNS:
        a, b = tmp_path / "ref" / run, out / run
        ra, rb = read_jsonl(a / "epochs.jsonl"), read_jsonl(b / "epochs.jsonl")
        assert [r["epoch"] for r in rb] == [0, 1, 2, 3], run  # no duplicated or lost epoch
        assert [strip_timing(r) for r in ra] == [strip_timing(r) for r in rb], run
        assert read_json(a / "done.json")["genotype"] == read_json(b / "done.json")["genotype"]
        sa, sb = _final_state(a), _final_state(b)
        for key in ("method", "supernet", "w_optimizer", "scheduler", "epoch"):
            _assert_same_tree(sa[key], sb[key], f"{run}:{key}")
        prov = read_json(b / "provenance.json")
        assert all(e["torch_threads"] == 1 for e in prov)
        restarts += len(prov) - 1
        assert read_json(a / "config.json") == read_json(b / "config.json")
        assert not list(b.glob(".*.tmp")), "a killed write's temp file was left behind"
    assert restarts >= 1, "no run was ever resumed: the kills missed"
