"""Two run.py processes on one grid and one results folder: every run is done exactly once,
and a holder killed by SIGKILL leaves no stale lock (the waiting process takes the run over)."""
from __future__ import annotations

import pytest
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchmark.harness.records import read_json, read_jsonl

pytestmark = pytest.mark.slow  # every test here runs searches or subprocesses

REPO = Path(__file__).resolve().parents[2]
TINY = ["--spaces", "nb201", "--profile", "smoke", "--set", "train_subset=64", "--threads", "1",
        "--no-progress"]


def _start(args: list[str], out: Path, cifar, benchmarks) -> subprocess.Popen:
    env = {**os.environ, "NAS_DATA": str(cifar), "NAS_BENCHMARKS": str(benchmarks)}
    return subprocess.Popen([sys.executable, str(REPO / "benchmark" / "run.py"), *args, *TINY,
                             "--out", str(out)], env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _summary(stdout: str) -> dict[str, int]:
    line = next(x for x in stdout.splitlines() if x.startswith("summary: "))
    return {s: int(n) for n, s in (part.split(" ", 1) for part in line[9:].split(", "))}


def test_two_processes_do_every_run_exactly_once(tmp_path, fast_cifar, benchmarks):
    out = tmp_path / "results"
    args = ["--methods", "darts", "--seeds", "0-3", "--epochs", "1"]
    procs = [_start(args, out, fast_cifar, benchmarks) for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    for p, (so, se) in zip(procs, results):
        assert p.returncode == 0, se
    sums = [_summary(so) for so, _ in results]
    # Each run was computed by one process; the other reports it done (after waiting if busy).
    assert sum(s.get("finished", 0) for s in sums) == 4
    assert all(sum(s.values()) == 4 and set(s) <= {"finished", "done"} for s in sums)
    for seed in range(4):
        rd = out / "nb201" / "darts" / f"seed-{seed}"
        assert len(read_json(rd / "provenance.json")) == 1  # started once
        assert [r["epoch"] for r in read_jsonl(rd / "epochs.jsonl")] == [0, 1]
        assert (rd / "done.json").exists() and not (rd / "failed.json").exists()


def test_killed_holder_leaves_no_stale_lock(tmp_path, fast_cifar, benchmarks):
    out = tmp_path / "results"
    args = ["--methods", "darts", "--seeds", "0", "--epochs", "6"]
    rd = out / "nb201" / "darts" / "seed-0"
    holder = _start(args, out, fast_cifar, benchmarks)
    deadline = time.time() + 120
    while not (rd / "checkpoint.pt").exists() and time.time() < deadline and holder.poll() is None:
        time.sleep(0.02)
    waiter = _start(args, out, fast_cifar, benchmarks)  # finds the run busy and waits for it
    time.sleep(0.5)
    assert holder.poll() is None, "the holder finished before the kill; make the run longer"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert not (rd / "done.json").exists()
    assert (rd / ".lock").exists()  # the file stays, but the OS lock died with its holder
    so, se = waiter.communicate(timeout=300)
    assert waiter.returncode == 0, se
    assert _summary(so) == {"finished": 1}  # the waiter took the run over and finished it
    assert [r["epoch"] for r in read_jsonl(rd / "epochs.jsonl")] == list(range(7))
    assert len(read_json(rd / "provenance.json")) == 2
