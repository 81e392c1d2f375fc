"""Shared helper: run one method end to end through the real worker on tiny data."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import benchmarks_path, cifar_path

DATA, BENCH = cifar_path(), benchmarks_path()


def run_tiny(method: str, tmp_path: Path, sets: list[str] | None = None, epochs: int = 1,
             device: str = "cpu", log: str = "none", space: str = "nb201") -> list[dict]:
    """Smoke profile, `epochs` epoch(s), 32 images per half (one step of the smoke batch), on
    `device` ('cuda' means cuda:0), with live logging `log`, in `space`; returns the epoch records."""
    if not DATA.is_file():
        pytest.skip(f"CIFAR-10 not found at {DATA}; set NAS_DATA")
    from benchmark.harness.config import resolve_config
    from benchmark.harness.data import find_split_file, make_split
    from benchmark.harness.grid import RunSpec
    from benchmark.harness.worker import Job, cached_data, execute
    split = find_split_file(BENCH)
    cfg = resolve_config(space, method, 0, "smoke", epochs, ["train_subset=32", *(sets or [])])
    if split is None and cfg.split == "official":
        pytest.skip(f"no cifar-split.txt under {BENCH}; set NAS_BENCHMARKS")
    data = cached_data(str(DATA))
    _, _, source = make_split(cfg.split, len(data.y_train), cfg.seed, split)
    import dataclasses
    cfg = dataclasses.replace(cfg, data_md5=data.md5, split_source=source)
    job = Job(RunSpec(space, method, 0), cfg, str(tmp_path), str(DATA), str(BENCH),
              str(split) if split else None, device="cuda:0" if device == "cuda" else device,
              progress=False, log=log)
    outcome = execute(job)
    run = tmp_path / space / method / "seed-0"
    assert outcome.status == "finished", (outcome, (run / "failed.json").read_text()
                                          if (run / "failed.json").exists() else "")
    return [json.loads(line) for line in (run / "epochs.jsonl").read_text().splitlines()]


RECORD_KEYS = {"epoch", "space", "method", "seed", "genotype", "genotype_info", "param_free_ops",
               "arch", "train_loss", "train_acc", "valid_loss", "valid_acc", "w_lr", "a_lr",
               "diagnostics", "benchmark", "timing"}


def check_layout(records: list[dict], epochs: int = 1, space: str = "nb201") -> None:
    assert [r["epoch"] for r in records] == list(range(epochs + 1))
    for r in records:
        extra = set(r) - RECORD_KEYS  # a method with its own pick adds both fields, never one
        assert RECORD_KEYS <= set(r) and extra in (set(), {"selected_genotype", "selected_benchmark"})
    from spaces import get_space
    sp = get_space(space)
    for r in records:
        sp.genotype_info(r["genotype"])  # parses and validates the genotype
    assert records[-1]["train_loss"] is not None


def interrupt_at_epoch(monkeypatch, epoch: int):
    """Make the loop raise KeyboardInterrupt after `epoch`'s training, before its record and
    checkpoint (a kill there); returns a function that undoes it."""
    from benchmark.harness import loop
    record = loop._record

    def interrupted(rd, cfg, method, space, ep, *rest, **kw):
        if ep == epoch:
            raise KeyboardInterrupt
        return record(rd, cfg, method, space, ep, *rest, **kw)
    monkeypatch.setattr(loop, "_record", interrupted)
    return lambda: monkeypatch.setattr(loop, "_record", record)


def sigint_once(cmd: list[str], cwd: Path, ready: Path, what: str) -> tuple[int, str]:
    """Start `cmd`, send it SIGINT (Ctrl-C) once `ready` exists (its first checkpoint), and
    return (exit code, stderr)."""
    import os
    import signal
    import subprocess
    import time
    # SIG_DFL in the child: a test suite started in the background by a non-interactive shell
    # inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler at all
    p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONPATH": str(cwd)},
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 300
        while not ready.exists():
            assert p.poll() is None and time.monotonic() < deadline, f"the {what} did not start"
            time.sleep(0.1)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    return p.returncode, err


def assert_workers_end(workers: set[int], timeout: float = 120) -> None:
    """The pool workers (pids) end within `timeout` seconds after their parent was killed."""
    import time
    deadline = time.monotonic() + timeout
    while any(alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(w) for w in workers), "workers outlived their parent"


def children(pid: int) -> set[int]:
    """Pids whose parent is `pid` (Linux /proc)."""
    kids = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                kids.add(int(d.name))
    return kids


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (Linux /proc)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"

