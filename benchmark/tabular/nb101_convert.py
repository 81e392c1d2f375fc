"""Convert NB101's `nasbench_only108.tfrecord` into the suite's `nb101.parquet`.

Dispatched as `python -m benchmark.prepare nb101 --source FILE [--out DIR] [--download]`;
also runnable as `python -m benchmark.tabular.nb101_convert ...`. Streams the records (constant
memory apart from ~45 bytes per record of compact arrays), keeps epochs == 108 only (so
nasbench_full.tfrecord works too), groups the repeats by hash with numpy.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.request
from array import array
from pathlib import Path

import numpy as np

from benchmark.errors import BenchmarkFileError
from benchmark.harness.progress import CountProgress
from benchmark.tabular.integrity import sha256_file
from benchmark.tabular.nb101_table import MAX_REPEATS, TABLE_NAME, default_benchmarks_dir, write_table
from benchmark.tabular.nb101_tfrecord import CorruptRecordError, ModelMetrics, iter_frames

OFFICIAL_URL = 'https://storage.googleapis.com/nasbench/nasbench_only108.tfrecord'
OFFICIAL_SHA256 = '4c39c3936e36a85269881d659e44e61a245babcb72cb374eacacf75d0e5f4fd1'
SOURCE_NAME = 'nasbench_only108.tfrecord'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--source', help=f'path of {SOURCE_NAME} (with --download: where to save it; '
                                         f'default <out>/{SOURCE_NAME})')
    parser.add_argument('--out', help='directory for nb101.parquet (default: $NAS_BENCHMARKS, '
                                      'else $TORCH_HOME, else ~/.torch)')
    parser.add_argument('--download', action='store_true',
                        help=f'download {OFFICIAL_URL} (~499 MB) and check its sha256 first')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def download(dest: Path, progress: bool = True, url: str = OFFICIAL_URL,
             sha256: str = OFFICIAL_SHA256) -> None:
    """Fetch url to dest (via dest.part), verifying sha256. Raises OSError / ValueError."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + '.part')
    h = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=60) as r, open(part, 'wb') as f:
        total = int(r.headers.get('Content-Length') or 0) or None
        bar = CountProgress('download', total, 'B', progress)  # a bar on a terminal, else lines
        while b := r.read(1 << 20):
            f.write(b)
            h.update(b)
            bar.update(len(b))
        bar.close()
    if h.hexdigest() != sha256:
        part.unlink()
        raise ValueError(f'sha256 of the download is {h.hexdigest()}, expected {sha256}')
    os.replace(part, dest)


def convert(source: str | os.PathLike, out_path: str | os.PathLike, progress: bool = True) -> dict:
    """Stream source into the table at out_path; return counts and timings."""
    source = str(source)
    t0 = time.perf_counter()
    hashes, valid, test, ttime, params = bytearray(), array('d'), array('d'), array('d'), array('q')
    n_skipped = n = 0
    size = os.path.getsize(source)
    bar = CountProgress('nb101', size, 'B', progress)  # a bar on a terminal, else lines
    done = 0
    from_string, b64 = ModelMetrics.FromString, base64.b64decode
    for offset, data in iter_frames(source):
        try:
            h, epochs, _, _, raw = json.loads(data)
            if epochs != 108:
                n_skipped += 1
                continue
            m = from_string(b64(raw))
            e = m.evaluation_data[2]
            hb = bytes.fromhex(h)
            if len(hb) != 16:
                raise ValueError(f'module hash {h!r} is not 32 hex digits')
        except Exception as err:  # json / base64 / protobuf / index errors
            raise CorruptRecordError(source, offset, f'undecodable NB101 record: {err}') from err
        hashes += hb
        valid.append(e.validation_accuracy)
        test.append(e.test_accuracy)
        ttime.append(e.training_time)
        params.append(m.trainable_parameters)
        n += 1
        if n % 8192 == 0:
            bar.update(offset + len(data) + 16 - done)
            done = offset + len(data) + 16
    bar.update(size - done)
    bar.close()
    if n == 0:
        raise BenchmarkFileError(f'{source}: no 108-epoch records')
    t_read = time.perf_counter() - t0

    H = np.frombuffer(bytes(hashes), dtype='S16')
    order = np.argsort(H, kind='stable')   # stable: repeats keep their file order
    Hs = H[order]
    uniq, start, counts = np.unique(Hs, return_index=True, return_counts=True)
    if counts.max() > MAX_REPEATS:
        bad = uniq[np.argmax(counts)].hex()
        raise BenchmarkFileError(f'{source}: {counts.max()} records for hash {bad}, '
                                 f'expected at most {MAX_REPEATS}')
    rank = np.arange(len(Hs)) - np.repeat(start, counts)
    group = np.repeat(np.arange(len(uniq)), counts)
    out = {}
    for name, arr in (('valid', valid), ('test', test), ('time', ttime)):
        a = np.full((len(uniq), MAX_REPEATS), np.nan)
        a[group, rank] = np.frombuffer(arr, dtype=np.float64)[order]
        out[name] = a
    p = np.frombuffer(params, dtype=np.int64)[order]
    if np.any(p != p[start][group]):
        raise BenchmarkFileError(f'{source}: repeats of one hash disagree on trainable_parameters')
    meta = {'source_name': Path(source).name, 'records': n, 'skipped_other_epochs': n_skipped}
    write_table(out_path, uniq, out['valid'], out['test'], out['time'], p[start], meta)
    return {'records': n, 'hashes': len(uniq), 'skipped': n_skipped,
            'read_s': t_read, 'total_s': time.perf_counter() - t0}


def main(args: argparse.Namespace) -> int:
    out_dir = Path(args.out).expanduser() if args.out else default_benchmarks_dir()
    source = Path(args.source).expanduser() if args.source else out_dir / SOURCE_NAME
    progress = not getattr(args, 'no_progress', False)
    if args.download:
        if source.is_file() and sha256_file(source) == OFFICIAL_SHA256:
            print(f'{source} already present with the expected sha256')
        else:
            print(f'downloading {OFFICIAL_URL} -> {source}')
            try:
                download(source, progress)
            except (urllib.error.URLError, OSError) as e:
                print(f'error: could not download {OFFICIAL_URL}: {e}\n'
                      f'No network? Fetch the file elsewhere and run again with --source FILE.',
                      file=sys.stderr)
                return 2
            except ValueError as e:
                print(f'error: {e}', file=sys.stderr)
                return 2
    elif not args.source:
        print('error: give --source FILE (nasbench_only108.tfrecord) or --download', file=sys.stderr)
        return 2
    if not source.is_file():
        print(f'error: {source} does not exist', file=sys.stderr)
        return 2
    try:  # a file under the official name must be the official file
        from benchmark.tabular.integrity import verify_official
        verify_official(source)
    except BenchmarkFileError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    out_dir.mkdir(parents=True, exist_ok=True)
    out_path = out_dir / TABLE_NAME
    try:
        stats = convert(source, out_path, progress)
    except BenchmarkFileError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(f"wrote {out_path}: {stats['hashes']} hashes from {stats['records']} records "
          f"({stats['skipped']} non-108-epoch records skipped) in {stats['total_s']:.1f} s")
    return 0


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    sys.exit(main(ap.parse_args()))
