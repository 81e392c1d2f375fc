"""Damaged run files (issue 12): a damaged finished run is reported and left out, never used
silently; run.py repairs only by recomputing; a checkpoint of other settings is refused; score
and report skip a damaged run and go on; one damaged folder fails that run only."""
from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import shutil
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tests.e2e import interrupt_at_epoch
from analysis import collect as C
from analysis import report as R
from benchmark.harness import run_cli, scoring
from benchmark.harness.records import JsonlScan, read_json, read_jsonl, scan_jsonl, strip_timing
from benchmark.harness.rundir import RunDir, records_problems


def _argv(out: Path, cifar, benchmarks, *extra: str, seeds: str = "0", epochs: int = 2) -> list[str]:
    return ["--methods", "darts", "--seeds", seeds, "--epochs", str(epochs), "--profile", "smoke",
            "--set", "train_subset=32", "--threads", "1", "--no-progress", "--out", str(out),
            "--data", str(cifar), "--benchmarks", str(benchmarks), *extra]


def _main(fn, argv) -> SimpleNamespace:
    """A CLI main in this process (the data stays cached): exit code, stdout, stderr."""
    so, se = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(so), contextlib.redirect_stderr(se):
        try:
            code = fn(argv)
        except SystemExit as e:
            code = e.code
    return SimpleNamespace(code=code, out=so.getvalue(), err=se.getvalue())


def _run(out, cifar, benchmarks, *extra, **kw):
    return _main(run_cli.main, _argv(out, cifar, benchmarks, *extra, **kw))


def _records(run: Path) -> list[dict]:
    return [strip_timing(r) for r in read_jsonl(run / "epochs.jsonl")]


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".lock"}


def _garble_line(path: Path, n: int) -> None:
    """Replace line n (from 1) by garbage, newline kept (`sed -i 'Ns/.*/garbage/'`)."""
    lines = path.read_bytes().split(b"\n")
    lines[n - 1] = b"garbage"
    path.write_bytes(b"\n".join(lines))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cifar, benchmarks) -> Path:
    """Two finished 2-epoch runs (seeds 0, 1), computed once and copied by each test."""
    out = tmp_path_factory.mktemp("ref") / "results"
    r = _run(out, cifar, benchmarks, seeds="0-1")
    assert r.code == 0, r.err
    return out


def _copy(reference: Path, tmp_path: Path) -> Path:
    out = tmp_path / "results"
    shutil.copytree(reference, out)
    return out


# --- the rule itself, on hand-made files -------------------------------------------------------

def _scan(text: str, tmp_path: Path) -> JsonlScan:
    p = tmp_path / "e.jsonl"
    p.write_text(text)
    return scan_jsonl(p)


def test_torn_tail_of_unfinished_run_is_no_damage_but_garbage_is(tmp_path):
    ok = '{"epoch": 0}\n{"epoch": 1}\n'
    torn = _scan(ok + '{"epoch": 2, "geno', tmp_path)
    assert torn.torn_tail == 3 and [r["epoch"] for r in torn.rows] == [0, 1]
    assert records_problems(torn, None, finished=False) == []
    # the same bytes in a finished run: its last epoch is not whole
    assert records_problems(torn, 2, finished=True) == ["epochs.jsonl line 3 unreadable", "epoch 2 missing"]
    # a garbage line that ends with a newline is no torn write, finished or not
    mid = _scan('{"epoch": 0}\ngarbage\n{"epoch": 2}\n', tmp_path)
    assert records_problems(mid, None, finished=False) == ["epochs.jsonl line 2 unreadable", "epoch 1 missing"]
    assert records_problems(_scan(ok + '{"epoch": 1}\n', tmp_path), 1, True) == ["epoch 1 recorded more than once"]
    assert records_problems(_scan(ok + "[1, 2]\n", tmp_path), 1, True) == ["epochs.jsonl line 3 unreadable"]
    assert records_problems(_scan(ok, tmp_path), 3, True) == ["epochs 2-3 missing"]
    assert records_problems(_scan(ok, tmp_path), 1, True) == []


