"""Errors shared by the benchmark readers and converters."""
from __future__ import annotations

from pathlib import Path


class BenchmarkFileError(ValueError):
    """A benchmark or split file exists but is unreadable, truncated or of the wrong format.

    `BenchmarkFileError(path, problem)` names the file; `BenchmarkFileError(message)` is a
    complete message.
    """

    def __init__(self, path: str | Path, problem: str | None = None) -> None:
        self.path = str(path) if problem is not None else None
        self.problem = problem if problem is not None else str(path)
        super().__init__(f"{self.path}: {problem}" if problem is not None else str(path))
