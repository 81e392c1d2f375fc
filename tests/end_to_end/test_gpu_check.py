"""`python -m benchmark.measure.gpu_check`: its CPU path end to end at --quick size, the JSON
schema, part selection, bad input (exit 2) and how skipped parts are reported (exit 3).
On a CUDA machine the skip-path tests skip themselves (the parts would run there)."""
from __future__ import annotations

import json

import pytest
import torch

from benchmark.measure import gpu_check as gc

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA path")
ROW_KEYS = {"part", "check", "status", "value", "unit", "goal", "device", "note", "extra"}


def _run(tmp_path, *argv: str) -> tuple[int, dict]:
    out = tmp_path / "check.json"
    code = gc.main([*argv, "--json", str(out)])
    return code, json.loads(out.read_text())


def _check_schema(report: dict, parts: list[str], code: int) -> None:
    assert report["schema"] == 1 and report["exit_code"] == code
    assert list(report["parts"]) == parts  # exactly the parts asked for, in order
    for p in report["parts"].values():
        assert set(p) == {"seconds", "exit_code"}
    assert {"device", "gpu", "torch", "cuda", "threads", "quick", "command", "rows", "time"} <= set(report)
    assert report["rows"] and {r["part"] for r in report["rows"]} == set(parts)
    for r in report["rows"]:
        assert set(r) == ROW_KEYS and r["status"] in gc.STATUSES
        assert r["status"] != "skipped" or r["note"], r  # a skip always says why


@pytest.mark.parametrize("argv, option", [
    (["--part", "speed,bogus"], "--part"),
    (["--part", ","], "--part"),
    (["--device", "gpu0"], "--device"),
    (["--threads", "0"], "--threads"),
    (["--budget-minutes", "0"], "--budget-minutes"),
    (["--part", "correctness", "--data", "/nonexistent/cifar.npz"], "--data"),
    (["--benchmarks", "/nonexistent-folder"], "--benchmarks"),
])
def test_bad_input_exits_2_naming_the_option(argv, option, tmp_path, capsys):
    assert gc.main([*argv, "--json", str(tmp_path / "x.json")]) == 2
    assert option in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()  # nothing was run or written


@NO_CUDA
def test_cuda_device_without_cuda_is_bad_input(capsys):
    assert gc.main(["--device", "cuda:0"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


@NO_CUDA
def test_gpu_parts_are_skipped_with_the_reason(tmp_path):
    code, report = _run(tmp_path, "--part", "paper-search", "--part", "packing")
    assert code == gc.EXIT_SKIPPED
    _check_schema(report, ["paper-search", "packing"], code)
    assert [r["status"] for r in report["rows"]] == ["skipped", "skipped"]
    assert all("no CUDA device" in r["note"] for r in report["rows"])


@pytest.mark.slow
@NO_CUDA
def test_speed_quick_on_cpu(tmp_path):
    code, report = _run(tmp_path, "--part", "speed", "--quick", "--threads", "1", "--no-cpu-memory")
    _check_schema(report, ["speed"], code)
    rows = {r["check"]: r for r in report["rows"]}
    assert code == gc.EXIT_SKIPPED  # bf16 and compile are CUDA-only: reported as skipped
    assert rows["fast-bf16"]["status"] == rows["fast-compile"]["status"] == "skipped"
    for v in ("reference", "fast"):
        r = rows[f"step {v}"]
        assert r["status"] == "measured" and r["unit"] == "images/s" and r["value"] > 0
        assert r["extra"]["images_per_s"] == pytest.approx(2 * gc.QUICK.batch / r["extra"]["step_s"])
    if "step authors" in rows:  # xautodl importable: the ratio is reported, its goal only on a GPU
        ratio = rows["fast vs authors' model"]
        assert ratio["status"] == "measured" and ratio["value"] > 0 and "GPU" in ratio["goal"]
    else:
        assert "xautodl" in rows["authors' model (TinyNetworkDarts)"]["note"]


@pytest.mark.slow
def test_quick_correctness_runs_the_device_tests(tmp_path, cifar):
    code, report = _run(tmp_path, "--part", "correctness", "--quick")
    _check_schema(report, ["correctness"], code)
    summary = report["rows"][0]
    cases = {c["name"].split("::")[-1]: c for c in summary["extra"]["cases"]}
    here = "cuda" if torch.cuda.is_available() else "cpu"
    for impl in ("fast", "reference"):
        assert cases[f"test_supernet_forward_backward_matches_host[{here}-{impl}]"]["outcome"] == "passed"
    assert summary["status"] == "pass" and "0 failed" in summary["value"]
    if here == "cpu":
        assert code == gc.EXIT_SKIPPED
        assert any(r["check"] == "cuda cases" and r["status"] == "skipped" for r in report["rows"])


@pytest.mark.slow
def test_paper_search_resumes_across_calls(tmp_path, cifar, benchmarks):
    """--device cpu --quick: a 2-epoch smoke search through run.py. A budget too short to
    finish stops it (exit 3, 'run the same command again'); the next call finishes it."""
    args = ["--part", "paper-search", "--quick", "--device", "cpu", "--threads", "1",
            "--out", str(tmp_path / "runs"), "--data", str(cifar), "--benchmarks", str(benchmarks)]
    code, report = _run(tmp_path, *args, "--budget-minutes", "0.01")
    row = report["rows"][0]
    assert code == gc.EXIT_SKIPPED and row["status"] == "skipped" and "again" in row["note"]
    code, report = _run(tmp_path, *args)
    _check_schema(report, ["paper-search"], code)
    rows = {r["check"]: r for r in report["rows"]}
    assert rows["wall time (search epochs)"]["value"] > 0
    from spaces.nb201 import parse_arch
    parse_arch(rows["final cell"]["value"])
    done = json.loads((tmp_path / "runs" / "paper-search" / "nb201" / "darts" / "seed-0" / "done.json").read_text())
    assert done["genotype"] == rows["final cell"]["value"]
    acc = rows["NB201 CIFAR-10 test accuracy"]
    assert acc["status"] in ("measured", "skipped")  # skipped only where no NB201 table is found
    assert code == (gc.EXIT_OK if acc["status"] == "measured" else gc.EXIT_SKIPPED)


def test_exit_code_precedence():
    row = lambda s: gc.Row("speed", "x", s)  # noqa: E731
    assert gc.exit_code([row("pass"), row("measured")]) == gc.EXIT_OK
    assert gc.exit_code([row("pass"), row("skipped")]) == gc.EXIT_SKIPPED
    for bad in ("fail", "missed", "error"):
        assert gc.exit_code([row("skipped"), row(bad)]) == gc.EXIT_FAIL
