"""One retraining run as a backend job: where it lives, and how it executes (lock, identity
check, skip/resume, failure recorded as data) — the search worker's contract, so the same
local pool, Slurm array and Ray backends run it (benchmark/harness/backends.py).

Folder layout (the files of a search run's folder: config.json, provenance.json,
epochs.jsonl, checkpoint.pt, done.json, failed.json, .lock):
  a search run's genotype:   <run>/retrain/seed-<r>/           e.g. results/darts/darts/seed-0/retrain/seed-0
  a genotype given by text:  <out>/retrain/darts/<name>/seed-<r>/   name = DARTS_V2, or g-<sha1[:12]>
  CIFAR-100 instead of CIFAR-10: `retrain-cifar100` in place of `retrain`.
  a selection run (profiles `select`, valid_on set): `retrain-select` (`retrain-cifar100-select`).
Neither matches the searches' `<space>/<method>/seed-<k>` pattern, so search tools never
mistake a retraining folder for a search run.
"""
from __future__ import annotations

import dataclasses
import hashlib
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from benchmark.harness.assess import assess
from benchmark.harness.loop import StopRequested
from benchmark.harness.records import atomic_write_json
from benchmark.harness.rundir import IdentityMismatch, RunDir
from benchmark.harness.worker import Outcome, _log, make_deterministic, parent_gone, provenance as search_provenance
from benchmark.retrain.profiles import RetrainConfig


def subfolder(dataset: str, selecting: bool = False) -> str:
    """retrain[-<dataset>], and -select after it for a selection run (profiles `select`), so a
    cell's 100-epoch selection training and its final retrainings never share a folder."""
    base = "retrain" if dataset == "cifar10" else f"retrain-{dataset}"
    return base + "-select" if selecting else base


def genotype_name(genotype: str) -> str:
    """A published cell's name (DARTS_V1, DARTS_V2) or g-<first 12 hex of sha1(canonical text)>."""
    from spaces.darts import PUBLISHED
    for name, text in PUBLISHED.items():
        if text == genotype:
            return name
    return "g-" + hashlib.sha1(genotype.encode()).hexdigest()[:12]


def folder_for_run(run: Path, dataset: str, seed: int, selecting: bool = False) -> Path:
    return Path(run) / subfolder(dataset, selecting) / f"seed-{seed}"


def folder_for_genotype(out: Path, genotype: str, dataset: str, seed: int, selecting: bool = False) -> Path:
    return Path(out) / subfolder(dataset, selecting) / "darts" / genotype_name(genotype) / f"seed-{seed}"


class RetrainDir(RunDir):
    """A RunDir at an explicit path (lock, identity, provenance, stale temp files, status);
    its records start at epoch 1."""
    first_epoch = 1

    def __init__(self, path: str | Path):
        self._files(Path(path))


@dataclass(frozen=True)
class RetrainJob:
    config: RetrainConfig
    folder: str
    data_path: str
    source: str = ""                # where the genotype came from (a run folder, or 'command line')
    device: str = "cpu"
    threads: int | None = None
    progress: bool | str = True     # True: a bar on a terminal, else a line per epoch; 'lines'; False
    retry_failed: bool = False
    download: bool = False
    deterministic: bool = False
    benchmarks: str | None = None   # unused; keeps the provenance entry's fields
    parent_pid: int | None = None   # a pool worker's parent: when it dies, start nothing new

    # The job protocol the backends use (see benchmark/harness/backends.py).
    @property
    def label(self) -> str:
        return str(self.folder)

    def is_done(self) -> bool:
        """Finished with whole files (a damaged one is submitted: its worker reports or repairs it)."""
        if RetrainDir(self.folder).status() != "done":
            return False
        a = assess(self.folder, "retrain")
        return a.status == "done" and not a.mismatch

    def execute(self, wait: bool = False) -> Outcome:
        return execute(self, wait)


def execute(job: RetrainJob, wait: bool = False) -> Outcome:
    """Run (or skip, or resume) one retraining; a failure is written to failed.json."""
    import torch
    from benchmark.retrain.data import load
    from benchmark.retrain.train import run_retrain

    import os

    rd = RetrainDir(job.folder)
    try:
        lock = rd.wait_lock(f"retrain: {job.label}", _short(job.folder), _log) if wait else rd.try_lock(0)
    except OSError as e:
        return Outcome(job.label, "failed", f"cannot create {rd.path}: {e.strerror or e}")
    if lock is None:
        return Outcome(job.label, "busy", "another worker holds this run")
    try:
        identity = job.config.to_json()
        rd.remove_stale_temp_files()
        # The search worker's rules (benchmark/harness/assess.py): identity, the checkpoint's
        # identity where config.json is missing, damaged records of a finished run.
        a = assess(rd.path, "retrain", identity, job.retry_failed)
        if a.restore_config and a.action in ("done", "run"):
            rd.write_identity(identity)
        if a.action != "run":
            return Outcome(job.label, a.action, a.message)
        if a.config_damage is not None:
            rd.config.unlink()
        rd.done.unlink(missing_ok=True)  # a damaged finished run is no longer finished
        rd.write_identity(identity)
        if a.provenance_damage is not None:
            os.replace(rd.provenance, rd.provenance.with_name("provenance.json.damaged"))
        if job.threads:
            torch.set_num_threads(job.threads)
        if job.deterministic:
            make_deterministic()
        rd.add_provenance({**search_provenance(job), "genotype_source": job.source})
        try:
            data = load(job.config.dataset, job.data_path, job.download)
            notes: list[str] = []
            done = run_retrain(job.config, rd.path, data, job.device, job.progress,
                               desc=_short(job.folder), notes=notes, should_stop=should_stop(job))
        except IdentityMismatch as e:  # checkpoint.pt of other settings beside this config.json
            return Outcome(job.label, "refused", str(e))
        except StopRequested as e:  # resumable: no failure recorded
            return Outcome(job.label, "stopped", str(e))
        except Exception as e:  # one run's failure must not stop the others
            reason = f"{type(e).__name__}: {e}"
            if isinstance(e, torch.cuda.OutOfMemoryError):
                torch.cuda.empty_cache()
                reason += " -- lower the memory need (--set batch_size=48) or use a larger GPU, then --retry-failed"
            atomic_write_json(rd.failed, {"reason": reason, "traceback": traceback.format_exc(),
                                          "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
            return Outcome(job.label, "failed", reason)
        said = a.repairs + [n for n in notes if a.repairs or "afresh" in n]
        what = (f"test error {done['test_error']:.2f}%" if "test_error" in done
                else f"validation error {done['valid_error']:.2f}% (held out)")
        return Outcome(job.label, "finished", what, "; ".join(said))
    finally:
        rd.unlock(lock)


def should_stop(job: RetrainJob):
    """A pool worker whose parent died stops after its next checkpoint (as searches do,
    benchmark/harness/worker.py watch_parent); None where nobody is watched."""
    return parent_gone if job.parent_pid is not None else None


def _short(folder: str) -> str:
    parts = Path(folder).parts
    return "/".join(parts[-5:])

