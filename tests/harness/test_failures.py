"""A diverging, out-of-memory or crashing run is recorded as failed; the others go on; the
command ends with a summary and exit 1; only --retry-failed runs a failed run again."""
from __future__ import annotations

import pytest
import torch

from benchmark.harness import run_cli
from benchmark.harness.loop import DivergenceError
from benchmark.harness.records import read_json, read_jsonl
from benchmark.harness.run_cli import build_parser, plan, summarize
from benchmark.harness.worker import execute
from methods import registry
from methods.darts import Darts

TINY = ["--profile", "smoke", "--set", "train_subset=64", "--threads", "1", "--no-progress"]


class NanAtEpoch2(Darts):
    """Test-only method: its validation loss turns NaN in epoch 2 while `broken` is set."""
    name = "nan-test"
    broken = True

    def arch_step(self, train_batch, valid_batch, ctx):
        row = super().arch_step(train_batch, valid_batch, ctx)
        if self.broken and ctx.epoch == 2:
            row["valid_loss"] = float("nan")
        return row


def _argv(tmp_path, cifar, benchmarks, *args):
    return [*args, *TINY, "--out", str(tmp_path / "results"), "--data", str(cifar),
            "--benchmarks", str(benchmarks)]


@pytest.mark.slow
def test_nan_loss_fails_one_run_others_go_on_retry_only_when_asked(tmp_path, cifar, benchmarks,
                                                                   monkeypatch, capsys):
    monkeypatch.setitem(registry._METHODS, "nan-test", f"{__name__}:NanAtEpoch2")
    argv = _argv(tmp_path, cifar, benchmarks, "--methods", "nan-test,darts", "--epochs", "2")
    assert run_cli.main(argv) == 1
    out, err = capsys.readouterr()
    assert "summary: 1 failed, 1 finished" in out and "nan-test/seed-0: failed: DivergenceError" in err
    bad = tmp_path / "results" / "nb201" / "nan-test" / "seed-0"
    good = tmp_path / "results" / "nb201" / "darts" / "seed-0"
    failed = read_json(bad / "failed.json")
    assert failed["reason"].startswith("DivergenceError: valid_loss is nan at epoch 2")
    assert "Traceback" in failed["traceback"] and "DivergenceError" in failed["traceback"]
    assert not (bad / "done.json").exists() and (good / "done.json").exists()
    assert [r["epoch"] for r in read_jsonl(bad / "epochs.jsonl")] == [0, 1]  # kept, not lost

    # A plain rerun leaves the failed run alone (and says how to retry it).
    before = (bad / "failed.json").read_bytes(), (bad / "epochs.jsonl").read_bytes()
    assert run_cli.main(argv) == 1
    out, err = capsys.readouterr()
    assert "summary: 1 done, 1 failed-earlier" in out and "--retry-failed" in err
    assert ((bad / "failed.json").read_bytes(), (bad / "epochs.jsonl").read_bytes()) == before

    # --retry-failed resumes it from its last checkpoint; success clears failed.json.
    monkeypatch.setattr(NanAtEpoch2, "broken", False)
    assert run_cli.main([*argv, "--retry-failed"]) == 0
    out, _ = capsys.readouterr()
    assert "summary: 1 done, 1 finished" in out
    assert (bad / "done.json").exists() and not (bad / "failed.json").exists()
    assert [r["epoch"] for r in read_jsonl(bad / "epochs.jsonl")] == [0, 1, 2]
    assert len(read_json(bad / "provenance.json")) == 2


def test_huge_learning_rate_diverges_into_a_failed_run(tmp_path, cifar, benchmarks):
    a = build_parser().parse_args(_argv(tmp_path, cifar, benchmarks, "--methods", "darts",
                                        "--epochs", "1", "--set", "w_lr=1e30"))
    (job,) = plan(a)
    o = execute(job)
    assert o.status == "failed" and o.message.startswith(DivergenceError.__name__)
    assert "train_loss" in o.message or "valid_loss" in o.message


@pytest.mark.slow
@pytest.mark.parametrize("error,needle", [
    (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"), "batch_size"),
    (RuntimeError("boom"), "RuntimeError: boom"),
])
def test_error_in_one_run_is_recorded_and_the_grid_goes_on(tmp_path, cifar, benchmarks, monkeypatch,
                                                           capsys, error, needle):
    a = build_parser().parse_args(_argv(tmp_path, cifar, benchmarks, "--methods", "darts",
                                        "--seeds", "0-1", "--epochs", "1"))
    jobs = plan(a)
    step = Darts.weight_step

    def failing(self, batch, ctx):
        if self.cfg.seed == 0:
            raise error
        return step(self, batch, ctx)

    monkeypatch.setattr(Darts, "weight_step", failing)
    outcomes = [execute(j) for j in jobs]
    assert [o.status for o in outcomes] == ["failed", "finished"]
    assert summarize(outcomes) == 1
    assert "summary: 1 failed, 1 finished" in capsys.readouterr().out
    failed = read_json(tmp_path / "results" / "nb201" / "darts" / "seed-0" / "failed.json")
    assert needle in failed["reason"] and type(error).__name__ in failed["traceback"]
    assert (tmp_path / "results" / "nb201" / "darts" / "seed-1" / "done.json").exists()
