"""Live curves while runs go: each epoch's scalars to TensorBoard or Weights & Biases.

`--log tensorboard` writes an event file under <run>/tensorboard/ (torch.utils.tensorboard;
needs the `tensorboard` package); `--log wandb` logs to a wandb run in OFFLINE mode under
<run>/wandb/ (sync it later with `wandb sync`). Both are optional dependencies: asking for
one that is not installed is refused before anything runs (exit 2). The records stay the
data: a logger only mirrors what the loop appends to epochs.jsonl, its choice is not part of
a run's identity, and a logger that breaks mid-run is switched off with a warning rather
than failing the search.

Scalars per epoch (step = epoch): search/* (train and valid loss and accuracy of the
supernet, learning rates), cell/param_free_ops, benchmark/* (the derived cell's figures),
answer/* (the method's own pick's figures, where it picks), diagnostics/* (numeric
diagnostics, e.g. hessian_max_eig), timing/*.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

LOGGERS = ("none", "tensorboard", "wandb")
_NEEDS = {"tensorboard": ("tensorboard", "pip install tensorboard"),
          "wandb": ("wandb", "pip install wandb")}


def unavailable(kind: str) -> str | None:
    """Why `kind` cannot log here (unknown, or its package missing), or None if it can."""
    if kind not in LOGGERS:
        return f"--log {kind!r}: valid: {', '.join(LOGGERS)}"
    if kind == "none":
        return None
    module, install = _NEEDS[kind]
    try:
        __import__(module)
    except ImportError:
        return f"--log {kind}: the '{module}' package is not installed ({install}), or use --log none"
    return None


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def scalars(rec: dict) -> dict[str, float]:
    """The numeric scalars of one epoch record, under TensorBoard-style tags."""
    out: dict[str, float] = {}

    def put(tag: str, v: Any) -> None:
        x = _number(v)
        if x is not None:
            out[tag] = x

    for k in ("train_loss", "train_acc", "valid_loss", "valid_acc", "w_lr", "a_lr"):
        put(f"search/{k}", rec.get(k))
    put("cell/param_free_ops", rec.get("param_free_ops"))
    for prefix, key in (("benchmark", "benchmark"), ("answer", "selected_benchmark"),
                        ("diagnostics", "diagnostics"), ("timing", "timing")):
        for k, v in (rec.get(key) or {}).items():
            put(f"{prefix}/{k}", v)
    return out


class _TensorBoard:
    def __init__(self, run_dir: Path, label: str, config: dict):
        from torch.utils.tensorboard import SummaryWriter
        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        self.writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in sorted(config.items())), 0)

    def log(self, values: dict[str, float], step: int) -> None:
        for tag, v in values.items():
            self.writer.add_scalar(tag, v, global_step=step)
        self.writer.flush()  # visible to a running `tensorboard --logdir` at once

    def close(self) -> None:
        self.writer.close()


class _Wandb:
    def __init__(self, run_dir: Path, label: str, config: dict):
        import wandb
        # Offline: nothing leaves the machine; the run id is the run's label, so a resumed run
        # continues the same wandb run.
        self.run = wandb.init(mode="offline", dir=str(run_dir), project="darts-repro", name=label,
                              id=label.replace("/", "-"), resume="allow", config=config)

    def log(self, values: dict[str, float], step: int) -> None:
        self.run.log({**values, "epoch": step})

    def close(self) -> None:
        self.run.finish()


class LiveLog:
    """Mirror of one run's epoch records; `log(rec)` is called where the loop appends one."""

    def __init__(self, kind: str, run_dir: str | Path, label: str, config: dict):
        self.kind = kind
        self.backend = None
        if kind == "none":
            return
        cls = {"tensorboard": _TensorBoard, "wandb": _Wandb}[kind]
        try:
            self.backend = cls(Path(run_dir), label, config)
        except Exception as e:  # a logger must never sink a search
            self._off(e)

    def _off(self, e: Exception) -> None:
        print(f"warning: --log {self.kind} switched off for this run: {type(e).__name__}: {e}",
              file=sys.stderr)
        self.backend = None

    def log(self, rec: dict) -> None:
        if self.backend is None:
            return
        try:
            self.backend.log(scalars(rec), int(rec.get("epoch", 0)))
        except Exception as e:
            self._off(e)

    def close(self) -> None:
        if self.backend is not None:
            try:
                self.backend.close()
            except Exception as e:
                self._off(e)
            self.backend = None

    def __enter__(self) -> "LiveLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
