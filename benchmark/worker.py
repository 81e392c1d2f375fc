"""Execute one run of the grid: lock, skip or resume, search, and record a failure as data.

`execute(job)` is what every backend calls (sequential, local pool, cluster); a Job is plain
picklable data, so the same function runs in this process or on another machine.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import platform
import socket
import subprocess
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from benchmark.config import SearchConfig
from benchmark.data import Cifar10, load_cifar10, make_split
from benchmark.grid import RunSpec
from benchmark.records import atomic_write_json
from benchmark.rundir import IdentityMismatch, RunDir


@dataclass(frozen=True)
class Job:
    spec: RunSpec
    config: SearchConfig
    out: str
    data_path: str
    benchmarks: str | None = None
    split_file: str | None = None
    device: str = "cpu"
    threads: int | None = None
    progress: bool = True
    retry_failed: bool = False
    download: bool = False


@dataclass(frozen=True)
class Outcome:
    label: str
    status: str    # done (earlier) | finished | failed | failed-earlier | busy | refused
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("done", "finished", "busy")


@functools.lru_cache(maxsize=2)
def cached_data(path: str, download: bool = False) -> Cifar10:
    """Load CIFAR-10 once per process, however many runs it serves."""
    return load_cifar10(path, download)


def _git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parents[1]
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(job: Job) -> dict:
    import numpy
    import torch
    return {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": socket.gethostname(),
            "python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "cuda": torch.version.cuda, "git_commit": _git_commit(),
            "device": job.device, "torch_threads": torch.get_num_threads(),
            "data_path": job.data_path, "benchmarks": job.benchmarks, "pid": os.getpid()}


def execute(job: Job) -> Outcome:
    import torch
    from benchmark.loop import run_search
    from benchmark.score import load_scorer
    from spaces import get_space

    spec, cfg = job.spec, job.config
    rd = RunDir(job.out, spec.space, spec.method, spec.seed)
    lock = rd.try_lock()
    if lock is None:
        return Outcome(spec.label, "busy", "another worker holds this run")
    try:
        identity = cfg.to_json()
        try:  # before anything else: a finished run of another identity is no answer either
            rd.check_identity(identity)
        except IdentityMismatch as e:
            return Outcome(spec.label, "refused", str(e))
        status = rd.status()
        if status == "done":
            return Outcome(spec.label, "done")
        if status == "failed" and not job.retry_failed:
            return Outcome(spec.label, "failed-earlier", f"see {rd.failed}; rerun with --retry-failed")
        rd.remove_stale_temp_files()  # left by a writer killed mid-write; we hold the lock
        rd.write_identity(identity)
        if job.threads:
            torch.set_num_threads(job.threads)
        rd.add_provenance(provenance(job))
        try:
            data = cached_data(job.data_path, job.download)
            split = make_split(cfg.split, len(data.y_train), cfg.seed,
                               Path(job.split_file) if job.split_file else None)
            scorer, _ = load_scorer(get_space(cfg.space).benchmark, job.benchmarks, cfg.score_hp)
            genotype = run_search(cfg, rd, data, split[:2], job.device, scorer, job.progress)
        except Exception as e:  # one run's failure must not stop the grid
            atomic_write_json(rd.failed, {"reason": f"{type(e).__name__}: {e}",
                                          "traceback": traceback.format_exc(),
                                          "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
            return Outcome(spec.label, "failed", f"{type(e).__name__}: {e}")
        return Outcome(spec.label, "finished", genotype)
    finally:
        lock.release()


def with_fields(cfg: SearchConfig, **kw) -> SearchConfig:
    return dataclasses.replace(cfg, **kw)
