"""Retraining gets the searches' guarantees (issue 22): a checkpoint carries its identity, a
damaged finished retraining is reported and repaired by --retry-failed, an unreadable
checkpoint restarts the run, pool workers stop when their parent dies, and bad values and
bad folders exit 2 with a message instead of a traceback."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark.harness.records import read_jsonl, strip_timing
from benchmark.retrain import cli
from tests.e2e import sigint_once
from tests.retrain.test_retrain import REPO, TINY, _args, keep_threads  # noqa: F401  (a fixture)

RUN = Path("retrain") / "darts" / "DARTS_V2" / "seed-0"


@pytest.fixture
def finished(tmp_path, fast_cifar, keep_threads):  # noqa: F811
    """A finished tiny retraining (3 epochs) and its records."""
    out = tmp_path / "a"
    assert cli.main(_args(out, fast_cifar)) == 0
    return out, read_jsonl(out / RUN / "epochs.jsonl")


@pytest.mark.slow
def test_changed_settings_after_config_json_is_deleted_are_refused(finished, fast_cifar, capsys):
    out, ref = finished
    (out / RUN / "done.json").unlink()     # as a kill before done.json...
    (out / RUN / "config.json").unlink()   # ...and config.json deleted
    capsys.readouterr()
    assert cli.main(_args(out, fast_cifar) + ["--set", "lr=0.1"]) == 1
    err = capsys.readouterr()
    text = err.out + err.err
    assert "refused" in text and "lr: 0.025 -> 0.1" in text
    assert not (out / RUN / "done.json").exists()
    assert read_jsonl(out / RUN / "epochs.jsonl") == ref       # nothing changed


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated last line", "no epochs.jsonl", "unreadable done.json"])
def test_a_damaged_finished_retraining_is_reported_then_repaired(finished, fast_cifar, capsys, damage):
    out, ref = finished
    run = out / RUN
    if damage == "truncated last line":
        text = (run / "epochs.jsonl").read_text()
        (run / "epochs.jsonl").write_text(text[:-15])
    elif damage == "no epochs.jsonl":
        (run / "epochs.jsonl").unlink()
    else:
        (run / "done.json").write_text('{"test_error": ')
    capsys.readouterr()
    assert cli.main(_args(out, fast_cifar)) == 1
    err = capsys.readouterr()
    assert "damaged" in err.out + err.err and "--retry-failed" in err.out + err.err
    assert cli.main(_args(out, fast_cifar) + ["--retry-failed"]) == 0
    assert [strip_timing(r) for r in read_jsonl(run / "epochs.jsonl")] == [strip_timing(r) for r in ref]
    assert json.loads((run / "done.json").read_text())["epochs"] == 3
    assert cli.main(_args(out, fast_cifar)) == 0                 # whole again: done


@pytest.mark.slow
def test_a_truncated_checkpoint_restarts_the_retraining(finished, fast_cifar):
    out, ref = finished
    run = out / RUN
    (run / "done.json").unlink()
    ck = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(ck[: len(ck) // 3])
    assert cli.main(_args(out, fast_cifar)) == 0
    assert [strip_timing(r) for r in read_jsonl(run / "epochs.jsonl")] == [strip_timing(r) for r in ref]


@pytest.mark.parametrize("value", ["lr=inf", "lr=nan", "weight_decay=inf", "auxiliary_weight=-inf"])
def test_non_finite_values_exit_2(tmp_path, fast_cifar, capsys, value):
    assert cli.main(_args(tmp_path / "o", fast_cifar) + ["--set", value]) == 2
    assert value.split("=")[0] in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_pool_workers_stop_when_the_retraining_parent_is_killed(tmp_path, fast_cifar):
    from tests.e2e import assert_workers_end, children
    out = tmp_path / "pool"
    cmd = [sys.executable, "-m", "benchmark.retrain", "--genotype", "DARTS_V1", "--seeds", "0-1", "--jobs", "2",
           "--data", str(fast_cifar), "--out", str(out), *TINY, "--epochs", "200", "--set", "C=2",
           "--set", "layers=3"]
    parent = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: set[int] = set()
    runs = [out / "retrain" / "darts" / "DARTS_V1" / f"seed-{s}" for s in (0, 1)]
    try:
        deadline = time.monotonic() + 300
        while not all(len(read_jsonl(r / "epochs.jsonl")) >= 1 if (r / "epochs.jsonl").exists() else False
                      for r in runs):
            assert parent.poll() is None and time.monotonic() < deadline, "the retrainings did not start"
            time.sleep(0.2)
        workers = children(parent.pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert_workers_end(workers)
        import torch
        for r in runs:
            assert not (r / "done.json").exists() and not (r / "failed.json").exists()
            epochs = [x["epoch"] for x in read_jsonl(r / "epochs.jsonl")]
            assert epochs[-1] < 200
            assert torch.load(r / "checkpoint.pt", weights_only=False)["epoch"] == epochs[-1]
    finally:
        for pid in [parent.pid, *workers]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("concat", ["range(2, 6, 0)", "range(2.0, 6)", "range('a','b')",
                                    "range(0, 100000000000)", "[2, 3, 4, " + "-" * 100000 + "5]",
                                    "[2, 3, 4, " + "-" * 5000 + "5]"])
def test_absurd_genotype_concats_exit_2(tmp_path, capsys, concat):
    from spaces.darts import DARTS_V2
    text = DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", f"normal_concat={concat}")
    assert text != DARTS_V2
    assert cli.main(["--genotype", text, "--out", str(tmp_path / "o"), "--data", "x.npz"]) == 2
    assert "--genotype" in capsys.readouterr().err and not (tmp_path / "o").exists()


def _search_run(root: Path, seed: int, done) -> Path:
    from spaces.darts import DARTS_V1
    run = root / "darts" / "darts" / f"seed-{seed}"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"space": "darts", "method": "darts", "seed": seed,
                                                 "epochs": 0, "profile": "smoke"}))
    (run / "epochs.jsonl").write_text(json.dumps({"epoch": 0, "genotype": DARTS_V1}) + "\n")
    (run / "done.json").write_text(json.dumps(done if done is not None else {"genotype": DARTS_V1, "epochs": 0}))
    return run


def test_a_bad_search_run_is_named_and_the_others_are_retrained(tmp_path, capsys, cifar):
    good = _search_run(tmp_path, 0, None)
    listed = _search_run(tmp_path, 1, ["not", "an", "object"])      # done.json a JSON list
    torn = _search_run(tmp_path, 2, None)
    (torn / "epochs.jsonl").unlink()                                 # a damaged search run
    rc = cli.main(["--results", str(tmp_path), "--profile", "smoke", "--data", str(cifar), "--dry-run"])
    out = capsys.readouterr()
    assert rc == 1, out.err
    assert str(listed) in out.err and "not a JSON object" in out.err
    assert str(torn) in out.err and "damaged" in out.err and "--run" not in out.err
    assert [line.split(" ", 1)[0] for line in out.out.splitlines()] == [str(good / "retrain" / "seed-0")]
    assert cli.main(["--run", str(listed), "--profile", "smoke", "--data", str(cifar), "--dry-run"]) == 2
    assert "not a JSON object" in capsys.readouterr().err


def test_out_that_is_a_file_or_unwritable_exits_2(tmp_path, capsys, cifar):
    f = tmp_path / "afile"
    f.write_text("x")
    for out, says in ((f, "is a file"), (f / "below", "no folder can be made below it")):
        assert cli.main(["--genotype", "DARTS_V2", "--out", str(out), "--profile", "smoke",
                         "--data", str(cifar)]) == 2
        err = capsys.readouterr().err
        assert "--out" in err and says in err and "Traceback" not in err
    assert f.read_text() == "x"


@pytest.mark.parametrize("value", ["supernet.steps=3", "supernet.multiplier=2"])
def test_darts_search_steps_other_than_4_exit_2_at_planning(tmp_path, capsys, cifar, value):
    from benchmark.harness import run_cli
    out = tmp_path / "results"
    rc = run_cli.main(["--spaces", "darts", "--methods", "darts", "--seeds", "0", "--profile", "smoke",
                       "--data", str(cifar), "--out", str(out), "--set", value, "--dry-run"])
    assert rc == 2 and value.split("=")[0] in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_ctrl_c_says_how_to_resume_without_a_traceback(tmp_path, fast_cifar):
    out = tmp_path / "c"
    cmd = [sys.executable, "-m", "benchmark.retrain", "--genotype", "DARTS_V2", "--data", str(fast_cifar),
           "--out", str(out), *TINY, "--epochs", "200", "--set", "C=2", "--set", "layers=3"]
    rc, err = sigint_once(cmd, REPO, out / RUN / "checkpoint.pt", "retraining")
    assert rc == 130, err
    assert "Traceback" not in err and "resumes from its last checkpoint" in err


@pytest.mark.slow
def test_a_locked_retraining_says_whom_it_waits_for(tmp_path, fast_cifar, capsys, keep_threads):  # noqa: F811
    folder = tmp_path / "w" / RUN
    folder.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; sys.path.insert(0, sys.argv[1]);"
         "from benchmark.retrain.job import RetrainDir; rd = RetrainDir(sys.argv[2]);"
         "lock = rd.try_lock(0, 'a test holding it'); print('held', flush=True); time.sleep(4); rd.unlock(lock)",
         str(REPO), str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert cli.main(_args(tmp_path / "w", fast_cifar)) == 0
    finally:
        holder.kill()
    err = capsys.readouterr().err
    assert "waiting for" in err and "a test holding it" in err
    assert (folder / "done.json").exists()
