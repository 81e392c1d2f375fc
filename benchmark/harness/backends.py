"""Where the grid's runs execute: in this process, a local joblib pool, Slurm (submitit) or Ray.

Every backend calls `run_one(job)` on picklable jobs and so writes the same results layout.
A job is a search `Job` (benchmark.harness.worker.execute runs it) or any other frozen
dataclass with a `device` field that brings its own `label`, `is_done()` and `execute(wait)`
(e.g. benchmark.retrain.job.RetrainJob): the backends run both kinds alike. Runs already done are filtered out before anything is submitted; the
run's file lock (in `execute`) keeps two workers from ever running the same run.

Placement: a local pool has `len(devices) * per_device` slots (on CPU: `--jobs` slots); a
worker claims a free slot by file lock for the duration of one run, so exactly K runs share
a GPU however unevenly runs finish, and CPU workers get `cores // slots` torch threads each
instead of all of them fighting over every core.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchmark.harness.assess import assess
from benchmark.harness.rundir import RunDir
from benchmark.harness.worker import Job, Outcome, execute, execute_in_pool

BACKENDS = ("local", "slurm", "ray")
REPO_ROOT = str(Path(__file__).resolve().parents[2])


@dataclass(frozen=True)
class Placement:
    devices: tuple[str, ...] = ("cpu",)
    per_device: int = 1       # runs packed on each device
    cpus: int | None = None   # cores to share among concurrent CPU runs (default: all here)

    @property
    def slots(self) -> int:
        return len(self.devices) * self.per_device

    def threads(self, job: Job) -> int | None:
        """Torch threads per run: the user's --threads, else an even share of the cores."""
        if job.threads:
            return job.threads
        cores = self.cpus or os.cpu_count() or 1
        return max(1, cores // self.slots) if self.slots > 1 else None


def label(job) -> str:
    return job.spec.label if isinstance(job, Job) else job.label


def is_done(job) -> bool:
    """A finished search whose files are whole and agree about whose run it is
    (benchmark/harness/assess.py). Any other is submitted: its worker reports it (or repairs
    it with --retry-failed, or refuses it)."""
    if isinstance(job, Job):
        rd = RunDir(job.out, job.spec.space, job.spec.method, job.spec.seed)
        if rd.status() != "done":
            return False
        a = assess(rd.path, "search")   # whole files, and files that agree whose run it is
        return a.status == "done" and not a.mismatch
    return job.is_done()


def run_one(job, wait: bool = False) -> Outcome:
    """Execute one job of either kind (module-level, so pools and clusters can pickle it)."""
    if isinstance(job, Job):
        return execute(job, wait=True) if wait else execute(job)
    return job.execute(wait)


def split_done(jobs: list) -> tuple[list, list[Outcome]]:
    """(runs to submit, outcomes of runs already done); done runs are never resubmitted."""
    todo, done = [], []
    for j in jobs:
        if is_done(j):
            done.append(Outcome(label(j), "done"))
        else:
            todo.append(j)
    return todo, done


def run_sequential(jobs: list) -> list[Outcome]:
    return [run_one(j) for j in jobs]


def _execute_in_slot(job: Job, slot_dir: str, slots: list[str]) -> Outcome:
    """In a pool worker: unless the parent died, claim the first free (device, index) slot by
    file lock and run the job there."""
    return execute_in_pool(job, lambda j: _run_in_slot(j, slot_dir, slots))


def _run_in_slot(job: Job, slot_dir: str, slots: list[str]) -> Outcome:
    from filelock import FileLock, Timeout
    for i, device in enumerate(slots):
        lock = FileLock(os.path.join(slot_dir, f"slot-{i}.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue
        try:
            return run_one(dataclasses.replace(job, device=device))
        finally:
            lock.release()
    # Unreachable with as many workers as slots; run on the first device rather than fail.
    return run_one(dataclasses.replace(job, device=slots[0]))


def run_local(jobs: list[Job], placement: Placement) -> list[Outcome]:
    """A joblib (loky) process pool with one worker per slot."""
    if placement.slots <= 1 or len(jobs) <= 1:
        return run_sequential([dataclasses.replace(j, device=placement.devices[0]) for j in jobs])
    from joblib import Parallel, delayed
    slots = [d for d in placement.devices for _ in range(placement.per_device)]
    # One bar per worker would interleave on the terminal: workers print a line per epoch
    # instead (progress.py). Workers watch this process: if it dies they stop after their
    # checkpoint (worker.watch_parent).
    jobs = [dataclasses.replace(j, threads=placement.threads(j), progress=j.progress and "lines",
                                parent_pid=os.getpid()) for j in jobs]
    with tempfile.TemporaryDirectory(prefix="nas-slots-") as slot_dir:
        return list(Parallel(n_jobs=min(placement.slots, len(jobs)), backend="loky")(
            delayed(_execute_in_slot)(j, slot_dir, slots) for j in jobs))


def _importable_everywhere() -> None:
    """Workers started by submitit/Ray import `benchmark.*` from this checkout."""
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if REPO_ROOT not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([REPO_ROOT] + paths)


@dataclass(frozen=True)
class SlurmOptions:
    folder: str = "slurm-logs"     # submitit's job files and logs
    partition: str | None = None
    time_min: int = 24 * 60
    gpus_per_job: int = 0
    cpus_per_job: int = 2
    mem_gb: int | None = None
    parallelism: int = 64          # array jobs running at once
    cluster: str | None = None     # None: Slurm if found, else local; 'local' for tests


def run_slurm(jobs: list[Job], opts: SlurmOptions) -> list[Outcome]:
    """One Slurm job array of the runs (submitit); waits for all and returns their outcomes."""
    import submitit
    _importable_everywhere()
    ex = submitit.AutoExecutor(folder=opts.folder, cluster=opts.cluster)
    params = dict(timeout_min=opts.time_min, gpus_per_node=opts.gpus_per_job,
                  cpus_per_task=opts.cpus_per_job, slurm_array_parallelism=opts.parallelism,
                  name="nas-search")
    if opts.partition:
        params["slurm_partition"] = opts.partition
    if opts.mem_gb:
        params["mem_gb"] = opts.mem_gb
    ex.update_parameters(**params)
    device = "cuda:0" if opts.gpus_per_job else "cpu"  # each job sees only its own GPUs
    jobs = [dataclasses.replace(j, device=device, threads=j.threads or opts.cpus_per_job,
                                progress=j.progress and "lines") for j in jobs]
    handles = ex.map_array(run_one, jobs)
    return [_result(h, j) for h, j in zip(handles, jobs)]


def _result(handle, job: Job) -> Outcome:
    try:
        return handle.result()
    except Exception as e:  # the job died outside execute (killed, timed out, node failure)
        return Outcome(label(job), "failed", f"{type(e).__name__}: {str(e)[:500]}")


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None   # None: start a local Ray; 'auto' or host:port to join
    cpus_per_job: int = 1
    gpus_per_job: float = 0.0    # e.g. 0.25 packs 4 runs per GPU
    num_cpus: int | None = None  # for a local Ray only


def run_ray(jobs: list[Job], opts: RayOptions) -> list[Outcome]:
    import ray
    _importable_everywhere()
    env = {"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}}
    started = not ray.is_initialized()
    if started:
        ray.init(address=opts.address, num_cpus=opts.num_cpus if opts.address is None else None,
                 runtime_env=env, include_dashboard=False, log_to_driver=False)
    try:
        task = ray.remote(run_one).options(num_cpus=opts.cpus_per_job, num_gpus=opts.gpus_per_job,
                                           max_retries=0)
        device = "cuda:0" if opts.gpus_per_job else "cpu"  # Ray sets CUDA_VISIBLE_DEVICES
        jobs = [dataclasses.replace(j, device=device, threads=j.threads or opts.cpus_per_job,
                                    progress=j.progress and "lines") for j in jobs]
        refs = [task.remote(j) for j in jobs]
        out = []
        for ref, j in zip(refs, jobs):
            try:
                out.append(ray.get(ref))
            except Exception as e:  # the worker died outside execute
                out.append(Outcome(label(j), "failed", f"{type(e).__name__}: {str(e)[:500]}"))
        return out
    finally:
        if started:
            ray.shutdown()


def run_jobs(jobs: list[Job], backend: str = "local", placement: Placement = Placement(),
             slurm: SlurmOptions = SlurmOptions(), ray: RayOptions = RayOptions()) -> list[Outcome]:
    """Run the not-yet-done jobs on `backend`; outcomes keep the grid's order."""
    todo, done = split_done(jobs)
    if backend == "local":
        ran = run_local(todo, placement)
    elif backend == "slurm":
        ran = run_slurm(todo, slurm) if todo else []
    elif backend == "ray":
        ran = run_ray(todo, ray) if todo else []
    else:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    by_label = {o.label: o for o in done + ran}
    return [by_label[label(j)] for j in jobs]
