"""The suite's compact NAS-Bench-101 table (`nb101.parquet`), one row per module hash.

Columns (rows sorted by hash so a lookup is a binary search, no dict to build at load):
  hash           fixed_size_binary(16)  md5 bytes of the module hash (hex in the API)
  repeats        int8                    number of 108-epoch repeats found (3 in NB101)
  valid_0..2     float64                 final (evaluation_data[2]) validation accuracy per repeat (NaN if absent)
  test_0..2      float64                 final test accuracy per repeat (NaN if absent)
  valid_mean, test_mean  float64         means over the repeats present
  params         int64                   trainable_parameters
  time_0..2, time_mean  float64          final training_time (seconds) per repeat and mean
Accuracies are fractions in [0, 1], as in NB101. Schema metadata key b'nas_suite' holds JSON
with format name, version, source file name and record counts.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmark.paths import default_benchmarks_dir  # noqa: F401 (re-exported)
from benchmark.errors import BenchmarkFileError

TABLE_NAME = 'nb101.parquet'
FORMAT, VERSION = 'nas-suite-nb101', 1
MAX_REPEATS = 3
NB101_HELP = (
    "NAS-Bench-101 table not found. Create it once (about 500 MB download, a few minutes):\n"
    "  python -m benchmark.prepare nb101 --download\n"
    "or, with nasbench_only108.tfrecord already on disk:\n"
    "  python -m benchmark.prepare nb101 --source /path/to/nasbench_only108.tfrecord\n"
    f"This writes {TABLE_NAME} into --out (default: $NAS_BENCHMARKS, else $TORCH_HOME, else ~/.torch).")

_COLUMNS = (['hash', 'repeats'] + [f'valid_{i}' for i in range(MAX_REPEATS)]
            + [f'test_{i}' for i in range(MAX_REPEATS)] + ['valid_mean', 'test_mean', 'params']
            + [f'time_{i}' for i in range(MAX_REPEATS)] + ['time_mean'])


def write_table(path: str | os.PathLike, hashes: np.ndarray, valid: np.ndarray, test: np.ndarray,
                time: np.ndarray, params: np.ndarray, meta: dict) -> None:
    """hashes: (N,) 'S16' sorted unique; valid/test/time: (N, 3) with NaN for missing repeats."""
    repeats = (~np.isnan(test)).sum(1).astype(np.int8)
    with np.errstate(invalid='ignore'):
        hashes = np.ascontiguousarray(hashes, dtype='S16')
        harr = pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(16), len(hashes), [None, pa.py_buffer(hashes.tobytes())])
        cols = {'hash': harr, 'repeats': repeats}
        for i in range(MAX_REPEATS):
            cols[f'valid_{i}'] = valid[:, i]
        for i in range(MAX_REPEATS):
            cols[f'test_{i}'] = test[:, i]
        cols['valid_mean'] = np.nanmean(valid, 1)
        cols['test_mean'] = np.nanmean(test, 1)
        cols['params'] = params.astype(np.int64)
        for i in range(MAX_REPEATS):
            cols[f'time_{i}'] = time[:, i]
        cols['time_mean'] = np.nanmean(time, 1)
    table = pa.table(cols).replace_schema_metadata(
        {b'nas_suite': json.dumps(dict(meta, format=FORMAT, version=VERSION)).encode()})
    tmp = Path(str(path) + '.tmp')
    # snappy: loads ~2x faster than zstd here; accuracies barely compress either way.
    pq.write_table(table, tmp, compression='snappy')
    os.replace(tmp, path)   # never leave a half-written table under the final name


class NB101Table:
    """Read-only NB101 lookup by module hash (108-epoch results, repeats averaged)."""

    def __init__(self, table: pa.Table, path: str = '<memory>'):
        self.path = path
        self.meta = json.loads((table.schema.metadata or {}).get(b'nas_suite', b'{}'))
        h = table.column('hash').combine_chunks()
        # Zero-copy view of the fixed-width binary buffer as numpy 'S16'.
        self._hashes = np.frombuffer(h.buffers()[1], dtype='S16', count=len(h), offset=h.offset)
        self._cols = {c: table.column(c).to_numpy() for c in _COLUMNS[1:]}

    @classmethod
    def load(cls, path: str | os.PathLike) -> 'NB101Table':
        path = str(path)
        try:
            table = pq.read_table(path, memory_map=True)
        except (OSError, pa.ArrowException) as e:
            raise BenchmarkFileError(f'{path}: not a readable Parquet file ({e}). '
                                     f'Delete it and recreate it.\n{NB101_HELP}') from e
        meta = json.loads((table.schema.metadata or {}).get(b'nas_suite', b'{}') or b'{}')
        if meta.get('format') != FORMAT or table.schema.names != _COLUMNS:
            raise BenchmarkFileError(f'{path}: not an NB101 table of this suite '
                                     f'(format {meta.get("format")!r}, columns {table.schema.names}).')
        if meta.get('version') != VERSION:
            raise BenchmarkFileError(f'{path}: table version {meta.get("version")}, expected {VERSION}; '
                                     f'recreate it.\n{NB101_HELP}')
        t = cls(table, path)
        if len(t) > 1 and not np.all(t._hashes[1:] > t._hashes[:-1]):
            raise BenchmarkFileError(f'{path}: hashes are not sorted and unique')
        return t

    def __len__(self) -> int:
        return len(self._hashes)

    def _index(self, module_hash: str) -> int | None:
        try:
            key = np.array(bytes.fromhex(module_hash), dtype='S16')
        except ValueError:
            return None
        if len(module_hash) != 32:
            return None
        i = int(np.searchsorted(self._hashes, key))
        return i if i < len(self) and self._hashes[i] == key else None

    def __contains__(self, module_hash: str) -> bool:
        return self._index(module_hash) is not None

    def query(self, module_hash: str) -> dict | None:
        """Mean test/valid accuracy and error over the repeats, per-repeat values, params."""
        i = self._index(module_hash)
        if i is None:
            return None
        c = self._cols
        n = int(c['repeats'][i])
        valid = [float(c[f'valid_{k}'][i]) for k in range(MAX_REPEATS)][:n]
        test = [float(c[f'test_{k}'][i]) for k in range(MAX_REPEATS)][:n]
        return {
            'module_hash': module_hash,
            'valid_accuracy': float(c['valid_mean'][i]), 'test_accuracy': float(c['test_mean'][i]),
            'valid_error': 1.0 - float(c['valid_mean'][i]), 'test_error': 1.0 - float(c['test_mean'][i]),
            'valid_accuracies': valid, 'test_accuracies': test, 'repeats': n,
            'trainable_parameters': int(c['params'][i]),
            'training_time': float(c['time_mean'][i]),
        }


def find_nb101_table(benchmarks_dir: str | os.PathLike | None = None) -> NB101Table | None:
    """Load `<benchmarks_dir>/nb101.parquet` (default dir: default_benchmarks_dir()).

    None if the file does not exist (show NB101_HELP); BenchmarkFileError if it is bad.
    """
    d = Path(benchmarks_dir) if benchmarks_dir is not None else default_benchmarks_dir()
    path = d / TABLE_NAME
    return NB101Table.load(path) if path.is_file() else None
