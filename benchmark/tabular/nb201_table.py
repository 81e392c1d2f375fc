"""Compact NAS-Bench-201 table: one Parquet file with every cell's mean accuracies.

Columns: `index` (official index), `arch` (official arch string), `{metric}@{hp}` for the
six METRICS and the two HPS, and optional cost columns (COST_COLUMNS). Accuracies are in
percent, means over the benchmark's seeds (is_random=False):

  cifar10_valid    dataset `cifar10-valid`   valid-accuracy (x-valid half of the train set)
  cifar10_test     dataset `cifar10`         test-accuracy  (ori-test)
  cifar100_valid   dataset `cifar100`        valid-accuracy (x-valid)
  cifar100_test    dataset `cifar100`        test-accuracy  (x-test)
  imagenet16_valid dataset `ImageNet16-120`  valid-accuracy (x-valid)
  imagenet16_test  dataset `ImageNet16-120`  test-accuracy  (x-test)

A figure the source lacks is NaN in the file and None from `query`; it is never filled
from the other fidelity (hp '12' vs '200').
"""
from __future__ import annotations

import datetime as _dt
import math
import os
import re
from numbers import Integral
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmark.paths import default_benchmarks_dir  # noqa: F401 (re-exported)
from benchmark.errors import BenchmarkFileError

METRICS: tuple[str, ...] = (
    "cifar10_valid", "cifar10_test", "cifar100_valid",
    "cifar100_test", "imagenet16_valid", "imagenet16_test",
)
HPS: tuple[str, ...] = ("12", "200")
ACC_COLUMNS: tuple[str, ...] = tuple(f"{m}@{hp}" for hp in HPS for m in METRICS)
# Costs of the cifar10-valid runs (10 classes): params in MB, FLOPs in M, latency in s
# (batch 256), total training time in s per schedule. Optional: the CSV layout lacks them.
COST_COLUMNS: tuple[str, ...] = (
    "params_mb", "flops_m", "latency_s", "train_time_s@12", "train_time_s@200",
)
N_CELLS = 15_625
OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
TABLE_FILE = "nb201.parquet"
CSV_200 = "nb201_acc_200ep.csv"
CSV_12 = "nb201_acc_12ep.csv"
FORMAT_VERSION = "1"

_OP = "(?:" + "|".join(OPS) + ")"
_ARCH_RE = re.compile(
    rf"^\|{_OP}~0\|\+\|{_OP}~0\|{_OP}~1\|\+\|{_OP}~0\|{_OP}~1\|{_OP}~2\|$"
)

NB201_HELP = (
    "No NAS-Bench-201 table found. Build the compact table once with\n"
    "  python -m benchmark.prepare nb201 --source FILE [--out DIR]\n"
    "where FILE is the official NAS-Bench-201 NAS-Bench-201-v1_0-e61699.pth or\n"
    "NAS-Bench-201-v1_1-096897.pth, a NATS-Bench topology (tss) archive directory such as\n"
    "NATS-tss-v1_0-3ffb9-simple, or a directory holding the CSV layout\n"
    f"({CSV_200} + optional {CSV_12}). It writes DIR/{TABLE_FILE}\n"
    "(DIR defaults to $NAS_BENCHMARKS, else $TORCH_HOME, else ~/.torch). A directory with\n"
    "the CSV layout also works directly as the benchmarks directory (imported on the fly)."
)


