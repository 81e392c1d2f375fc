"""Live curves (`--log`): the scalars mirrored from a record, TensorBoard event files read
back, wandb offline where installed; the option is validated and not part of a run's identity."""
from __future__ import annotations

import importlib.util
import json

import pytest

from benchmark.harness.live_log import LiveLog, scalars, unavailable
from tests.e2e import run_tiny

REC = {"epoch": 3, "train_loss": 1.25, "train_acc": 0.5, "valid_loss": float("nan"), "valid_acc": 0.25,
       "w_lr": 0.01, "a_lr": 3e-4, "param_free_ops": 4, "genotype": "|x~0|",
       "benchmark": {"hp": "200", "cifar10_test": 91.5, "cifar100_valid": None},
       "selected_benchmark": {"cifar10_test": 93.0},
       "diagnostics": {"hessian_max_eig": 0.75, "selected_genotype": "|y~0|", "flag": True},
       "timing": {"epoch_seconds": 2.0}}


def test_scalars_are_the_records_numbers_only():
    assert scalars(REC) == {
        "search/train_loss": 1.25, "search/train_acc": 0.5, "search/valid_acc": 0.25,
        "search/w_lr": 0.01, "search/a_lr": 3e-4, "cell/param_free_ops": 4.0,
        "benchmark/cifar10_test": 91.5, "answer/cifar10_test": 93.0,
        "diagnostics/hessian_max_eig": 0.75, "timing/epoch_seconds": 2.0}  # no NaN, str, bool, None


def test_unknown_or_missing_logger_is_refused():
    assert unavailable("none") is None
    assert "valid: none, tensorboard, wandb" in unavailable("tensorbored")
    if importlib.util.find_spec("wandb") is None:
        assert "pip install wandb" in unavailable("wandb")


def test_cli_refuses_a_bad_log_value_with_exit_2(tmp_path, capsys):
    from benchmark.harness.run_cli import main
    out = tmp_path / "results"
    assert main(["--methods", "darts", "--log", "stdout", "--out", str(out)]) == 2
    assert "--log 'stdout': valid: none, tensorboard, wandb" in capsys.readouterr().err
    assert not out.exists()  # nothing was created


def _tb_scalars(folder) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_events_hold_each_epochs_scalars(tmp_path):
    pytest.importorskip("tensorboard", reason="optional: pip install tensorboard to test --log tensorboard")
    with LiveLog("tensorboard", tmp_path, "nb201/darts/seed-0", {"epochs": 2}) as live:
        for e in range(3):
            live.log({**REC, "epoch": e, "train_loss": 2.0 - e / 2})
    got = _tb_scalars(tmp_path / "tensorboard")
    assert got["search/train_loss"] == [(0, 2.0), (1, 1.5), (2, 1.0)]
    assert got["diagnostics/hessian_max_eig"] == [(0, 0.75), (1, 0.75), (2, 0.75)]
    assert "search/valid_loss" not in got  # NaN is not a point


def test_a_broken_logger_never_sinks_the_run(tmp_path, capsys):
    live = LiveLog("none", tmp_path, "x", {})
    class Broken:
        def log(self, *a):
            raise OSError("disk full")
    live.kind, live.backend = "tensorboard", Broken()
    live.log(REC)            # no exception
    assert live.backend is None and "switched off" in capsys.readouterr().err


def test_run_with_tensorboard_logs_live_and_keeps_identity(tmp_path):
    pytest.importorskip("tensorboard", reason="optional: pip install tensorboard to test --log tensorboard")
    records = run_tiny("darts", tmp_path, log="tensorboard")
    run = tmp_path / "nb201" / "darts" / "seed-0"
    got = _tb_scalars(run / "tensorboard")
    assert [s for s, _ in got["search/train_loss"]] == [1]          # epoch 0 has no training
    assert got["search/train_loss"][0][1] == pytest.approx(records[1]["train_loss"], rel=1e-6)
    assert [s for s, _ in got["cell/param_free_ops"]] == [0, 1]
    assert got["benchmark/cifar10_test"][-1][1] == pytest.approx(records[-1]["benchmark"]["cifar10_test"])
    assert "log" not in json.loads((run / "config.json").read_text())  # not the run's identity


def test_wandb_offline_where_installed(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="optional: pip install wandb to test --log wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    with LiveLog("wandb", tmp_path, "nb201/darts/seed-0", {"epochs": 1}) as live:
        assert live.backend is not None
        live.log(REC)
    assert any((tmp_path / "wandb").glob("offline-run-*"))


def test_wandb_calls_offline_mode_with_the_records_scalars(tmp_path, monkeypatch):
    """The wandb wiring against a stand-in module (the real one is optional; see above)."""
    import sys
    import types
    calls = []

    class Run:
        def log(self, values):
            calls.append(("log", values))

        def finish(self):
            calls.append(("finish",))
    fake = types.ModuleType("wandb")
    fake.init = lambda **kw: calls.append(("init", kw)) or Run()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    with LiveLog("wandb", tmp_path, "nb201/darts/seed-0", {"epochs": 1}) as live:
        live.log(REC)
    (_, kw), (_, logged), (end,) = calls
    assert kw["mode"] == "offline" and kw["dir"] == str(tmp_path) and kw["id"] == "nb201-darts-seed-0"
    assert kw["resume"] == "allow" and kw["config"] == {"epochs": 1}
    assert logged == {**scalars(REC), "epoch": 3} and end == "finish"
