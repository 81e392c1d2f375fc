"""Where benchmark files live by default: $NAS_BENCHMARKS, else $TORCH_HOME, else ~/.torch
(the official NB201/NATS APIs look in $TORCH_HOME too)."""
from __future__ import annotations

import os
from pathlib import Path


def default_benchmarks_dir() -> Path:
    for var in ("NAS_BENCHMARKS", "TORCH_HOME"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    return Path.home() / ".torch"
