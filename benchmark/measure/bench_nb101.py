"""Benchmark the NB101 converter on a synthetic tfrecord of realistic record size.

  python -m benchmark.measure.bench_nb101 [--records 100000] [--keep DIR]

Prints write, convert and load times, the converter's peak memory (max RSS of a child
process running only the conversion), and the extrapolation to the real file's 1,270,872
records (423,624 hashes x 3 repeats), against the goals (< 5 min, < 4 GB, load < 1 s).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REAL_RECORDS = 423_624 * 3
GOAL_CONVERT_S, GOAL_MEM_GB, GOAL_LOAD_S = 300.0, 4.0, 1.0

_CHILD = """
import resource, sys, time
from benchmark.tabular.nb101_convert import convert
t = time.perf_counter()
convert(sys.argv[1], sys.argv[2], progress=False)
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--records', type=int, default=100_000,
                    help='records to generate (3 per hash; default 100000)')
    ap.add_argument('--keep', help='write the files into this directory and keep them')
    args = ap.parse_args(argv)
    from benchmark.tabular.nb101_synthetic import write_synthetic
    from benchmark.tabular.nb101_table import NB101Table

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(args.keep or tmp)
        d.mkdir(parents=True, exist_ok=True)
        src, out = d / 'synthetic.tfrecord', d / 'nb101.parquet'
        n_hashes = max(1, args.records // 3)
        t = time.perf_counter()
        write_synthetic(str(src), n_hashes, keep_facts=False)
        size = src.stat().st_size
        n = n_hashes * 3
        print(f'wrote {n:,} records ({size / 1e6:.1f} MB, {size / n:.0f} B/record) '
              f'in {time.perf_counter() - t:.1f} s')

        # Child process so that max RSS measures the converter alone.
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
        r = subprocess.run([sys.executable, '-c', _CHILD, str(src), str(out)], env=env,
                           capture_output=True, text=True, check=True)
        secs, rss_kb = r.stdout.split()
        secs, rss_gb = float(secs), int(rss_kb) / 1e6
        rate = n / secs
        t = time.perf_counter()
        table = NB101Table.load(out)
        load_s = time.perf_counter() - t
        # Load time of a full-size table: ~ linear in rows; memory: base + per-record arrays.
        full_s = REAL_RECORDS / rate
        full_mem = rss_gb + (REAL_RECORDS - n) * 60 / 1e9
        print(f'convert: {secs:.2f} s = {rate:,.0f} records/s, peak RSS {rss_gb:.2f} GB, '
              f'table {out.stat().st_size / 1e6:.1f} MB with {len(table):,} hashes')
        print(f'load:    {load_s * 1000:.0f} ms')
        ok = lambda b: 'OK' if b else 'MISSED'   # noqa: E731
        print(f'\nextrapolated to the real file ({REAL_RECORDS:,} records):')
        print(f'  convert  {full_s:7.1f} s   goal < {GOAL_CONVERT_S:.0f} s   {ok(full_s < GOAL_CONVERT_S)}')
        print(f'  memory   {full_mem:7.2f} GB  goal < {GOAL_MEM_GB:.0f} GB    {ok(full_mem < GOAL_MEM_GB)}'
              f'   (measured + ~60 B per extra record)')
        load_full = load_s * REAL_RECORDS / n
        print(f'  load     {load_full:7.2f} s   goal < {GOAL_LOAD_S:.0f} s     {ok(load_full < GOAL_LOAD_S)}'
              f'   (linear upper bound; run with --records {REAL_RECORDS} to measure)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
