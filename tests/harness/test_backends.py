"""Backends: a 2 methods x 2 seeds smoke grid gives the same records (timing aside) run
sequentially, through a local pool (--jobs 2), submitit's local executor and a local Ray.

Every run uses one torch thread: the thread count changes the rounding of oneDNN's
reductions, so records are bit-identical only at equal thread counts (it is recorded in
provenance.json)."""
from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from benchmark.harness import backends
from benchmark.harness.records import read_jsonl, strip_timing
from benchmark.harness.run_cli import main

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("NAS_DATA") or ROOT.parent / "shared/data/cifar10/cifar10.npz")
BENCH = Path(os.environ.get("NAS_BENCHMARKS") or ROOT.parent / "shared/data")
needs_data = pytest.mark.skipif(not DATA.exists(), reason=f"CIFAR-10 not found at {DATA} (set NAS_DATA)")
GRID = ["--methods", "darts,darts-2nd", "--spaces", "nb201", "--seeds", "0-1", "--profile", "smoke",
        "--epochs", "1", "--set", "train_subset=64", "--threads", "1", "--no-progress",
        "--data", str(DATA)] + (["--benchmarks", str(BENCH)] if BENCH.is_dir() else [])


def records(out: Path) -> dict[str, list[dict]]:
    return {str(f.parent.relative_to(out)): [strip_timing(r) for r in read_jsonl(f)]
            for f in sorted(out.rglob("epochs.jsonl"))}


@pytest.fixture(scope="module")
def sequential(tmp_path_factory) -> dict:
    import torch
    out = tmp_path_factory.mktemp("seq")
    threads = torch.get_num_threads()
    try:
        assert main(GRID + ["--out", str(out)]) == 0  # in-process: it sets 1 torch thread
    finally:
        torch.set_num_threads(threads)
    recs = records(out)
    assert len(recs) == 4 and all(len(r) == 2 for r in recs.values())
    return recs


def _same_as_sequential(sequential, out: Path, extra: list[str]) -> None:
    assert main(GRID + ["--out", str(out)] + extra) == 0
    assert records(out) == sequential


@pytest.mark.slow
@needs_data
def test_local_pool_matches_sequential_and_never_reruns(sequential, tmp_path, capsys):
    _same_as_sequential(sequential, tmp_path, ["--jobs", "2"])
    mtimes = {f: f.stat().st_mtime_ns for f in tmp_path.rglob("epochs.jsonl")}
    assert main(GRID + ["--out", str(tmp_path), "--jobs", "2"]) == 0
    assert "summary: 4 done" in capsys.readouterr().out
    assert {f: f.stat().st_mtime_ns for f in tmp_path.rglob("epochs.jsonl")} == mtimes


@pytest.mark.slow
@needs_data
@pytest.mark.skipif(importlib.util.find_spec("submitit") is None, reason="submitit is not installed")
def test_submitit_local_matches_sequential(sequential, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))  # the backend extends it
    logs = tmp_path / "logs"
    _same_as_sequential(sequential, tmp_path / "out", ["--backend", "slurm", "--slurm-cluster", "local",
                                                       "--slurm-folder", str(logs), "--slurm-time", "10"])
    submitted = set(logs.iterdir())
    # Done runs are filtered out before submission: a second call submits nothing.
    assert main(GRID + ["--out", str(tmp_path / "out"), "--backend", "slurm", "--slurm-cluster",
                        "local", "--slurm-folder", str(logs)]) == 0
    assert set(logs.iterdir()) == submitted


@pytest.mark.slow
@needs_data
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed (pip install ray)")
def test_ray_local_matches_sequential(sequential, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))  # the backend extends it
    _same_as_sequential(sequential, tmp_path, ["--backend", "ray", "--cpus-per-job", "1"])


def test_slots_pack_k_runs_per_device(monkeypatch, tmp_path):
    """A worker takes the first free slot: with slot 0 held, the next run goes to slot 1."""
    from filelock import FileLock
    monkeypatch.setattr(backends, "execute", lambda job: job.device)
    job = backends.Job(spec=None, config=None, out="", data_path="")
    slots = ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    with FileLock(str(tmp_path / "slot-0.lock")):
        assert backends._execute_in_slot(job, str(tmp_path), slots) == "cuda:1"
        with FileLock(str(tmp_path / "slot-1.lock")):
            assert backends._execute_in_slot(job, str(tmp_path), slots) == "cuda:0"


def test_cpu_workers_split_the_cores():
    job = backends.Job(spec=None, config=None, out="", data_path="")
    assert backends.Placement(("cpu",), 4, cpus=16).threads(job) == 4
    assert backends.Placement(("cpu",), 3, cpus=2).threads(job) == 1
    assert backends.Placement(("cpu",), 1, cpus=16).threads(job) is None  # torch's default
    assert backends.Placement(("cpu",), 4, cpus=16).threads(backends.Job(None, None, "", "", threads=2)) == 2


@pytest.mark.parametrize("extra,message", [
    (["--jobs", "0"], "--jobs must be at least 1"),
    (["--per-device", "2"], "on CPU use --jobs"),
    (["--backend", "slurm", "--slurm-cluster", "local", "--gpus-per-job", "0.5"], "whole number"),
    pytest.param(["--backend", "slurm", "--slurm-cluster", "slurm"], "no 'sbatch'", marks=pytest.mark.skipif(
        shutil.which("sbatch") is not None, reason="this machine has Slurm")),
])
def test_bad_execution_options_exit_2(extra, message, capsys):
    assert main(GRID + ["--out", "/nonexistent-never-written", "--devices", "cpu"] + extra) == 2
    assert message in capsys.readouterr().err
