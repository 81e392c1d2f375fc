"""Shared helper: run one method end to end through the real worker on tiny data."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import benchmarks_path, cifar_path

DATA, BENCH = cifar_path(), benchmarks_path()


def run_tiny(method: str, tmp_path: Path, sets: list[str] | None = None, epochs: int = 1) -> list[dict]:
    """Smoke profile, `epochs` epoch(s), 32 images per half (one step of the smoke batch); returns the epoch records."""
    if not DATA.is_file():
        pytest.skip(f"CIFAR-10 not found at {DATA}; set NAS_DATA")
    from benchmark.harness.config import resolve_config
    from benchmark.harness.data import find_split_file, make_split
    from benchmark.harness.grid import RunSpec
    from benchmark.harness.worker import Job, cached_data, execute
    split = find_split_file(BENCH)
    if split is None:
        pytest.skip(f"no cifar-split.txt under {BENCH}; set NAS_BENCHMARKS")
    cfg = resolve_config("nb201", method, 0, "smoke", epochs, ["train_subset=32", *(sets or [])])
    data = cached_data(str(DATA))
    _, _, source = make_split(cfg.split, len(data.y_train), cfg.seed, split)
    import dataclasses
    cfg = dataclasses.replace(cfg, data_md5=data.md5, split_source=source)
    job = Job(RunSpec("nb201", method, 0), cfg, str(tmp_path), str(DATA), str(BENCH), str(split),
              progress=False)
    outcome = execute(job)
    run = tmp_path / "nb201" / method / "seed-0"
    assert outcome.status == "finished", (outcome, (run / "failed.json").read_text()
                                          if (run / "failed.json").exists() else "")
    return [json.loads(line) for line in (run / "epochs.jsonl").read_text().splitlines()]


RECORD_KEYS = {"epoch", "space", "method", "seed", "genotype", "genotype_info", "param_free_ops",
               "arch", "train_loss", "train_acc", "valid_loss", "valid_acc", "w_lr", "a_lr",
               "diagnostics", "benchmark", "timing"}


def check_layout(records: list[dict], epochs: int = 1) -> None:
    assert [r["epoch"] for r in records] == list(range(epochs + 1))
    for r in records:
        extra = set(r) - RECORD_KEYS  # a method with its own pick adds both fields, never one
        assert RECORD_KEYS <= set(r) and extra in (set(), {"selected_genotype", "selected_benchmark"})
    from spaces.nb201 import parse_arch
    for r in records:
        parse_arch(r["genotype"])
    assert records[-1]["train_loss"] is not None