class UnknownArchError(KeyError):
    """The architecture (string or index) is not in the table."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


def is_arch_string(arch: str) -> bool:
    """True for a well-formed NAS-Bench-201 arch string."""
    return bool(_ARCH_RE.match(arch))


class NB201Table:
    """In-memory NAS-Bench-201 table; rows addressed by official index or arch string."""

    def __init__(self, index: Iterable[int], arch: Iterable[str],
                 columns: Mapping[str, Iterable[float]],
                 metadata: Mapping[str, str] | None = None, *,
                 allow_partial: bool = False, origin: str | Path = "<memory>") -> None:
        self._index = np.asarray(list(index) if not isinstance(index, np.ndarray) else index,
                                 dtype=np.int64)
        self._arch = list(arch)
        n = len(self._index)
        if len(self._arch) != n:
            raise BenchmarkFileError(origin, f"{n} indexes but {len(self._arch)} arch strings")
        self._cols: dict[str, np.ndarray] = {}
        for name, values in columns.items():
            col = np.asarray(values, dtype=np.float64)
            if col.shape != (n,):
                raise BenchmarkFileError(origin, f"column {name!r} has {col.size} values, expected {n}")
            self._cols[name] = col
        for name in ACC_COLUMNS:  # absent columns are all-missing, never borrowed
            self._cols.setdefault(name, np.full(n, np.nan))
        self.metadata: dict[str, str] = dict(metadata or {})
        self._validate(origin, allow_partial)
        self._by_index = {int(i): r for r, i in enumerate(self._index)}
        self._by_arch = {a: r for r, a in enumerate(self._arch)}

    def _validate(self, origin: str | Path, allow_partial: bool) -> None:
        n = len(self._index)
        if n == 0:
            raise BenchmarkFileError(origin, "table has no rows")
        if n != N_CELLS and not allow_partial:
            raise BenchmarkFileError(
                origin, f"{n} rows, expected all {N_CELLS} cells (truncated or partial file?)")
        if len(set(self._index.tolist())) != n or self._index.min() < 0:
            raise BenchmarkFileError(origin, "column 'index' has duplicate or negative values")
        bad = [a for a in self._arch if not isinstance(a, str) or not is_arch_string(a)]
        if bad:
            raise BenchmarkFileError(origin, f"{len(bad)} malformed arch strings, e.g. {bad[0]!r}")
        if len(set(self._arch)) != n:
            raise BenchmarkFileError(origin, "column 'arch' has duplicate arch strings")
        for name in ACC_COLUMNS:
            col = self._cols[name]
            ok = np.isnan(col) | ((col >= 0.0) & (col <= 100.0))
            if not ok.all():
                raise BenchmarkFileError(
                    origin, f"column {name!r} has values outside [0, 100] %, e.g. {col[~ok][0]}")

    # ---- construction / IO -------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> "NB201Table":
        """Load a compact table written by `save` (benchmark.prepare nb201)."""
        path = Path(path)
        try:
            # ParquetFile.read + _to_numpy keep pandas (~0.5 s to import) out of the load path
            table = pq.ParquetFile(path).read(use_pandas_metadata=False)
        except (OSError, pa.ArrowException) as exc:
            raise BenchmarkFileError(
                path, f"not a readable Parquet table ({exc}); rebuild it with "
                      "`python -m benchmark.prepare nb201 --source FILE`") from exc
        names = set(table.column_names)
        missing = [c for c in ("index", "arch", *ACC_COLUMNS) if c not in names]
        if missing:
            raise BenchmarkFileError(path, f"not an NB201 table: missing columns {missing}")
        if not pa.types.is_string(table.column("arch").type):
            raise BenchmarkFileError(path, f"column 'arch' is {table.column('arch').type}, not string")
        meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
        try:
            cols = {c: _to_numpy(table.column(c), pa.float64()) for c in table.column_names
                    if c not in ("index", "arch")}
            index = _to_numpy(table.column("index"), pa.int64())
        except pa.ArrowException as exc:
            raise BenchmarkFileError(path, f"non-numeric values in a numeric column ({exc})") from exc
        return cls(index, table.column("arch").to_pylist(), cols, meta,
                   allow_partial=meta.get("partial") == "true", origin=path)

    def save(self, path: str | Path, **metadata: str) -> Path:
        """Write the table as Parquet (atomically); extra metadata keys are stored too."""
        path = Path(path)
        meta = {**self.metadata, **metadata}
        meta.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
        meta["format_version"] = FORMAT_VERSION
        meta["partial"] = "true" if len(self) != N_CELLS else "false"
        arrays = {"index": pa.array(self._index, pa.int64()), "arch": pa.array(self._arch, pa.string())}
        arrays.update({c: pa.array(v, pa.float64()) for c, v in self._cols.items()})
        table = pa.table(arrays).replace_schema_metadata(meta)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, path)
        self.metadata = meta
        return path

    @classmethod
    def from_csv(cls, csv_200: str | Path, csv_12: str | Path | None = None, *,
                 allow_partial: bool = False) -> "NB201Table":
        """Import the shared CSV layout; columns are `{metric}` names, one file per hp."""
        csv_200 = Path(csv_200)
        idx, arch, cols = _read_metric_csv(csv_200, "200")
        if csv_12 is not None:
            idx12, arch12, cols12 = _read_metric_csv(Path(csv_12), "12")
            pos = {int(i): r for r, i in enumerate(idx12)}
            if set(pos) != set(int(i) for i in idx):
                raise BenchmarkFileError(csv_12, f"indexes differ from those in {csv_200.name}")
            order = np.array([pos[int(i)] for i in idx])
            if any(arch12[o] != a for o, a in zip(order, arch)):
                raise BenchmarkFileError(csv_12, f"arch strings disagree with {csv_200.name}")
            cols.update({c: v[order] for c, v in cols12.items()})
        sources = csv_200.name + (f" + {Path(csv_12).name}" if csv_12 is not None else "")
        meta = {"source": sources, "converter": "benchmark.tabular.nb201_table.from_csv",
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        return cls(idx, arch, cols, meta, allow_partial=allow_partial, origin=csv_200)

    # ---- queries -----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._index)

    def __repr__(self) -> str:
        return f"NB201Table({len(self)} cells, source={self.metadata.get('source', '?')!r})"

    @property
    def columns(self) -> list[str]:
        return ["index", "arch", *self._cols]

    def index_of(self, arch: str | int) -> int:
        """Official index of an arch string (or check an index is present)."""
        return int(self._index[self._row(arch)])

    def arch_of(self, arch: str | int) -> str:
        return self._arch[self._row(arch)]

    def query(self, arch: str | int, metric: str, hp: str) -> float | None:
        """Mean accuracy (%) of `arch` for `metric` under schedule `hp` ('12' or '200');
        None where the source has no such figure."""
        value = self._acc_column(metric, hp)[self._row(arch)]
        return None if math.isnan(value) else float(value)

    def scores(self, arch: str | int, hp: str) -> dict[str, float | None]:
        """All six metrics of `arch` under schedule `hp`."""
        row = self._row(arch)
        out: dict[str, float | None] = {}
        for m in METRICS:
            v = self._acc_column(m, hp)[row]
            out[m] = None if math.isnan(v) else float(v)
        return out

    def cost(self, arch: str | int, name: str) -> float | None:
        """A cost column (COST_COLUMNS) for `arch`; None if absent or missing."""
        if name not in COST_COLUMNS:
            raise ValueError(f"unknown cost {name!r}; valid: {', '.join(COST_COLUMNS)}")
        col = self._cols.get(name)
        if col is None:
            return None
        v = col[self._row(arch)]
        return None if math.isnan(v) else float(v)

    def best(self, metric: str, hp: str) -> tuple[int, str, float]:
        """(index, arch, value) of the highest `metric` under `hp`; lowest index on ties."""
        col = self._acc_column(metric, hp)
        if np.isnan(col).all():
            raise ValueError(f"the table has no {metric}@{hp} figures (source: "
                             f"{self.metadata.get('source', '?')})")
        row = int(np.nanargmax(col))
        return int(self._index[row]), self._arch[row], float(col[row])

    def column(self, metric: str, hp: str) -> np.ndarray:
        """Read-only view of one accuracy column, in row order (see `indexes`)."""
        col = self._acc_column(metric, hp).view()
        col.flags.writeable = False
        return col

    @property
    def indexes(self) -> np.ndarray:
        view = self._index.view()
        view.flags.writeable = False
        return view

    # ---- helpers -----------------------------------------------------------------------
    def _acc_column(self, metric: str, hp: str) -> np.ndarray:
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; valid metrics: {', '.join(METRICS)}")
        if not isinstance(hp, str) or hp not in HPS:
            raise ValueError(f"unknown hp {hp!r}; valid hp values (strings): {', '.join(HPS)} "
                             "(training epochs of the benchmark schedule)")
        return self._cols[f"{metric}@{hp}"]

    def _row(self, arch: str | int) -> int:
        if isinstance(arch, str):
            row = self._by_arch.get(arch.strip())
            if row is None:
                what = "well-formed but absent" if is_arch_string(arch.strip()) else "malformed"
                raise UnknownArchError(f"arch {arch!r} not in the NB201 table ({what}; expected "
                                       "e.g. '|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+"
                                       "|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|')")
            return row
        if isinstance(arch, Integral) and not isinstance(arch, bool):
            row = self._by_index.get(int(arch))
            if row is None:
                raise UnknownArchError(f"index {arch} not in the NB201 table ({len(self)} cells, "
                                       f"indexes {int(self._index.min())}..{int(self._index.max())})")
            return row
        raise TypeError(f"arch must be an arch string or an int index, not {type(arch).__name__}")


def _read_metric_csv(path: Path, hp: str) -> tuple[np.ndarray, list[str], dict[str, np.ndarray]]:
    """Read one CSV of the shared layout strictly: a truncated or garbled file raises."""
    import pyarrow.csv as pacsv  # only needed for the CSV layout

    try:
        header = path.open(encoding="utf-8").readline().strip().split(",")
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchmarkFileError(path, f"cannot read ({exc})") from exc
    if header[:2] != ["index", "arch"]:
        raise BenchmarkFileError(path, f"expected a CSV header starting 'index,arch', got {header[:2]}")
    metrics = [c for c in header[2:] if c in METRICS]
    if not metrics:
        raise BenchmarkFileError(path, f"no metric columns; expected some of {', '.join(METRICS)}")
    types = {"index": pa.int64(), "arch": pa.string(), **{m: pa.float64() for m in metrics}}
    try:
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            column_types=types, include_columns=["index", "arch", *metrics]))
    except (OSError, pa.ArrowException) as exc:
        raise BenchmarkFileError(path, f"malformed or truncated CSV ({exc})") from exc
    for name in table.column_names:
        if table.column(name).null_count:
            raise BenchmarkFileError(path, f"column {name!r} has {table.column(name).null_count} "
                                           "empty values (truncated file?)")
    cols = {f"{m}@{hp}": _to_numpy(table.column(m), pa.float64()) for m in metrics}
    return _to_numpy(table.column("index"), pa.int64()), table.column("arch").to_pylist(), cols


def _to_numpy(column: pa.ChunkedArray, typ: pa.DataType) -> np.ndarray:
    """Column -> numpy via its data buffer; nulls become NaN (floats). Unlike
    ChunkedArray.to_numpy this does not import pandas."""
    dtype = np.dtype(np.float64 if pa.types.is_floating(typ) else np.int64)
    parts = []
    for chunk in column.chunks:
        if chunk.type != typ:
            chunk = chunk.cast(typ)
        if chunk.null_count:
            if not pa.types.is_floating(typ):
                raise pa.ArrowInvalid(f"{chunk.null_count} missing values in an integer column")
            import pyarrow.compute as pc
            chunk = pc.fill_null(chunk, float("nan"))
        parts.append(np.frombuffer(chunk.buffers()[1], dtype=dtype, count=len(chunk),
                                   offset=chunk.offset * dtype.itemsize))
    return np.concatenate(parts) if parts else np.empty(0, dtype)


def find_nb201_table(benchmarks_dir: str | Path | None) -> NB201Table | None:
    """The NB201 table in `benchmarks_dir`: `nb201.parquet`, else the CSV layout (directly
    there or in `nasbench201/`), imported in memory. None if neither is there; a file that
    is there but unusable raises BenchmarkFileError."""
    if benchmarks_dir is None:
        return None
    root = Path(benchmarks_dir).expanduser()
    if (root / TABLE_FILE).is_file():
        return NB201Table.load(root / TABLE_FILE)
    for folder in (root, root / "nasbench201"):
        if (folder / CSV_200).is_file():
            csv_12 = folder / CSV_12
            return NB201Table.from_csv(folder / CSV_200, csv_12 if csv_12.is_file() else None)
    return None
