"""Where the suite looks for its files by default.

CIFAR-10: --data, else $NAS_DATA, else DEFAULT_DATA_DIR, a torchvision root folder into which
torchvision's official archive (cifar-10-python.tar.gz, md5-checked) is downloaded once and
extracted (cifar-10-batches-py/). Benchmark tables: $NAS_BENCHMARKS, else $TORCH_HOME, else
~/.torch (the official NB201/NATS APIs look in $TORCH_HOME too).
"""
from __future__ import annotations

import os
from pathlib import Path

# The default CIFAR-10 folder (a torchvision root), used when neither --data nor NAS_DATA is given.
DEFAULT_DATA_DIR = "~/.cache/darts-repro/data"


def default_benchmarks_dir() -> Path:
    for var in ("NAS_BENCHMARKS", "TORCH_HOME"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    return Path.home() / ".torch"


def default_data_dir() -> Path:
    """DEFAULT_DATA_DIR with ~ expanded (HOME at call time)."""
    return Path(DEFAULT_DATA_DIR).expanduser()


def data_source(data: str | None, download: bool) -> tuple[str, bool, bool]:
    """(CIFAR-10 path, download?, is it the default folder?) for a command's --data/--download:
    --data, else $NAS_DATA, else the default folder, which is always downloaded into when
    CIFAR-10 is not there yet (a folder the user names is downloaded into only with --download)."""
    if data:
        return data, download, False
    if os.environ.get("NAS_DATA"):
        return os.environ["NAS_DATA"], download, False
    return str(default_data_dir()), True, True


def folder_problem(out: Path, parent_only: bool = False) -> str:
    """Why a folder cannot be written at `out` ('' if it can, as far as can be told): a file in
    its place or above it, or no write permission where it would be made. parent_only: `out`
    itself is replaced (the report swaps a temp folder in beside it), so only its parent must
    be writable."""
    if out.exists() and not out.is_dir():
        return "is a file, not a folder; give a folder"
    parent = out.parent if parent_only else out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is a file, so no folder can be made below it; choose another folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{parent} is not writable; choose another folder"
    return ""

