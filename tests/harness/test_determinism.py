"""Same seed, same records (CPU, threads fixed); and every registered method resumes exactly.

The resume contract is checked for every method in the registry and one space of each kind,
so a new method whose state_dict misses something (an optimiser, a noise generator, a
temperature) fails here: the run is interrupted after its epoch-1 checkpoint and resumed.
Tests taking `device` also run on CUDA where present (conftest), there with --deterministic.
"""
from __future__ import annotations

import pytest
import torch

import benchmark.harness.loop as loop
from benchmark.harness.records import read_json, read_jsonl, strip_timing
from benchmark.harness.run_cli import build_parser, plan
from benchmark.harness.worker import execute
from methods.registry import available as methods

pytestmark = pytest.mark.slow  # every test here runs searches or subprocesses

TINY = ["--profile", "smoke", "--set", "train_subset=64", "--threads", "1", "--no-progress"]


def _job(tmp_path, name: str, cifar, benchmarks, *args: str):
    a = build_parser().parse_args([*args, *TINY, "--out", str(tmp_path / name), "--data", str(cifar),
                                   "--benchmarks", str(benchmarks)])
    (job,) = plan(a)
    return job


@pytest.fixture
def restore_determinism():
    """--deterministic switches process-wide torch flags (make_deterministic): undo them."""
    old = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
           torch.backends.cudnn.benchmark)
    yield
    torch.use_deterministic_algorithms(old[0])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = old[1], old[2]


def _on(device: str) -> tuple[str, ...]:
    """run.py options for a device test: CUDA runs are compared with --deterministic."""
    return ("--devices", "cuda:0", "--deterministic") if device == "cuda" else ("--devices", "cpu")


def _run_dir(job):
    return f"{job.out}/{job.spec.space}/{job.spec.method}/seed-{job.spec.seed}"


def _same_state(a: str, b: str) -> None:
    sa = torch.load(f"{a}/checkpoint.pt", weights_only=False)
    sb = torch.load(f"{b}/checkpoint.pt", weights_only=False)
    for part in ("method", "supernet"):
        ta, tb = torch.utils._pytree.tree_flatten(sa[part])[0], torch.utils._pytree.tree_flatten(sb[part])[0]
        assert len(ta) == len(tb)
        assert all(torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y for x, y in zip(ta, tb)), part


def test_same_seed_same_records_and_deterministic_flag_is_recorded(tmp_path, cifar, benchmarks, monkeypatch,
                                                                  device, restore_determinism):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # undone after the test
    args = ("--methods", "darts", "--seeds", "3", "--epochs", "2")
    a = _job(tmp_path, "a", cifar, benchmarks, *args, *_on(device))  # on CUDA: deterministic too
    b = _job(tmp_path, "b", cifar, benchmarks, *args, *_on(device), "--deterministic")
    assert a.config == b.config  # --deterministic is provenance, not identity
    try:
        assert execute(a).status == "finished"
        assert execute(b).status == "finished"
    finally:
        torch.use_deterministic_algorithms(False)
    ra, rb = read_jsonl(f"{_run_dir(a)}/epochs.jsonl"), read_jsonl(f"{_run_dir(b)}/epochs.jsonl")
    assert [strip_timing(r) for r in ra] == [strip_timing(r) for r in rb]
    assert ra[1]["arch"] != ra[2]["arch"]  # the search moved: equality is not vacuous
    _same_state(_run_dir(a), _run_dir(b))
    pa, pb = read_json(f"{_run_dir(a)}/provenance.json"), read_json(f"{_run_dir(b)}/provenance.json")
    assert pa[0]["deterministic"] is (device == "cuda") and pb[0]["deterministic"] is True
    assert pa[0]["device"] == pb[0]["device"] == ("cuda:0" if device == "cuda" else "cpu")
    assert pb[0]["cublas_workspace_config"] == ":4096:8" and pb[0]["torch_threads"] == 1


def test_another_seed_gives_other_records(tmp_path, cifar, benchmarks):
    a = _job(tmp_path, "a", cifar, benchmarks, "--methods", "darts", "--seeds", "0", "--epochs", "1")
    b = _job(tmp_path, "b", cifar, benchmarks, "--methods", "darts", "--seeds", "1", "--epochs", "1")
    assert execute(a).status == execute(b).status == "finished"
    ra, rb = read_jsonl(f"{_run_dir(a)}/epochs.jsonl"), read_jsonl(f"{_run_dir(b)}/epochs.jsonl")
    assert ra[1]["arch"] != rb[1]["arch"]


@pytest.mark.parametrize("space", ["nb201", "nb1shot1-s2"])
@pytest.mark.parametrize("method", methods())
def test_every_method_resumes_exactly(tmp_path, cifar, benchmarks, monkeypatch, method, space, device,
                                      restore_determinism):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    args = ("--methods", method, "--spaces", space, "--seeds", "2", "--epochs", "2", *_on(device))
    ref = _job(tmp_path, "ref", cifar, benchmarks, *args)
    assert execute(ref).status == "finished"

    cut = _job(tmp_path, "cut", cifar, benchmarks, *args)
    record = loop._record

    def interrupted(rd, cfg, method, space, epoch, *rest, **kw):
        if epoch == 2:  # after epoch 2's training, before its record and checkpoint
            raise KeyboardInterrupt
        return record(rd, cfg, method, space, epoch, *rest, **kw)

    monkeypatch.setattr(loop, "_record", interrupted)
    with pytest.raises(KeyboardInterrupt):
        execute(cut)
    monkeypatch.setattr(loop, "_record", record)
    assert [r["epoch"] for r in read_jsonl(f"{_run_dir(cut)}/epochs.jsonl")] == [0, 1]
    assert execute(cut).status == "finished"  # resumes from the epoch-1 checkpoint

    ra, rb = read_jsonl(f"{_run_dir(ref)}/epochs.jsonl"), read_jsonl(f"{_run_dir(cut)}/epochs.jsonl")
    assert [strip_timing(r) for r in ra] == [strip_timing(r) for r in rb]
    assert len(read_json(f"{_run_dir(cut)}/provenance.json")) == 2
    _same_state(_run_dir(ref), _run_dir(cut))