# --- item 1: a damaged finished run ------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("line", [3, 2], ids=["last line", "middle line"])
def test_damaged_finished_run_is_reported_left_out_and_recomputed(tmp_path, reference, cifar,
                                                                  benchmarks, line):
    out = _copy(reference, tmp_path)
    run0 = out / "nb201" / "darts" / "seed-0"
    _garble_line(run0 / "epochs.jsonl", line)
    missing = "epoch 2 missing" if line == 3 else "epoch 1 missing"

    # report: named with what is wrong, left out of the mean; exit 1
    r = _main(R.main, ["--results", str(out)])
    assert r.code == 1 and f"left out damaged run {run0}" in r.err and missing in r.err, r.err
    rep = out / "report"
    runs = {row["seed"]: row for row in csv.DictReader(open(rep / "data" / "runs.csv"))}
    assert runs["0"]["status"] == "damaged" and f"line {line} unreadable" in runs["0"]["damage"]
    assert missing in runs["0"]["damage"] and runs["1"]["status"] == "done" and not runs["1"]["damage"]
    md = (rep / "report.md").read_text()
    assert "Damaged runs" in md and missing in md and "--retry-failed" in md
    final = list(csv.DictReader(open(rep / "tables" / "nb201_final.csv")))
    assert final[0]["n_seeds"] == "1"
    assert {int(s) for s in pd_read(rep / "data" / "epochs.csv", "seed")} == {1}  # trajectories too
    # ... unless asked for
    r = _main(R.main, ["--results", str(out), "--include-damaged"])
    assert r.code == 0 and "included damaged run" in r.err
    assert list(csv.DictReader(open(rep / "tables" / "nb201_final.csv")))[0]["n_seeds"] == "2"

    # run.py: a plain rerun says so and touches nothing; --retry-failed recomputes it
    before = _snapshot(out / "nb201")
    r = _run(out, cifar, benchmarks, seeds="0-1")
    assert r.code == 1 and "seed-0: damaged" in r.err and missing in r.err and "--retry-failed" in r.err
    assert "summary: 1 damaged, 1 done" in r.out and _snapshot(out / "nb201") == before
    r = _run(out, cifar, benchmarks, "--retry-failed", seeds="0-1")
    assert r.code == 0 and "summary: 1 done, 1 finished" in r.out, r.err
    assert "does not match the records" in r.err and "afresh" in r.err  # says how it repaired
    assert _records(run0) == _records(reference / "nb201" / "darts" / "seed-0")
    assert read_json(run0 / "done.json")["genotype"] == read_json(reference / "nb201/darts/seed-0/done.json")["genotype"]
    assert _main(R.main, ["--results", str(out)]).code == 0


def pd_read(path: Path, col: str) -> list[str]:
    return [row[col] for row in csv.DictReader(open(path))]


def test_damaged_done_json_is_repaired_from_the_matching_checkpoint(tmp_path, reference, cifar, benchmarks):
    out = _copy(reference, tmp_path)
    run0 = out / "nb201" / "darts" / "seed-0"
    (run0 / "done.json").write_text('{"genotype": "|nor_conv')
    records = (run0 / "epochs.jsonl").read_bytes()
    r = _run(out, cifar, benchmarks)
    assert r.code == 1 and "done.json: not valid JSON" in r.err
    r = _run(out, cifar, benchmarks, "--retry-failed")
    assert r.code == 0 and "resumed from checkpoint.pt (epoch 2)" in r.err, r.err
    assert (run0 / "epochs.jsonl").read_bytes() == records  # nothing recomputed, nothing lost
    assert read_json(run0 / "done.json")["genotype"] == read_json(reference / "nb201/darts/seed-0/done.json")["genotype"]


# --- unfinished runs: torn checkpoint, damaged records -----------------------------------------

