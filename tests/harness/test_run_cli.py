"""benchmark/run.py end to end: records, scoring, skip, identity, and bad input.

(Kill-and-resume is proven in test_fault_injection.py.)"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.harness.records import read_json, read_jsonl
from spaces.nb201 import parse_arch

pytestmark = pytest.mark.slow  # every test here runs searches or subprocesses

REPO = Path(__file__).resolve().parents[2]
TINY = ["--profile", "smoke", "--set", "train_subset=64", "--no-progress"]


def run(args, cifar, benchmarks, **kw):
    env = {**os.environ, "NAS_DATA": str(cifar), "NAS_BENCHMARKS": str(benchmarks)}
    return subprocess.run([sys.executable, str(REPO / "benchmark" / "run.py"), *args], env=env,
                          capture_output=True, text=True, cwd=REPO, **kw)


def test_grid_records_skip_and_identity(tmp_path, cifar, benchmarks):
    out = tmp_path / "results"
    r = run(["--methods", "darts,darts-2nd", "--spaces", "nb201", "--seeds", "0", "--epochs", "2",
             "--out", str(out), *TINY], cifar, benchmarks)
    assert r.returncode == 0, r.stderr
    for m in ("darts", "darts-2nd"):
        rd = out / "nb201" / m / "seed-0"
        recs = read_jsonl(rd / "epochs.jsonl")
        assert [x["epoch"] for x in recs] == [0, 1, 2]
        for x in recs:
            parse_arch(x["genotype"])
            assert 10 < x["benchmark"]["cifar10_test"] < 95 and x["benchmark"]["hp"] == "200"
            assert x["benchmark"]["cifar100_valid"] is None  # absent at hp 200 in the CSV: never filled
        assert recs[1]["train_loss"] > 0 and "epoch_seconds" in recs[1]["timing"]
        cfg = read_json(rd / "config.json")
        assert cfg["data_md5"] and cfg["split_source"].startswith("official")
        assert "git_commit" in read_json(rd / "provenance.json")[0]
        assert read_json(rd / "done.json")["genotype"] == recs[-1]["genotype"]
    # run again: nothing to do, nothing rewritten
    f = out / "nb201" / "darts" / "seed-0" / "epochs.jsonl"
    before = (f.read_bytes(), f.stat().st_mtime_ns)
    r = run(["--methods", "darts,darts-2nd", "--seeds", "0", "--epochs", "2", "--out", str(out), *TINY],
            cifar, benchmarks)
    assert r.returncode == 0 and "2 done" in r.stdout
    assert (f.read_bytes(), f.stat().st_mtime_ns) == before
    # another identity in the same folder is refused, and nothing is touched
    r = run(["--methods", "darts", "--seeds", "0", "--epochs", "3", "--out", str(out), *TINY],
            cifar, benchmarks)
    assert r.returncode == 2 and "different identity" in r.stderr and "epochs" in r.stderr
    assert (f.read_bytes(), f.stat().st_mtime_ns) == before


@pytest.mark.parametrize("args,needle", [
    (["--methods", "dartz"], "valid: darts"),
    (["--methods", "darts", "--spaces", "nb301"], "valid: nb201"),
    (["--methods", "darts", "--seeds", "5-3"], "run upwards"),
    (["--methods", "darts", "--seeds", "x"], "not a seed"),
    (["--methods", "darts", "--set", "nonsense=1"], "unknown setting"),
    (["--methods", "darts", "--set", "method.lr=1"], "no option 'lr'"),
    (["--methods", "darts", "--devices", "cuda:7"], "--devices"),
    (["--methods", "darts", "--data", "/no/such.npz"], "does not exist"),
    (["--methods", "darts", "--benchmarks", "/no/such/dir"], "no such folder"),
])
def test_bad_input_exits_2_and_touches_nothing(tmp_path, cifar, benchmarks, args, needle):
    out = tmp_path / "results"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    r = run([*args, "--out", str(out), "--profile", "smoke"], cifar, benchmarks)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert needle in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


# Without --data or NAS_DATA, the default folder is used (and downloaded into):
# tests/end_to_end/test_front_door.py, with the network off.


def test_runs_without_a_table_and_says_how_to_add_one(tmp_path, cifar, benchmarks):
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "cifar-split.txt").write_bytes((Path(benchmarks) / "nasbench201" / "cifar-split.txt").read_bytes())
    out = tmp_path / "results"
    r = run(["--methods", "darts", "--epochs", "1", "--out", str(out), "--benchmarks", str(bench), *TINY],
            cifar, benchmarks)
    assert r.returncode == 0, r.stderr
    assert "benchmark.prepare nb201" in r.stderr and "benchmark.score" in r.stderr
    recs = read_jsonl(out / "nb201" / "darts" / "seed-0" / "epochs.jsonl")
    assert all(x["benchmark"] is None for x in recs)
    s = subprocess.run([sys.executable, "-m", "benchmark.score", "--results", str(out), "--benchmarks",
                        str(benchmarks)], capture_output=True, text=True, cwd=REPO)
    assert s.returncode == 0, s.stderr
    recs = read_jsonl(out / "nb201" / "darts" / "seed-0" / "epochs.jsonl")
    assert all(x["benchmark"]["cifar10_test"] > 0 for x in recs)


def test_set_none_resets_a_field_a_profile_filled():
    """The smoke profile sets train_subset to a number; `--set train_subset=none` must give the
    whole half back (it used to be refused as "expected a whole number"), and a word is still
    refused."""
    import pytest
    from benchmark.harness.config import ConfigError, resolve_config
    assert resolve_config("darts", "darts", 0, "smoke").train_subset == 32
    assert resolve_config("darts", "darts", 0, "smoke", sets=["train_subset=none"]).train_subset is None
    with pytest.raises(ConfigError, match="train_subset"):
        resolve_config("darts", "darts", 0, "smoke", sets=["train_subset=abc"])
