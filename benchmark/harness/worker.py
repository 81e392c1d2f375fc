"""Execute one run of the grid: lock, skip or resume, search, and record a failure as data.

`execute(job)` is what every backend calls (sequential, local pool, cluster); a Job is plain
picklable data, so the same function runs in this process or on another machine.
"""
from __future__ import annotations

import functools
import os
import platform
import socket
import subprocess
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from benchmark.harness.config import SearchConfig
from benchmark.harness.data import Cifar10, load_cifar10, make_split
from benchmark.harness.grid import RunSpec
from benchmark.harness.records import atomic_write_json
from benchmark.harness.rundir import IdentityMismatch, RunDir


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
    deterministic: bool = False   # CUDA: deterministic kernels (see make_deterministic)


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
        root = Path(__file__).resolve().parents[2]
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def make_deterministic() -> None:
    """What PyTorch needs for run-to-run identical CUDA results. CUBLAS_WORKSPACE_CONFIG must be
    set before cuBLAS starts (run.py sets it first thing too). Ops without a deterministic
    kernel then raise instead of silently varying: such a run fails, with the op named."""
    import torch
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def provenance(job: Job) -> dict:
    import numpy
    import torch
    return {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": socket.gethostname(),
            "python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "cuda": torch.version.cuda, "git_commit": _git_commit(),
            "device": job.device, "torch_threads": torch.get_num_threads(),
            "data_path": job.data_path, "benchmarks": job.benchmarks, "pid": os.getpid(),
            "deterministic": job.deterministic,
            "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG")}


def execute(job: Job, wait: bool = False) -> Outcome:
    """Run (or skip, or resume) one run. A run another worker holds is `busy`; with wait=True
    this blocks until that worker ends, then reports the run as it left it (or takes it over
    if that worker died)."""
    import torch
    from benchmark.harness.loop import run_search
    from benchmark.harness.scoring import load_scorer

    spec, cfg = job.spec, job.config
    rd = RunDir(job.out, spec.space, spec.method, spec.seed)
    lock = rd.try_lock(timeout=-1 if wait else 0)
    if lock is None:
        return Outcome(spec.label, "busy", "another worker holds this run")
    try:
        identity = cfg.to_json()
        try:  # before anything else: a finished run of another identity is no answer either
            rd.check_identity(identity)
        except IdentityMismatch as e:
            return Outcome(spec.label, "refused", str(e))
        rd.remove_stale_temp_files()  # left by a writer killed mid-write; we hold the lock
        status = rd.status()
        if status == "done":
            return Outcome(spec.label, "done")
        if status == "failed" and not job.retry_failed:
            return Outcome(spec.label, "failed-earlier", f"see {rd.failed}; rerun with --retry-failed")
        rd.write_identity(identity)
        if job.threads:
            torch.set_num_threads(job.threads)
        if job.deterministic:
            make_deterministic()
        rd.add_provenance(provenance(job))
        try:
            data = cached_data(job.data_path, job.download)
            split = make_split(cfg.split, len(data.y_train), cfg.seed,
                               Path(job.split_file) if job.split_file else None)
            scorer, _ = load_scorer(cfg.space, job.benchmarks, cfg.score_hp)
            genotype = run_search(cfg, rd, data, split[:2], job.device, scorer, job.progress)
        except Exception as e:  # one run's failure must not stop the grid
            reason = f"{type(e).__name__}: {e}"
            if isinstance(e, torch.cuda.OutOfMemoryError):
                torch.cuda.empty_cache()  # give the memory back for the runs that follow
                reason += (" -- lower the memory need (e.g. --set batch_size=32) or use a larger "
                           "GPU, then rerun with --retry-failed")
            atomic_write_json(rd.failed, {"reason": reason,
                                          "traceback": traceback.format_exc(),
                                          "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
            return Outcome(spec.label, "failed", reason)
        return Outcome(spec.label, "finished", genotype)
    finally:
        lock.release()


def wait_for_busy(jobs: list[Job], outcomes: list[Outcome]) -> list[Outcome]:
    """Second pass over the runs that were busy: wait for their holders, so the summary and
    exit code describe every run of the grid (done by whichever process), not a snapshot."""
    return [execute(j, wait=True) if o.status == "busy" else o for j, o in zip(jobs, outcomes)]
