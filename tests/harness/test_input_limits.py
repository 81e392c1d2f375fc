"""Limits a run or a grid meets on the way: divergence, grid size, a dead parent, a full disk,
file permissions, and which file a bad benchmark CSV is blamed on."""
from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark.harness import records, run_cli
from benchmark.harness.loop import DivergenceError, check_divergence
from benchmark.harness.records import atomic_write, atomic_write_json, read_json, read_jsonl
from benchmark.harness.run_cli import build_parser, plan
from benchmark.harness.worker import execute
from tests.e2e import assert_workers_end, children

REPO = Path(__file__).resolve().parents[2]
TINY = ["--profile", "smoke", "--set", "train_subset=64", "--threads", "1", "--no-progress"]


def _argv(tmp_path, cifar, benchmarks, *args):
    return ["--out", str(tmp_path / "results"), "--data", str(cifar), "--benchmarks", str(benchmarks),
            *TINY, *args]


# ---- divergence ----------------------------------------------------------------------------
def test_divergence_threshold_on_the_epoch_mean():
    rows = [{"train_loss": 900.0, "valid_loss": 2.0}, {"train_loss": 1100.0, "valid_loss": 2.0}]
    check_divergence(rows, 3, 1000.0)  # mean 1000 is not above 1000
    rows[1]["train_loss"] = 1100.5
    with pytest.raises(DivergenceError, match=r"diverged: mean train_loss 1000.25 > threshold 1000 at epoch 3"):
        check_divergence(rows, 3, 1000.0)
    with pytest.raises(DivergenceError, match="valid_loss"):
        check_divergence([{"valid_loss": 5e13}], 1, 1000.0)
    check_divergence([{"train_loss": 5e13}], 1, float("inf"))  # --max-loss inf: off
    check_divergence([], 1, 1000.0)


@pytest.mark.slow
def test_a_run_above_the_threshold_fails_as_diverged(tmp_path, cifar, benchmarks):
    # A CIFAR-10 cross-entropy starts near ln 10 = 2.3: a threshold of 1 stands for an absurd loss.
    a = build_parser().parse_args(_argv(tmp_path, cifar, benchmarks, "--methods", "darts", "--epochs", "2",
                                        "--max-loss", "1"))
    (job,) = plan(a)
    o = execute(job)
    assert o.status == "failed" and o.message.startswith("DivergenceError: diverged: mean train_loss")
    assert "> threshold 1 at epoch 1" in o.message and "--max-loss" in o.message
    rd = tmp_path / "results" / "nb201" / "darts" / "seed-0"
    assert read_json(rd / "failed.json")["reason"] == o.message
    assert [r["epoch"] for r in read_jsonl(rd / "epochs.jsonl")] == [0]  # the epoch is not recorded
    assert not (rd / "done.json").exists()
    assert read_json(rd / "provenance.json")[-1]["max_loss"] == 1.0


# ---- planning a big grid ---------------------------------------------------------------------
@pytest.mark.slow
def test_a_big_grid_resolves_each_config_once_not_once_per_run(tmp_path, cifar, benchmarks, monkeypatch):
    import benchmark.harness.data as data
    from benchmark.harness.config import resolve_config
    calls = {"resolve": 0, "split_file": 0}
    real_resolve, real_read = run_cli.resolve_config, data.read_split_file

    def counting_resolve(*a, **k):
        calls["resolve"] += 1
        return real_resolve(*a, **k)

    def counting_read(*a, **k):
        calls["split_file"] += 1
        return real_read(*a, **k)

    monkeypatch.setattr(run_cli, "resolve_config", counting_resolve)
    monkeypatch.setattr(data, "read_split_file", counting_read)
    a = build_parser().parse_args(_argv(tmp_path, cifar, benchmarks, "--methods", "darts,sdarts-rs",
                                        "--seeds", "0-19999", "--set", "split=random-half", "--dry-run"))
    jobs = plan(a)
    assert len(jobs) == 40_000 and calls == {"resolve": 2, "split_file": 0}
    assert not (tmp_path / "results").exists()  # a dry run creates nothing
    # The shared resolution gives what resolving each run on its own gives.
    for j in (jobs[0], jobs[12_345], jobs[-1]):
        own = resolve_config(j.spec.space, j.spec.method, j.spec.seed, "smoke", None, a.sets)
        source = data.make_split("random-half", 50_000, j.spec.seed, None)[2]
        assert j.config.to_json() == {**own.to_json(), "data_md5": j.config.data_md5, "split_source": source}
        assert j.config.seed == j.spec.seed
    calls["split_file"] = 0
    a = build_parser().parse_args(_argv(tmp_path, cifar, benchmarks, "--methods", "darts", "--seeds", "0-999"))
    assert len(plan(a)) == 1000 and calls["split_file"] == 1  # the official split: read once


def test_dry_run_prints_as_it_plans_and_creates_nothing(tmp_path, cifar, benchmarks):
    out = tmp_path / "results"
    argv = _argv(tmp_path, cifar, benchmarks, "--methods", "darts", "--seeds", "0-4", "--dry-run")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert run_cli.main(argv) == 0
    lines = buf.getvalue().splitlines()
    assert [ln.split()[0] for ln in lines] == [f"nb201/darts/seed-{k}" for k in range(5)]
    assert json.loads(lines[0].split(" ", 1)[1])["seed"] == 0
    assert not out.exists()
    # Streaming: runs planned before a refused one were printed already.
    bad = out / "nb201" / "darts" / "seed-3"
    bad.mkdir(parents=True)
    (bad / "config.json").write_text(json.dumps({"epochs": 99}))
    buf, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(err):
        assert run_cli.main(argv) == 2
    assert [ln.split()[0] for ln in buf.getvalue().splitlines()] == [f"nb201/darts/seed-{k}" for k in range(3)]
    assert "different identity" in err.getvalue()


