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
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from benchmark.harness.config import MAX_LOSS, SearchConfig
from benchmark.harness.data import Cifar10, load_cifar10, make_split
from benchmark.harness.grid import RunSpec
from benchmark.harness.assess import assess
from benchmark.harness.records import DiskFullError, atomic_write_json
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
    progress: bool | str = True   # True: a bar on a terminal, else a line per epoch; 'lines'; False
    retry_failed: bool = False
    download: bool = False
    deterministic: bool = False   # CUDA: deterministic kernels (see make_deterministic)
    log: str = "none"             # live curves: none | tensorboard | wandb (not the run's identity)
    max_loss: float = MAX_LOSS    # divergence threshold on an epoch's mean loss (config.MAX_LOSS)
    parent_pid: int | None = None  # a pool worker's parent: when it dies, stop (watch_parent)


@dataclass(frozen=True)
class Outcome:
    label: str
    status: str    # done (earlier) | finished | failed | failed-earlier | busy | refused | damaged | stopped
    message: str = ""
    notes: str = ""  # what a finished run repaired (e.g. started afresh, and why)

    @property
    def ok(self) -> bool:
        return self.status in ("done", "finished", "busy")


# ---- a pool worker whose parent died stops --------------------------------------------------
# Pool workers (joblib/loky) are not children that die with their parent: after a SIGKILL of
# run.py they would go on with the runs already queued to them. Each worker watches its
# parent's pid (os.getppid() changes when the parent dies; portable, unlike Linux's
# PR_SET_PDEATHSIG): a run in progress stops after its next checkpoint (so it resumes
# exactly), nothing new starts, and the worker process exits.
PARENT_POLL_S = 0.5
_parent_gone = threading.Event()
_run_active = threading.Lock()   # held by a pool worker while it executes a run
_watched: list[int] = []


def parent_gone() -> bool:
    return _parent_gone.is_set()


def watch_parent(pid: int) -> None:
    """Start (once per process) a thread that notices when `pid`, our parent, dies: it sets
    parent_gone(), waits for a run in progress to stop at its checkpoint, then exits."""
    if _watched:
        return
    _watched.append(pid)

    def poll() -> None:
        while os.getppid() == pid:
            time.sleep(PARENT_POLL_S)
        _parent_gone.set()
        with _run_active:  # the run in progress stops after its next checkpoint
            os._exit(0)

    threading.Thread(target=poll, name="watch-parent", daemon=True).start()


def execute_in_pool(job: "Job", run) -> "Outcome":
    """`run(job)` in a pool worker, unless the parent that queued it has died."""
    if job.parent_pid is not None:
        watch_parent(job.parent_pid)
    with _run_active:
        if parent_gone() or (job.parent_pid is not None and os.getppid() != job.parent_pid):
            _parent_gone.set()
            label = job.spec.label if hasattr(job, "spec") else job.label
            return Outcome(label, "stopped", "the process that started this worker died")
        return run(job)


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
            "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
            **({"max_loss": job.max_loss} if hasattr(job, "max_loss") else {})}


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def execute(job: Job, wait: bool = False) -> Outcome:
    """Run (or skip, or resume) one run. A run another worker holds is `busy`; with wait=True
    this blocks until that worker ends (saying whom it waits for), then reports the run as it
    left it (or takes it over if that worker died)."""
    spec = job.spec
    rd = RunDir(job.out, spec.space, spec.method, spec.seed)
    purpose = f"run.py: searching {spec.label}"
    lock = rd.wait_lock(purpose, spec.label, _log) if wait else rd.try_lock(0, purpose)
    if lock is None:
        return Outcome(spec.label, "busy", "another worker holds this run")
    try:
        return _execute_locked(job, rd)
    except DiskFullError as e:  # writing config/provenance, or the failure record itself
        return Outcome(spec.label, "failed", str(e))
    finally:
        rd.unlock(lock)


def _execute_locked(job: Job, rd: RunDir) -> Outcome:
    import torch
    from benchmark.harness.loop import StopRequested, run_search
    from benchmark.harness.scoring import load_scorer

    spec, cfg = job.spec, job.config
    identity = cfg.to_json()
    # 1. Decide, changing nothing (benchmark/harness/assess.py: the same rules as retraining
    # and the report): a damaged folder is reported as it is unless asked to repair.
    rd.remove_stale_temp_files()  # left by a writer killed mid-write; we hold the lock
    a = assess(rd.path, "search", identity, job.retry_failed)
    if a.restore_config and a.action in ("done", "run"):
        rd.write_identity(identity)  # restored: checkpoint.pt vouches for these settings
    if a.action != "run":
        return Outcome(spec.label, a.action, a.message)
    repairs = list(a.repairs)
    config_damage, provenance_damage = a.config_damage, a.provenance_damage

    # 2. Act.
    if config_damage is not None:
        rd.config.unlink()
    rd.done.unlink(missing_ok=True)  # a damaged finished run is no longer finished
    rd.write_identity(identity)
    if job.threads:
        torch.set_num_threads(job.threads)
    if job.deterministic:
        make_deterministic()
    if provenance_damage is not None:
        os.replace(rd.provenance, rd.provenance.with_name("provenance.json.damaged"))
        repairs.append("provenance.json was unreadable: kept as provenance.json.damaged, a new one started")
    rd.add_provenance(provenance(job))
    notes: list[str] = []
    try:
        data = cached_data(job.data_path, job.download)
        split = make_split(cfg.split, len(data.y_train), cfg.seed,
                           Path(job.split_file) if job.split_file else None)
        scorer, _ = load_scorer(cfg.space, job.benchmarks, cfg.score_hp)
        from benchmark.harness.live_log import LiveLog
        with LiveLog(job.log, rd.path, spec.label, identity) as live:
            genotype = run_search(cfg, rd, data, split[:2], job.device, scorer, job.progress, notes,
                                  on_record=live.log, max_loss=job.max_loss,
                                  should_stop=parent_gone if job.parent_pid is not None else None)
    except IdentityMismatch as e:  # checkpoint.pt of other settings beside this config.json
        return Outcome(spec.label, "refused", str(e))
    except StopRequested as e:  # resumable: no failure recorded
        return Outcome(spec.label, "stopped", str(e))
    except Exception as e:  # one run's failure must not stop the grid
        reason = f"{type(e).__name__}: {e}"
        if isinstance(e, torch.cuda.OutOfMemoryError):
            torch.cuda.empty_cache()  # give the memory back for the runs that follow
            reason += (" -- lower the memory need (e.g. --set batch_size=32) or use a larger "
                       "GPU, then rerun with --retry-failed")
        try:
            atomic_write_json(rd.failed, {"reason": reason,
                                          "traceback": traceback.format_exc(),
                                          "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        except OSError as w:  # e.g. the disk that filled up: say so, go on with the grid
            reason += f" (and {rd.failed} could not be written: {w})"
        return Outcome(spec.label, "failed", reason)
    # A normal resume is no news; a repair, or a checkpoint that could not be used, is.
    said = repairs + [n for n in notes if repairs or "afresh" in n]
    return Outcome(spec.label, "finished", genotype, "; ".join(said))


def wait_for_busy(jobs: list[Job], outcomes: list[Outcome]) -> list[Outcome]:
    """Second pass over the runs that were busy: wait for their holders, so the summary and
    exit code describe every run of the grid (done by whichever process), not a snapshot."""
    return [execute(j, wait=True) if o.status == "busy" else o for j, o in zip(jobs, outcomes)]
