"""Crash-safe persistence: atomic file replacement and whole-line JSONL appends.

A writer that dies mid-way leaves either the old file or the new one, never a mix; a torn
last JSONL line (killed inside write) is ignored by readers and cut off before appending.
Anything else that does not parse is damage, not a torn write: readers name the file (and the
line) in a `DamagedFile` error, and `scan_jsonl` reports it line by line.
Files are created with the permissions of a plain `open()` (0666 less the umask), so a
results folder shared by a group stays readable. A full disk raises DiskFullError, naming
the file being written.
"""
from __future__ import annotations

import errno
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

# Record fields that measure time and so differ between otherwise identical runs.
TIMING_FIELDS = ("timing",)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DiskFullError(OSError):
    """No space (or quota) left while writing a file; the message names the file."""


_FULL = (errno.ENOSPC, errno.EDQUOT)


def _disk_full(e: OSError, path: Path) -> DiskFullError:
    return DiskFullError(e.errno, f"disk full while writing {path} ({e.strerror or e}); free some "
                                  "space, then rerun: an unfinished run resumes from its last checkpoint")


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (no race with threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[Any], None], mode: str = "w") -> None:
    """Write through `write(fileobj)` into a temp file beside `path`, fsync, rename."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        if e.errno in _FULL:
            raise _disk_full(e, path) from e
        raise
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a plain open() honours the umask
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno in _FULL:
            raise _disk_full(e, path) from e
        raise


def _clean(obj: Any) -> Any:
    """JSON has no NaN/inf: write them as null so every reader can parse the records."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write(path, lambda f: json.dump(_clean(obj), f, indent=2, sort_keys=True))


class DamagedFile(ValueError):
    """A results file exists but cannot be read as what it should be; the message names it."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path, self.problem = Path(path), problem
        super().__init__(f"{path}: {problem}")


def read_json(path: str | Path) -> Any:
    """The JSON in `path`; a file that is not valid JSON raises DamagedFile naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DamagedFile(path, f"not valid JSON ({e})") from None


@dataclass
class JsonlScan:
    """What a JSONL file of records holds, line by line.

    lines: (line number from 1, the record or None where the line is not a JSON object with an
    integer `epoch`), blank lines left out; torn_tail: the number of the last line if it has no
    newline and does not parse (a writer killed inside its write; 0: none); that line is not
    in `lines`."""
    lines: list[tuple[int, dict | None]] = field(default_factory=list)
    torn_tail: int = 0

    @property
    def rows(self) -> list[dict]:
        return [r for _, r in self.lines if r is not None]

    @property
    def bad_lines(self) -> list[int]:
        return [n for n, r in self.lines if r is None]


def _record(line: bytes) -> dict | None:
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    ok = isinstance(obj, dict) and isinstance(obj.get("epoch"), int) and not isinstance(obj["epoch"], bool)
    return obj if ok else None


def scan_jsonl(path: str | Path) -> JsonlScan:
    """Every line of a records file, readable or not (see JsonlScan); a missing file is empty."""
    path = Path(path)
    scan = JsonlScan()
    if not path.exists():
        return scan
    lines = path.read_bytes().split(b"\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        rec = _record(line)
        if rec is None and i == len(lines) - 1:  # unterminated and unreadable: a torn write
            scan.torn_tail = i + 1
            continue
        scan.lines.append((i + 1, rec))
    return scan


def read_jsonl(path: str | Path) -> list[dict]:
    """All records; a torn last line is skipped, any other unreadable line raises DamagedFile."""
    scan = scan_jsonl(path)
    if scan.bad_lines:
        raise DamagedFile(path, f"line {scan.bad_lines[0]} is not a JSON record with an epoch")
    return scan.rows


def append_jsonl(path: str | Path, obj: dict) -> None:
    data = (json.dumps(_clean(obj), sort_keys=True) + "\n").encode()
    try:
        with open(path, "ab") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:  # a partial line is a torn tail: ignored, then cut off on resume
        if e.errno in _FULL:
            raise _disk_full(e, Path(path)) from e
        raise


def rewrite_jsonl(path: str | Path, rows: list[dict]) -> None:
    atomic_write(path, lambda f: f.writelines(json.dumps(_clean(r), sort_keys=True) + "\n" for r in rows))


def strip_timing(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in TIMING_FIELDS}
