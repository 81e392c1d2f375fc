"""benchmark/harness/assess.py: one answer for what a run folder is, used by the search worker,
retraining and the report (issue 22)."""
from __future__ import annotations

import json

import pytest

from benchmark.harness import run_cli
from benchmark.harness.assess import assess
from tests.harness.test_input_limits import _argv


def test_assess_names_what_the_folders_own_files_disagree_on(tmp_path):
    import torch
    run = tmp_path / "nb201" / "darts" / "seed-7"
    run.mkdir(parents=True)
    cfg = {"space": "nb201", "method": "darts", "seed": 1, "epochs": 0, "profile": "smoke"}
    (run / "config.json").write_text(json.dumps(cfg))
    (run / "epochs.jsonl").write_text(json.dumps({"epoch": 0, "seed": 1, "space": "nb201", "method": "darts"}) + "\n")
    (run / "done.json").write_text(json.dumps({"genotype": "g", "epochs": 0}))
    torch.save({"epoch": 0, "identity": {**cfg, "profile": "paper"}}, run / "checkpoint.pt")
    a = assess(run, "search")
    assert a.status == "done" and not a.problems
    assert "config.json says seed 1 but the folder is seed-7" in a.mismatch
    assert 'profile: "paper" -> "smoke"' in a.mismatch
    # a retraining's records start at epoch 1: epochs 1..N whole is not damage
    rt = tmp_path / "rt" / "seed-0"
    rt.mkdir(parents=True)
    (rt / "config.json").write_text(json.dumps({"seed": 0, "kind": "retrain"}))
    (rt / "epochs.jsonl").write_text("".join(json.dumps({"epoch": e}) + "\n" for e in (1, 2)))
    (rt / "done.json").write_text(json.dumps({"epochs": 2}))
    assert assess(rt, "retrain").status == "done"
    (rt / "epochs.jsonl").write_text(json.dumps({"epoch": 1}) + "\n")
    assert assess(rt, "retrain").problems == ["epoch 2 missing"]


@pytest.mark.slow
def test_a_hand_edited_config_json_is_refused_by_run_py(tmp_path, fast_cifar, benchmarks, capsys):
    argv = _argv(tmp_path, fast_cifar, benchmarks, "--methods", "darts", "--seeds", "0")
    assert run_cli.main([*argv, "--epochs", "1"]) == 0
    run = tmp_path / "results" / "nb201" / "darts" / "seed-0"
    cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**cfg, "epochs": 2}))   # edited by hand
    capsys.readouterr()
    assert run_cli.main([*argv, "--epochs", "2"]) == 1                    # not counted as done
    err = capsys.readouterr().err
    assert "refused" in err and "checkpoint.pt was made under other settings" in err


@pytest.mark.slow
def test_ctrl_c_of_run_py_says_how_to_resume_without_a_traceback(tmp_path, fast_cifar, benchmarks):
    import sys
    from tests.e2e import sigint_once
    from tests.harness.test_input_limits import REPO
    out = tmp_path / "results"
    cmd = [sys.executable, str(REPO / "benchmark" / "run.py"), "--methods", "darts", "--seeds", "0",
           "--epochs", "200", *_argv(tmp_path, fast_cifar, benchmarks)]
    rc, err = sigint_once(cmd, REPO, out / "nb201" / "darts" / "seed-0" / "checkpoint.pt", "run")
    assert rc == 130, err
    assert "Traceback" not in err and "resumes from its last checkpoint" in err
