"""1Shot1 spaces through the harness: search, NB101 spec and hash per epoch, table, regret."""
from __future__ import annotations

import pytest
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from benchmark.tabular.nb101_tfrecord import encode_record, make_metrics, write_frames
from benchmark.harness.records import read_jsonl
from spaces import get_space
from spaces.nb101 import module_hash

pytestmark = pytest.mark.slow  # every test here runs searches or subprocesses

REPO = Path(__file__).resolve().parents[2]


def test_search_records_specs_and_scores_regret(tmp_path, cifar):
    out, bench = tmp_path / "results", tmp_path / "bench"
    bench.mkdir()
    env = {**os.environ, "NAS_DATA": str(cifar), "NAS_BENCHMARKS": str(bench)}
    r = subprocess.run([sys.executable, "benchmark/run.py", "--methods", "darts", "--spaces", "nb1shot1-s1",
                        "--profile", "smoke", "--epochs", "1", "--set", "train_subset=64", "--no-progress",
                        "--out", str(out)], env=env, cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "benchmark.prepare nb101" in r.stderr  # no table yet: says how to make one
    run = out / "nb1shot1-s1" / "darts" / "seed-0"
    recs = read_jsonl(run / "epochs.jsonl")
    space = get_space("nb1shot1-s1")
    for rec in recs:
        info = rec["genotype_info"]
        assert info["module_hash"] == module_hash(np.array(info["matrix"]), info["ops"])
        assert len(info["ops"]) == 7  # padded to NB101's 7 vertices
        assert rec["benchmark"] is None
    # An NB101 file in the official format holding the recorded hashes with known accuracies.
    hashes = sorted({rec["genotype_info"]["module_hash"] for rec in recs})
    frames, want = [], {}
    for k, h in enumerate(hashes):
        info = next(x["genotype_info"] for x in recs if x["genotype_info"]["module_hash"] == h)
        tests = [0.90 + 0.01 * k, 0.91 + 0.01 * k, 0.92 + 0.01 * k]
        want[h] = 1 - float(np.mean(tests))
        for t in tests:
            evals = [dict(current_epoch=float(e), training_time=1.0, train_accuracy=1.0,
                          validation_accuracy=t - 0.01, test_accuracy=t if e == 108 else 0.1)
                     for e in (4, 36, 108)]
            frames.append(encode_record(h, 108, info["pruned_matrix"], info["pruned_ops"],
                                        make_metrics(evals, 1000, 10.0)))
    write_frames(str(tmp_path / "nb101.tfrecord"), frames)
    p = subprocess.run([sys.executable, "-m", "benchmark.prepare", "nb101", "--source",
                        str(tmp_path / "nb101.tfrecord"), "--out", str(bench), "--no-progress"],
                       cwd=REPO, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    s = subprocess.run([sys.executable, "-m", "benchmark.score", "--results", str(out), "--benchmarks",
                        str(bench)], cwd=REPO, capture_output=True, text=True)
    assert s.returncode == 0, s.stderr
    for rec in read_jsonl(run / "epochs.jsonl"):
        b = rec["benchmark"]
        h = rec["genotype_info"]["module_hash"]
        assert abs(b["test_error"] - want[h]) < 1e-6
        assert abs(b["test_regret"] - (want[h] - space.test_min_error)) < 1e-6
