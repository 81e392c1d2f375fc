"""One run's folder: results/<space>/<method>/seed-<k>/ and what each file means.

config.json      the run's identity (SearchConfig); a rerun with another identity is refused
provenance.json  one entry per (re)start: versions, git commit, device, threads, host, time
                 (an unreadable one is kept as provenance.json.damaged by --retry-failed)
epochs.jsonl     one JSON object per finished epoch (epoch 0 = the initial architecture)
checkpoint.pt    state after the last finished epoch and the config it was made under (atomic)
done.json        completion marker with the final genotype
failed.json      why the last attempt failed (reason + traceback); cleared on success
.lock            held while a worker runs it (an OS lock: released when its holder dies)
.lock.info       who holds .lock and for what (pid, host, purpose), for the messages of waiters

A finished run (done.json) is trusted only if its records are whole: every line readable and
exactly the epochs 0..N that done.json names. `problems()` says what is wrong otherwise.
"""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from filelock import FileLock, Timeout

from benchmark.harness.records import DamagedFile, JsonlScan, atomic_write_json, read_json, scan_jsonl


class IdentityMismatch(ValueError):
    """The folder holds a run of a different identity; refusing to mix results."""


class RunDir:
    first_epoch = 0   # a search records epoch 0 (the initial architecture); a retraining starts at 1

    def __init__(self, root: str | Path, space: str, method: str, seed: int | str):
        self._files(Path(root) / space / method / f"seed-{seed}")

    def _files(self, path: Path) -> None:
        """The run's files inside `path` (also for run folders laid out elsewhere: retraining)."""
        self.path = path
        self.config = self.path / "config.json"
        self.provenance = self.path / "provenance.json"
        self.epochs = self.path / "epochs.jsonl"
        self.checkpoint = self.path / "checkpoint.pt"
        self.done = self.path / "done.json"
        self.failed = self.path / "failed.json"
        self.lock_path = self.path / ".lock"

    @classmethod
    def folder(cls, path: str | Path, first_epoch: int = 0) -> "RunDir":
        """The RunDir of a folder at any path (a retraining's: first_epoch=1)."""
        rd = cls.__new__(cls)
        rd._files(Path(path))
        rd.first_epoch = first_epoch
        return rd

    @classmethod
    def at(cls, path: str | Path) -> "RunDir":
        """The RunDir of an existing folder <root>/<space>/<method>/seed-<k>."""
        path = Path(path)
        return cls(path.parents[2], path.parts[-3], path.parts[-2], path.name.split("-", 1)[-1])

    def status(self) -> str:
        if self.done.exists():
            return "done"
        if self.failed.exists():
            return "failed"
        if self.checkpoint.exists() or self.epochs.exists():
            return "partial"
        return "new"

    def check_identity(self, identity: dict) -> None:
        """Refuse a folder whose config differs in anything but provenance. An unreadable
        config.json raises DamagedFile."""
        if not self.config.exists():
            return
        old = read_json(self.config)
        if not isinstance(old, dict):
            raise DamagedFile(self.config, "not a JSON object")
        details = identity_differences(old, identity)
        if details:
            raise IdentityMismatch(
                f"{self.path} holds a run with a different identity ({details}). Use another "
                "--out folder, or delete that run folder to start it afresh.")

    def check_checkpoint_identity(self, identity: dict) -> None:
        """For a folder without (or with an unreadable) config.json: refuse a checkpoint made
        under other settings, or one that cannot say (written before checkpoints carried their
        identity). An unreadable checkpoint passes: it is never resumed (the run starts afresh)."""
        if not self.checkpoint.exists():
            return
        try:
            old = checkpoint_identity(self.checkpoint)
        except DamagedFile:
            return
        fix = (f"delete {self.checkpoint} and {self.epochs} (or the whole folder) to start the "
               "run afresh, or use another --out folder")
        if old is None:
            raise IdentityMismatch(
                f"{self.checkpoint} has no record of the settings it was made under and "
                f"{self.config.name} is missing or unreadable, so resuming it could mix two "
                f"settings; {fix}")
        details = identity_differences(old, identity)
        if details:
            raise IdentityMismatch(f"{self.checkpoint} was made under other settings ({details}); {fix}")

    def problems(self, scan: JsonlScan | None = None) -> list[str]:
        """What is wrong with a finished run's files (empty: whole). See `records_problems`."""
        out = []
        done: dict = {}
        try:
            done = read_json(self.done)
            if not isinstance(done, dict):
                raise DamagedFile(self.done, "not a JSON object")
        except DamagedFile as e:
            out.append(f"{self.done.name}: {e.problem}")
            done = {}
        planned = done.get("epochs")
        if not self.config.exists():
            out.append(f"{self.config.name} missing (the run's settings are unknown)")
        else:
            try:
                config = read_json(self.config)
                if not isinstance(config, dict):
                    raise DamagedFile(self.config, "not a JSON object")
                if not isinstance(planned, int):
                    planned = config.get("epochs")
            except DamagedFile as e:
                out.append(f"{self.config.name}: {e.problem}")
        return out + records_problems(scan if scan is not None else scan_jsonl(self.epochs),
                                      planned if isinstance(planned, int) else None, True,
                                      self.first_epoch)

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

    def try_lock(self, timeout: float = 0, purpose: str = "") -> FileLock | None:
        """The run's lock, waiting up to `timeout` s (negative: for ever); None if another worker
        still has it. An OS lock: a holder that dies (even by SIGKILL) releases it, so the
        .lock file left behind is never stale. The holder writes who it is and `purpose` to
        .lock.info for the messages of those who wait (`holder()`); release with `unlock`."""
        self.path.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.lock_path))
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            return None
        try:
            atomic_write_json(self.lock_info, {"pid": os.getpid(), "host": socket.gethostname(),
                                               "purpose": purpose,
                                               "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        except OSError:
            pass  # the note is for messages only
        return lock

    @property
    def lock_info(self) -> Path:
        return self.path / ".lock.info"

    def unlock(self, lock: FileLock) -> None:
        self.lock_info.unlink(missing_ok=True)
        lock.release()

    def holder(self) -> str:
        """Who holds the lock, as its holder wrote it ("" if it did not say)."""
        try:
            info = read_json(self.lock_info)
            return (f"process {info['pid']} on {info['host']} ({info['purpose'] or 'unknown purpose'}, "
                    f"since {info['since']})")
        except (OSError, DamagedFile, KeyError, TypeError):
            return ""

    def wait_lock(self, purpose: str, who: str, log) -> FileLock:
        """The lock, waiting for ever; says once (through `log`) whom it waits for."""
        lock = self.try_lock(0, purpose)
        if lock is None:
            holder = self.holder() or "another process"
            log(f"{who}: waiting for {self.path}: locked by {holder}")
            lock = self.try_lock(-1, purpose)
        return lock


def checkpoint_identity(path: Path) -> dict | None:
    """The config a checkpoint was made under (None: written before checkpoints carried it);
    raises DamagedFile if the checkpoint cannot be read."""
    import torch
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated or garbage: torch raises several kinds
        raise DamagedFile(path, f"unreadable checkpoint ({type(e).__name__}: {e})") from None
    return ck.get("identity") if isinstance(ck, dict) else None


def identity_differences(old: dict, new: dict) -> str:
    """'key: old -> new; ...' for the keys whose JSON values differ ('' if none)."""
    a, b = json.loads(json.dumps(old)), json.loads(json.dumps(new))
    diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return "; ".join(f"{k}: {json.dumps(a.get(k))} -> {json.dumps(b.get(k))}" for k in diff[:6])


def _ranges(nums: list[int]) -> str:
    """[1, 2, 3, 7] -> '1-3, 7'."""
    out: list[str] = []
    for n in sorted(set(nums)):
        if out and out[-1].split("-")[-1] == str(n - 1):
            out[-1] = out[-1].split("-")[0] + f"-{n}"
        else:
            out.append(str(n))
    return ", ".join(out)


def records_problems(scan: JsonlScan, planned: int | None, finished: bool, first: int = 0) -> list[str]:
    """What is wrong with a run's records: unreadable lines, missing, repeated or out-of-order
    epochs. A finished run must hold exactly epochs 0..planned (0..its last epoch where the
    number is unknown); an unfinished one 0..k for some k, and its torn last line (a write cut
    by a kill) is no damage, since resuming drops it."""
    out = []
    bad = scan.bad_lines + ([scan.torn_tail] if finished and scan.torn_tail else [])
    if bad:
        out.append(f"epochs.jsonl line{'s' if len(bad) > 1 else ''} {_ranges(bad)} unreadable")
    epochs = [r["epoch"] for r in scan.rows]
    last = planned if finished and planned is not None else max(epochs, default=first - 1)
    missing = sorted(set(range(first, last + 1)) - set(epochs))
    if missing:
        out.append(f"epoch{'s' if len(missing) > 1 else ''} {_ranges(missing)} missing")
    twice = sorted({e for e in epochs if epochs.count(e) > 1})
    if twice:
        out.append(f"epoch{'s' if len(twice) > 1 else ''} {_ranges(twice)} recorded more than once")
    extra = sorted({e for e in epochs if e < first or e > last})
    if extra:
        out.append(f"epoch{'s' if len(extra) > 1 else ''} {_ranges(extra)} beyond the {last} planned")
    if not (missing or twice) and epochs != sorted(epochs):
        out.append("epochs out of order")
    if finished and not scan.lines and not scan.torn_tail:
        out.append("epochs.jsonl missing or empty")
    return out
