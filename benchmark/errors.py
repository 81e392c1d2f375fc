"""Errors shared by the benchmark readers and converters."""
from __future__ import annotations

from pathlib import Path


class BenchmarkFileError(ValueError):
    """A benchmark file exists but cannot be used (unreadable, truncated, wrong format)."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
