"""Crash-safe persistence: atomic file replacement and whole-line JSONL appends.

A writer that dies mid-way leaves either the old file or the new one, never a mix; a torn
last JSONL line (killed inside write) is ignored by readers and cut off before appending.
Anything else that does not parse is damage, not a torn write: readers name the file (and the
line) in a `DamagedFile` error, and `scan_jsonl` reports it line by line.
"""
from __future__ import annotations

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


def atomic_write(path: str | Path, write: Callable[[Any], None], mode: str = "w") -> None:
    """Write through `write(fileobj)` into a temp file beside `path`, fsync, rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
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
    with open(path, "ab") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def rewrite_jsonl(path: str | Path, rows: list[dict]) -> None:
    atomic_write(path, lambda f: f.writelines(json.dumps(_clean(r), sort_keys=True) + "\n" for r in rows))


def strip_timing(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in TIMING_FIELDS}