# ---- a killed parent stops its pool workers --------------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_pool_workers_stop_when_run_py_is_killed(tmp_path, fast_cifar, benchmarks):
    out = tmp_path / "results"
    cmd = [sys.executable, str(REPO / "benchmark" / "run.py"), "--methods", "darts", "--seeds", "0-5",
           "--epochs", "30", "--jobs", "2", *_argv(tmp_path, fast_cifar, benchmarks)]
    parent = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 300
        def running():
            return [p for p in out.glob("nb201/darts/seed-*") if len(read_jsonl(p / "epochs.jsonl")) >= 2]
        while len(running()) < 2:  # both workers inside a run, past epoch 1
            assert parent.poll() is None and time.monotonic() < deadline, "the runs did not start"
            time.sleep(0.2)
        workers = children(parent.pid)
        started = {p.name for p in out.glob("nb201/darts/seed-*")}
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert_workers_end(workers)
        assert {p.name for p in out.glob("nb201/darts/seed-*")} == started  # nothing new started
        assert started and len(started) <= 3
        for p in out.glob("nb201/darts/seed-*"):
            assert not (p / "failed.json").exists()  # stopped, not failed
            if not (p / "done.json").exists():  # left at a checkpoint it resumes from
                epochs = [r["epoch"] for r in read_jsonl(p / "epochs.jsonl")]
                import torch
                assert torch.load(p / "checkpoint.pt", weights_only=False)["epoch"] == epochs[-1]
    finally:
        for pid in [parent.pid, *workers]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# ---- a full disk, and permissions --------------------------------------------------------------
def test_full_disk_names_the_file_and_keeps_the_old_one(tmp_path):
    path = tmp_path / "x.json"
    atomic_write_json(path, {"old": 1})

    def full(f):
        f.write("{")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(records.DiskFullError, match=f"disk full while writing {path}"):
        atomic_write(path, full)
    assert read_json(path) == {"old": 1} and sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="reads /proc/self/fd")
def test_full_disk_while_checkpointing_fails_the_run_with_its_path(tmp_path, cifar, benchmarks, monkeypatch):
    (job,) = plan(build_parser().parse_args(_argv(tmp_path, cifar, benchmarks, "--methods", "darts",
                                                  "--epochs", "2")))
    real = os.fsync

    def fsync(fd):  # the checkpoint's temp file hits a full disk; the rest writes fine
        if "checkpoint.pt" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(records.os, "fsync", fsync)
    o = execute(job)
    rd = tmp_path / "results" / "nb201" / "darts" / "seed-0"
    assert o.status == "failed" and f"disk full while writing {rd / 'checkpoint.pt'}" in o.message
    assert "enforce fail" not in o.message
    assert "disk full" in read_json(rd / "failed.json")["reason"]
    assert not list(rd.glob(".*.tmp")) and not (rd / "checkpoint.pt").exists()


def test_full_disk_at_the_first_write_does_not_stop_the_grid(tmp_path, cifar, benchmarks, monkeypatch):
    jobs = plan(build_parser().parse_args(_argv(tmp_path, cifar, benchmarks, "--methods", "darts",
                                                "--seeds", "0-1", "--epochs", "1")))

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(records.os, "fsync", full)
    outcomes = [execute(j) for j in jobs]  # neither raises: each run is failed with the path
    assert [o.status for o in outcomes] == ["failed", "failed"]
    assert all("disk full while writing" in o.message and "config.json" in o.message for o in outcomes)


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_honour_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write_json(tmp_path / "a.json", {"x": 1})
        records.rewrite_jsonl(tmp_path / "b.jsonl", [{"x": 1}])
    finally:
        os.umask(old)
    for name in ("a.json", "b.jsonl"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode


# ---- benchmark CSVs: the faulty file is the one named -------------------------------------------
@pytest.mark.parametrize("fault,needles", [
    ("garbage", ["nb201_acc_200ep.csv: malformed or truncated CSV"]),
    ("bad arch", ["nb201_acc_200ep.csv: 1 malformed arch strings"]),
    ("dropped", ["nb201_acc_200ep.csv: 15624 rows"]),
    ("other index", ["list different cells", "only in nb201_acc_200ep.csv (e.g. 99999)",
                     "only in nb201_acc_12ep.csv (e.g. 4)"]),
])
def test_a_bad_line_in_the_200_epoch_csv_is_blamed_on_it(tmp_path, benchmarks, fault, needles):
    from benchmark.errors import BenchmarkFileError
    from benchmark.tabular.nb201_table import NB201Table
    src = Path(benchmarks) / "nasbench201"
    lines = (src / "nb201_acc_200ep.csv").read_text().splitlines(True)
    line = lines[5]
    lines[5] = {"garbage": "garbage\n", "bad arch": line.replace("~0|", "~7|", 1), "dropped": "",
                "other index": "99999" + line[line.index(","):]}[fault]
    (tmp_path / "nb201_acc_200ep.csv").write_text("".join(lines))
    (tmp_path / "nb201_acc_12ep.csv").write_bytes((src / "nb201_acc_12ep.csv").read_bytes())
    with pytest.raises(BenchmarkFileError) as e:
        NB201Table.from_csv(tmp_path / "nb201_acc_200ep.csv", tmp_path / "nb201_acc_12ep.csv")
    for n in needles:
        assert n in str(e.value)
    if fault != "other index":
        assert "nb201_acc_12ep.csv" not in str(e.value)
