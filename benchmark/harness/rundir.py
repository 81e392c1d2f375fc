"""One run's folder: results/<space>/<method>/seed-<k>/ and what each file means.

config.json      the run's identity (SearchConfig); a rerun with another identity is refused
provenance.json  one entry per (re)start: versions, git commit, device, threads, host, time
epochs.jsonl     one JSON object per finished epoch (epoch 0 = the initial architecture)
checkpoint.pt    state after the last finished epoch (atomic)
done.json        completion marker with the final genotype
failed.json      why the last attempt failed (reason + traceback); cleared on success
.lock            held while a worker runs it (an OS lock: released when its holder dies)
"""
from __future__ import annotations

import json
from pathlib import Path

from filelock import FileLock, Timeout

from benchmark.harness.records import atomic_write_json, read_json


class IdentityMismatch(ValueError):
    """The folder holds a run of a different identity; refusing to mix results."""


class RunDir:
    def __init__(self, root: str | Path, space: str, method: str, seed: int):
        self.path = Path(root) / space / method / f"seed-{seed}"
        self.config = self.path / "config.json"
        self.provenance = self.path / "provenance.json"
        self.epochs = self.path / "epochs.jsonl"
        self.checkpoint = self.path / "checkpoint.pt"
        self.done = self.path / "done.json"
        self.failed = self.path / "failed.json"
        self.lock_path = self.path / ".lock"

    def status(self) -> str:
        if self.done.exists():
            return "done"
        if self.failed.exists():
            return "failed"
        if self.checkpoint.exists() or self.epochs.exists():
            return "partial"
        return "new"

    def check_identity(self, identity: dict) -> None:
        """Refuse a folder whose config differs in anything but provenance."""
        if not self.config.exists():
            return
        old = read_json(self.config)
        diff = sorted(k for k in set(old) | set(identity) if old.get(k) != identity.get(k))
        if diff:
            details = "; ".join(f"{k}: {json.dumps(old.get(k))} -> {json.dumps(identity.get(k))}"
                                for k in diff[:6])
            raise IdentityMismatch(
                f"{self.path} holds a run with a different identity ({details}). Use another "
                "--out folder, or delete that run folder to start it afresh.")

    def write_identity(self, identity: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        if not self.config.exists():
            atomic_write_json(self.config, identity)

    def add_provenance(self, entry: dict) -> None:
        entries = read_json(self.provenance) if self.provenance.exists() else []
        atomic_write_json(self.provenance, entries + [entry])

    def remove_stale_temp_files(self) -> list[Path]:
        """Delete temp files of atomic writes whose writer died; call only while holding the lock."""
        stale = sorted(self.path.glob(".*.tmp"))
        for p in stale:
            p.unlink(missing_ok=True)
        return stale

    def try_lock(self, timeout: float = 0) -> FileLock | None:
        """The run's lock, waiting up to `timeout` s (negative: for ever); None if another worker
        still has it. An OS lock: a holder that dies (even by SIGKILL) releases it, so the
        .lock file left behind is never stale."""
        self.path.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.lock_path))
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            return None
        return lock