def _interrupted(out: Path, cifar, benchmarks, monkeypatch) -> Path:
    """Run seed 0 to its epoch-1 checkpoint, then 'kill' it (epochs=2)."""
    undo = interrupt_at_epoch(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        run_cli.main(_argv(out, cifar, benchmarks))
    undo()
    run = out / "nb201" / "darts" / "seed-0"
    assert (run / "checkpoint.pt").exists() and not (run / "done.json").exists()
    return run


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated checkpoint", "garbage record", "torn tail"])
def test_unfinished_run_with_damage_starts_afresh_with_identical_records(tmp_path, reference, cifar,
                                                                         benchmarks, monkeypatch, damage):
    run = _interrupted(tmp_path / "results", cifar, benchmarks, monkeypatch)
    if damage == "truncated checkpoint":
        data = (run / "checkpoint.pt").read_bytes()
        (run / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    elif damage == "garbage record":
        _garble_line(run / "epochs.jsonl", 2)
    else:  # what a kill inside a write leaves: not damage, the run simply resumes
        with open(run / "epochs.jsonl", "ab") as f:
            f.write(b'{"epoch": 2, "genotype": "|none~0|+|no')
    r = _run(tmp_path / "results", cifar, benchmarks)
    assert r.code == 0 and "summary: 1 finished" in r.out, r.err
    if damage == "torn tail":
        assert "afresh" not in r.err
    else:
        assert "starting this run afresh" in r.err and str(run) in r.err, r.err
    assert _records(run) == _records(reference / "nb201" / "darts" / "seed-0")


# --- item 2: a checkpoint carries the identity it was made under -------------------------------

@pytest.mark.slow
def test_checkpoint_of_other_settings_is_refused_before_anything_runs(tmp_path, reference, cifar,
                                                                      benchmarks, monkeypatch):
    out = tmp_path / "results"
    run = _interrupted(out, cifar, benchmarks, monkeypatch)
    (run / "config.json").unlink()
    before = _snapshot(out)
    r = _run(out, cifar, benchmarks, "--set", "w_lr=0.05")
    assert r.code == 2 and "checkpoint.pt was made under other settings" in r.err, r.err
    assert "w_lr: 0.025 -> 0.05" in r.err and "delete" in r.err and _snapshot(out) == before
    # the original settings resume it (config.json is written again) with identical records
    r = _run(out, cifar, benchmarks)
    assert r.code == 0 and "summary: 1 finished" in r.out, r.err
    assert read_json(run / "config.json")["w_lr"] == 0.025
    assert _records(run) == _records(reference / "nb201" / "darts" / "seed-0")


@pytest.mark.slow
def test_old_checkpoint_without_identity(tmp_path, reference, cifar, benchmarks, monkeypatch):
    """Accepted while config.json vouches for it; refused (exit 2) once config.json is gone."""
    out = tmp_path / "results"
    run = _interrupted(out, cifar, benchmarks, monkeypatch)
    ck = torch.load(run / "checkpoint.pt", weights_only=False)
    del ck["identity"]
    torch.save(ck, run / "checkpoint.pt")
    config = (run / "config.json").read_bytes()
    (run / "config.json").unlink()
    r = _run(out, cifar, benchmarks)
    assert r.code == 2 and "no record of the settings" in r.err and "delete" in r.err, r.err
    (run / "config.json").write_bytes(config)
    r = _run(out, cifar, benchmarks)
    assert r.code == 0 and "summary: 1 finished" in r.out, r.err
    assert _records(run) == _records(reference / "nb201" / "darts" / "seed-0")


# --- item 5: a damaged folder fails that run only ----------------------------------------------

@pytest.mark.slow
def test_damaged_config_or_provenance_fails_that_run_only(tmp_path, cifar, benchmarks):
    out = tmp_path / "results"
    bad_cfg = out / "nb201" / "darts" / "seed-0" / "config.json"
    bad_prov = out / "nb201" / "darts" / "seed-1" / "provenance.json"
    for p in (bad_cfg, bad_prov):
        p.parent.mkdir(parents=True)
        p.write_text('{"space": "nb2')
    r = _run(out, cifar, benchmarks, seeds="0-2", epochs=1)
    assert r.code == 1 and "summary: 2 damaged, 1 finished" in r.out, r.err
    assert f"{bad_cfg}: not valid JSON" in r.err and f"{bad_prov}: not valid JSON" in r.err
    assert "Traceback" not in r.err and (out / "nb201/darts/seed-2/done.json").exists()
    assert bad_cfg.read_text() == bad_prov.read_text() == '{"space": "nb2'  # evidence kept
    r = _run(out, cifar, benchmarks, "--retry-failed", seeds="0-2", epochs=1)
    assert r.code == 0 and "summary: 1 done, 2 finished" in r.out, r.err
    assert read_json(bad_cfg)["seed"] == 0
    assert (bad_prov.parent / "provenance.json.damaged").read_text() == '{"space": "nb2'
    assert len(read_json(bad_prov)) == 1


# --- item 4 and the smaller ones: score ---------------------------------------------------------

def test_score_skips_damaged_runs_names_them_and_scores_the_rest(tmp_path, reference, cifar, benchmarks):
    out = _copy(reference, tmp_path)
    shutil.copytree(out / "nb201" / "darts" / "seed-1", out / "nb201" / "darts" / "seed-2")
    cfg2 = out / "nb201/darts/seed-2/config.json"
    cfg2.write_text(cfg2.read_text().replace('"seed": 1', '"seed": 2'))
    bad_line = out / "nb201/darts/seed-0/epochs.jsonl"
    _garble_line(bad_line, 2)
    bad_cfg = out / "nb201/darts/seed-1/config.json"
    bad_cfg.write_text("{not json")
    good = out / "nb201/darts/seed-2"
    rows = read_jsonl(good / "epochs.jsonl")
    (good / "epochs.jsonl").write_text("".join(json.dumps({**r, "benchmark": None}) + "\n" for r in rows))
    (good / ".epochs.jsonl.abc123.tmp").write_text("left by a killed score")
    damaged_bytes = bad_line.read_bytes()

    r = _main(scoring.main, ["--results", str(out), "--benchmarks", str(benchmarks)])
    assert r.code == 1, r.err
    assert f"skipped {bad_line}: epochs.jsonl line 2 unreadable; epoch 1 missing" in r.err
    assert f"skipped {bad_cfg}: not valid JSON" in r.err and "Traceback" not in r.err
    assert "scored 3 records in 1 runs; skipped 2 damaged run(s)" in r.out
    assert all(x["benchmark"]["cifar10_test"] > 0 for x in read_jsonl(good / "epochs.jsonl"))
    assert not list(good.glob(".*.tmp")) and bad_line.read_bytes() == damaged_bytes


def test_score_with_a_corrupt_table_exits_2(tmp_path, reference, benchmarks):
    out = _copy(reference, tmp_path)
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "nb201.parquet").write_bytes(b"\x00garbage" * 100)
    r = _main(scoring.main, ["--results", str(out), "--benchmarks", str(bench)])
    assert r.code == 2 and "nb201.parquet" in r.err and "replace or remove" in r.err, r.err
    assert "Traceback" not in r.err


def test_score_says_whom_it_waits_for(tmp_path, reference, benchmarks):
    out = _copy(reference, tmp_path)
    rd = RunDir(out, "nb201", "darts", 0)
    lock = rd.try_lock(0, "run.py: searching nb201/darts/seed-0")
    said: list[str] = []
    t = threading.Thread(target=scoring.rescore, args=(out, Path(benchmarks), said.append))
    t.start()
    deadline = time.time() + 60
    while not any("waiting" in s for s in said) and time.time() < deadline:
        time.sleep(0.02)
    rd.unlock(lock)
    t.join(60)
    msg = next(s for s in said if "waiting" in s)
    assert str(rd.path) in msg and "run.py: searching nb201/darts/seed-0" in msg and "process" in msg
    assert not rd.lock_info.exists()


# --- report: collection, atomic swap, exit 2 ----------------------------------------------------

def test_garbage_failed_json_says_it_is_damaged(tmp_path, reference):
    out = _copy(reference, tmp_path)
    run = out / "nb201" / "darts" / "seed-1"
    (run / "done.json").unlink()
    (run / "failed.json").write_text("\x00\x01 garbage")
    _, runs = C.collect(out)
    reason = runs[runs.seed == 1].iloc[0].reason
    assert "failed.json is damaged" in reason


@pytest.mark.slow
def test_killed_report_leaves_the_old_one_whole(tmp_path, reference, monkeypatch):
    out = _copy(reference, tmp_path)
    assert _main(R.main, ["--results", str(out)]).code == 0
    rep = out / "report"
    before = _snapshot(rep)
    build = R._build

    def killed(results, tmp, *a):
        build(results, tmp, *a)  # every new file written...
        raise KeyboardInterrupt   # ...and killed before the swap

    monkeypatch.setattr(R, "_build", killed)
    with pytest.raises(KeyboardInterrupt):
        R.main(["--results", str(out)])
    assert _snapshot(rep) == before and not list(out.glob(".report.*"))
    # what a SIGKILL would leave (a temp folder) goes at the next report
    (out / ".report.tmp-dead").mkdir()
    (out / ".report.tmp-dead" / "report.md").write_text("half")
    monkeypatch.setattr(R, "_build", build)
    (out / "nb201" / "darts" / "seed-1" / "done.json").unlink()  # the new report differs
    assert _main(R.main, ["--results", str(out)]).code == 0
    assert not list(out.glob(".report.*")) and _snapshot(rep) != before
    assert "partial" in (rep / "report.md").read_text()


def test_report_out_unwritable_exits_2(tmp_path, reference, monkeypatch):
    out = _copy(reference, tmp_path)
    f = tmp_path / "afile"
    f.write_text("x")
    r = _main(R.main, ["--results", str(out), "--out", str(f)])
    assert r.code == 2 and "is a file" in r.err and f.read_text() == "x"
    r = _main(R.main, ["--results", str(out), "--out", str(f / "report")])
    assert r.code == 2 and "no folder can be made below it" in r.err
    ro = tmp_path / "ro"
    ro.mkdir()
    real = R.os.access
    monkeypatch.setattr(R.os, "access", lambda p, m: False if Path(p) == ro else real(p, m))
    r = _main(R.main, ["--results", str(out), "--out", str(ro)])  # root ignores permission bits
    assert r.code == 2 and "read-only" in r.err and "Traceback" not in r.err
