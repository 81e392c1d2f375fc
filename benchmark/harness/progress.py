"""Progress of searches, retrainings and downloads: a tqdm bar on a terminal, plain lines
elsewhere.

A bar redraws itself with carriage returns, which a log file, CI or a Slurm job's output
keeps as hundreds of frames. So where the stream is not a terminal (or the caller asks for
lines, as the parallel backends do: one bar per worker would interleave), a run prints one
line per epoch, e.g.

    search nb201/darts/seed-0: epoch 3/50 train_loss 1.2345 ... valid_acc 55.12 (12.3 s)

and a download or a table conversion one line per tenth of its work.
"""
from __future__ import annotations

import sys
from typing import TextIO, Union

# A run's `progress` setting: True (a bar on a terminal, else lines), "lines", or False (silent).
Progress = Union[bool, str]


def is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def mode(progress: Progress, stream: TextIO) -> str:
    """'off', 'bar' or 'lines'."""
    if not progress:
        return "off"
    if progress == "lines" or not is_terminal(stream):
        return "lines"
    return "bar"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1e4 else f"{v:.4g}"
    return str(v)


class EpochProgress:
    """One run's progress: `step()` after every training step, `epoch(...)` after every epoch,
    `close()` at the end (also when the run stops early)."""

    def __init__(self, kind: str, name: str, start: int, epochs: int, steps_per_epoch: int,
                 progress: Progress = True, stream: TextIO | None = None):
        """kind: 'search' or 'retrain'; name: the run's label (the bar's description)."""
        self.stream = stream if stream is not None else sys.stderr
        self.label, self.epochs = f"{kind} {name}", epochs
        self.mode = mode(progress, self.stream)
        self.bar = None
        if self.mode == "bar":
            from tqdm import tqdm
            self.bar = tqdm(total=(epochs - start + 1) * steps_per_epoch, leave=False,
                            desc=name, unit="step", file=self.stream)

    def step(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def epoch(self, epoch: int, values: dict, seconds: float) -> None:
        """The epoch's line (lines mode): its figures that are set, in the given order."""
        if self.mode != "lines":
            return
        parts = [f"epoch {epoch}/{self.epochs}"] + [f"{k} {_fmt(v)}" for k, v in values.items()
                                                     if v is not None]
        print(f"{self.label}: {' '.join(parts)} ({seconds:.1f} s)", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class CountProgress:
    """Progress through a known amount (bytes of a download, cells of a table): a bar on a
    terminal, else a line at every tenth (every 16 MiB of a download of unknown size)."""

    def __init__(self, label: str, total: int | None, unit: str = "B", progress: Progress = True,
                 stream: TextIO | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.label, self.total, self.unit, self.done, self.said = label, total, unit, 0, 0
        self.mode = mode(progress, self.stream)
        self.bar = None
        if self.mode == "bar":
            from tqdm import tqdm
            self.bar = tqdm(total=total, unit=unit, unit_scale=unit == "B", desc=label, file=self.stream)

    def _amount(self, n: int) -> str:
        return f"{n / 1e6:.0f} MB" if self.unit == "B" else f"{n} {self.unit}s"

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        if self.mode != "lines":
            return
        mark = 10 * self.done // self.total if self.total else self.done // (16 << 20)
        if mark > self.said:
            self.said = mark
            of = f" of {self._amount(self.total)} ({100 * self.done // self.total}%)" if self.total else ""
            print(f"{self.label}: {self._amount(self.done)}{of}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
