"""The DARTS paper's selection protocol (benchmark/retrain/select.py, profiles `select`):
the 45k/5k split, no test-set access, the winner, input validation, resume after a kill."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.retrain import profiles, select
from benchmark.retrain.data import TrainTest, holdout_split
from benchmark.retrain.job import RetrainJob
from benchmark.retrain.train import evaluation_set, run_retrain, training_set

REPO = Path(__file__).resolve().parents[2]


def test_select_profile_is_paper_with_100_epochs_and_the_last_5k_held_out():
    """DARTS Sec. 3.2: 100 epochs on CIFAR-10 to pick the cell; the rest as the paper profile."""
    s, p = profiles.resolve("G", 0, "select"), profiles.resolve("G", 0, "paper")
    assert (s.epochs, s.valid_on, s.holdout) == (100, "holdout", 5000)
    same = {k: v for k, v in p.to_json().items() if k not in ("epochs", "profile")}
    assert {k: s.to_json()[k] for k in same} == same
    # the paper profile's identity does not carry the new fields: old retrainings keep theirs
    assert "valid_on" not in p.to_json() and "holdout" not in p.to_json()
    assert s.to_json()["valid_on"] == "holdout" and s.to_json()["holdout"] == 5000
    assert profiles.FINAL_OF == {"select": "paper", "select-smoke": "smoke"}
    # the DARTS code's test-set selection only when named, and then with no held-out images
    t = profiles.resolve("G", 0, "select", sets=["valid_on=test"])
    assert (t.valid_on, t.holdout, t.selecting) == ("test", None, True)


def _index_data(n: int = 50000, n_test: int = 10) -> TrainTest:
    """Images whose label is their index in the training order (to read which ones were used)."""
    x = np.zeros((n, 32, 32, 3), np.uint8)
    return TrainTest(x, np.arange(n, dtype=np.int64), x[:n_test], np.arange(n_test, dtype=np.int64), 10, "t", "m")


def test_holdout_is_the_last_5k_disjoint_from_the_45k_and_from_the_test_set():
    assert holdout_split(50000, 5000) == (slice(0, 45000), slice(45000, 50000))
    data, cfg = _index_data(), profiles.resolve("G", 0, "select")
    (_, ytr), (_, yv, kind) = training_set(data, cfg), evaluation_set(data, cfg)
    assert kind == "valid" and list(ytr) == list(range(45000)) and list(yv) == list(range(45000, 50000))
    assert not set(ytr) & set(yv) and len(ytr) + len(yv) == 50000
    # neither comes from the test arrays: every image is a training image (views of x_train)
    assert np.shares_memory(yv, data.y_train) and not np.shares_memory(yv, data.y_test)
    paper = profiles.resolve("G", 0, "paper")
    assert len(training_set(data, paper)[1]) == 50000 and evaluation_set(data, paper)[2] == "test"
    for bad in (0, 50000):
        with pytest.raises(ValueError, match="holdout"):
            holdout_split(50000, bad)


class _Poison:
    """A test set that fails on any access."""
    def __getitem__(self, k):
        raise AssertionError("the test set was read")

    def __len__(self):
        raise AssertionError("the test set was read")


def _tiny(profile: str, sets=()) -> profiles.RetrainConfig:
    from spaces.darts import DARTS_V2
    return profiles.resolve(DARTS_V2, 0, profile, epochs=1,
                            sets=["C=2", "layers=3", "train_subset=32", "batch_size=16", *sets])


@pytest.mark.slow
def test_selection_training_never_reads_the_test_set_unless_named(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (96, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, 96).astype(np.int64)
    data = TrainTest(x, y, _Poison(), _Poison(), 10, "t", "m")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    done = run_retrain(_tiny("select-smoke", ["holdout=32"]), tmp_path / "a", data, progress=False)
    assert done["valid_images"] == 32 and done["train_images"] == 32 and "test_acc" not in done
    assert done["selection_acc"] == done["valid_acc"] and "held-out" in done["selected_on"]
    rec = json.loads((tmp_path / "a" / "epochs.jsonl").read_text().splitlines()[0])
    assert "valid_acc" in rec and "test_acc" not in rec
    with pytest.raises(AssertionError, match="test set was read"):   # the named option reads it
        run_retrain(_tiny("select-smoke", ["valid_on=test"]), tmp_path / "b", data, progress=False)


def _fake_search(results: Path, seed: int, genotype: str, method: str = "darts") -> Path:
    run = results / "darts" / method / f"seed-{seed}"
    run.mkdir(parents=True)
    (run / "done.json").write_text(json.dumps({"genotype": genotype, "epochs": 0}))
    (run / "config.json").write_text(json.dumps({"space": "darts", "method": method, "seed": seed,
                                                 "epochs": 0, "profile": "smoke"}))
    (run / "epochs.jsonl").write_text(json.dumps({"epoch": 0, "genotype": genotype}) + "\n")
    return run


def _fake_selection_run(job: RetrainJob, acc: float) -> None:
    """A whole finished selection retraining with validation accuracy `acc`."""
    f = Path(job.folder)
    f.mkdir(parents=True)
    cfg = job.config
    (f / "config.json").write_text(json.dumps(cfg.to_json()))
    (f / "epochs.jsonl").write_text("".join(json.dumps({"epoch": e, "valid_acc": acc}) + "\n"
                                            for e in range(1, cfg.epochs + 1)))
    (f / "done.json").write_text(json.dumps({"valid_acc": acc, "selection_acc": acc, "selected_on": "held out"}))


GENOTYPES = ("DARTS_V1", "DARTS_V2")


def _genotypes():
    from spaces.darts import PUBLISHED
    g1, g2 = PUBLISHED["DARTS_V1"], PUBLISHED["DARTS_V2"]
    g3 = g2.replace("('dil_conv_3x3', 2)", "('sep_conv_5x5', 2)")
    assert g3 != g2
    return [g1, g2, g3]


def test_selection_picks_the_best_validation_cell(tmp_path):
    """Three finished candidates (fake): the best validation accuracy wins, a tie goes to the
    lowest search seed, and selection.json records every candidate."""
    runs = [_fake_search(tmp_path, k, g) for k, g in enumerate(_genotypes())]
    jobs = [RetrainJob(profiles.resolve(g, 0, "select-smoke"), str(r / "retrain-select" / "seed-0"), "x")
            for r, g in zip(runs, _genotypes())]
    for j, acc in zip(jobs, (91.0, 93.5, 92.0)):
        _fake_selection_run(j, acc)
    path = select.selection_file(tmp_path, "darts")
    d = select.write_selection(path, "darts", "cifar10", jobs, "smoke")
    assert d["winner"]["run"] == "seed-1" and d["winner"]["genotype"] == _genotypes()[1]
    assert json.loads(path.read_text()) == d
    assert [c["selection_acc"] for c in d["candidates"]] == [91.0, 93.5, 92.0]
    assert d["protocol"] == "selected" and d["settings"]["valid_on"] == "holdout"
    tie = [{"search_seed": s, "search_run": f"r{s}", "selection_acc": 90.0} for s in (2, 0, 1)]
    assert select.pick(tie)["search_seed"] == 0
    # an unfinished candidate: no winner (ValueError naming its folder)
    (Path(jobs[2].folder) / "done.json").unlink()
    with pytest.raises(ValueError, match="seed-2"):
        select.candidates_of(jobs)


def _tree(p: Path) -> list[str]:
    return sorted(str(q.relative_to(p)) for q in p.rglob("*"))


@pytest.mark.parametrize("args, names", [
    (["--final-seeds", "x"], "--final-seeds"),
    (["--select-set", "valid_on=bogus"], "valid_on"),
    (["--select-set", "holdout=0"], "holdout"),
    (["--select-seed", "-1"], "--select-seed"),
    (["--set", "valid_on=holdout", "--set", "holdout=10"], "valid_on"),
    (["--epochs", "0"], "--epochs"),
    (["--methods", "nosuch"], "nosuch"),
])
def test_bad_values_exit_2_before_anything_is_created(tmp_path, capsys, cifar, args, names):
    _fake_search(tmp_path, 0, _genotypes()[0])
    before = _tree(tmp_path)
    rc = select.main(["--results", str(tmp_path), "--profile", "smoke", "--data", str(cifar), *args])
    assert rc == 2 and names in capsys.readouterr().err
    assert _tree(tmp_path) == before


def test_a_damaged_selection_file_fails_its_method_only(tmp_path, capsys):
    _fake_search(tmp_path, 0, _genotypes()[0])
    sel = select.selection_file(tmp_path, "darts")
    sel.write_text('{"winner": ')
    before = _tree(tmp_path)
    rc = select.main(["--results", str(tmp_path), "--profile", "smoke", "--threads", "1"])
    assert rc == 1 and str(sel) in capsys.readouterr().err
    assert _tree(tmp_path) == before and sel.read_text() == '{"winner": '


@pytest.mark.slow
def test_a_holdout_not_smaller_than_the_training_set_exits_2(tmp_path, capsys, fast_cifar):
    _fake_search(tmp_path, 0, _genotypes()[0])
    before = _tree(tmp_path)
    rc = select.main(["--results", str(tmp_path), "--profile", "smoke", "--data", str(fast_cifar),
                      "--select-set", "holdout=50000"])
    assert rc == 2 and "holdout=50000" in capsys.readouterr().err and _tree(tmp_path) == before


def _cmd(results: Path, data: Path, select_epochs: int = 2) -> list[str]:
    return ["--results", str(results), "--profile", "smoke", "--final-seeds", "0-1",
            "--data", str(data), "--threads", "1", "--no-progress",
            "--select-set", f"epochs={select_epochs}", "--select-set", "C=2", "--select-set", "layers=3",
            "--select-set", "train_subset=64", "--select-set", "holdout=32",
            "--epochs", "1", "--set", "C=2", "--set", "layers=3", "--set", "train_subset=64",
            "--set", "test_subset=32"]


@pytest.mark.slow
def test_selection_resumes_after_kill_and_is_not_redone(tmp_path, fast_cifar):
    """SIGKILL while the first candidate trains; the rerun resumes it, selects, retrains the
    winner with both final seeds; a third run changes nothing; other selection settings are
    refused (exit 2) with nothing created."""
    main = select.main
    runs = [_fake_search(tmp_path, k, g) for k, g in enumerate(_genotypes()[:2])]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen([sys.executable, "-m", "benchmark.retrain", "select", *_cmd(tmp_path, fast_cifar)], cwd=REPO,
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = runs[0] / "retrain-select" / "seed-0" / "checkpoint.pt"
    deadline = time.time() + 300
    while time.time() < deadline and not checkpoint.exists() and p.poll() is None:
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert checkpoint.exists() and not (checkpoint.parent / "done.json").exists(), "killed too late"
    sel = select.selection_file(tmp_path, "darts")
    assert not sel.exists()
    assert main(_cmd(tmp_path, fast_cifar)) == 0
    prov = json.loads((checkpoint.parent / "provenance.json").read_text())
    assert len(prov) == 2   # started twice: resumed, not restarted elsewhere
    d = json.loads(sel.read_text())
    accs = {c["run"]: c["selection_acc"] for c in d["candidates"]}
    assert set(accs) == {"seed-0", "seed-1"} and accs[d["winner"]["run"]] == max(accs.values())
    win = tmp_path / "darts" / "darts" / d["winner"]["run"]
    for r in (0, 1):
        done = json.loads((win / "retrain" / f"seed-{r}" / "done.json").read_text())
        assert done["genotype"] == d["winner"]["genotype"] and "test_error" in done
    loser = [r for r in runs if r.name != d["winner"]["run"]][0]
    assert not (loser / "retrain").exists()
    text, before = sel.read_text(), _tree(tmp_path)
    assert main(_cmd(tmp_path, fast_cifar)) == 0     # nothing redone
    assert sel.read_text() == text and _tree(tmp_path) == before
    assert main(_cmd(tmp_path, fast_cifar, select_epochs=1)) == 2   # other settings: refused
    assert sel.read_text() == text and _tree(tmp_path) == before
