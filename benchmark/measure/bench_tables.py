"""Measure the NB201 table against its goals: load < 0.2 s, < 100 MB, plus queries/s.

    python -m benchmark.measure.bench_tables --benchmarks DIR

DIR holds nb201.parquet or the CSV layout; for the CSV layout the in-memory import is timed
too, and a temporary Parquet copy is written so the compact-table goals are still measured.
"""
from __future__ import annotations

import argparse
import gc
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

if not __package__:  # run as a script: make the repo's top-level packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

GOAL_LOAD_S = 0.2
GOAL_MEM_MB = 100.0


def _rss_mb() -> float:
    """Current resident set size (Linux /proc); NaN elsewhere."""
    try:
        import os
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return float("nan")


def measure(label: str, loader, repeats: int) -> object:
    gc.collect()
    rss0 = _rss_mb()
    tracemalloc.start()
    t0 = time.perf_counter()
    table = loader()
    first = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_delta = _rss_mb() - rss0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        loader()
        times.append(time.perf_counter() - t0)
    best = min(times) if times else first
    mem = max(peak / 2**20, rss_delta)
    print(f"{label}: first load {first:.3f} s, best of {repeats} {best:.3f} s "
          f"(goal < {GOAL_LOAD_S} s: {'OK' if first < GOAL_LOAD_S else 'MISSED'}); "
          f"peak traced {peak / 2**20:.1f} MB, RSS delta {rss_delta:.1f} MB "
          f"(goal < {GOAL_MEM_MB:.0f} MB: {'OK' if mem < GOAL_MEM_MB else 'MISSED'})")
    return table


def query_rate(table, n: int) -> None:
    rng = random.Random(0)
    idx = [int(i) for i in table.indexes]
    picks = [rng.choice(idx) for _ in range(n)]
    archs = [table.arch_of(i) for i in picks]
    t0 = time.perf_counter()
    for i in picks:
        table.query(i, "cifar10_test", "200")
    by_index = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for a in archs:
        table.query(a, "cifar10_valid", "200")
    by_arch = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for a in archs[: n // 10]:
        table.scores(a, "200")
    scores = (n // 10) / (time.perf_counter() - t0)
    print(f"queries/s: query(index) {by_index:,.0f}, query(arch) {by_arch:,.0f}, "
          f"scores(arch) {scores:,.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--benchmarks", required=True, metavar="DIR",
                        help="directory with nb201.parquet or the NB201 CSV layout")
    parser.add_argument("--repeats", type=int, default=5, help="extra timed loads")
    parser.add_argument("--queries", type=int, default=100_000, help="queries to time")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    from benchmark.errors import BenchmarkFileError
    from benchmark.tabular.nb201_table import NB201_HELP, TABLE_FILE, NB201Table, find_nb201_table
    print(f"import benchmark.tabular.nb201_table (numpy, pyarrow): {time.perf_counter() - t0:.3f} s")

    root = Path(args.benchmarks)
    try:
        if (root / TABLE_FILE).is_file():
            table = measure(f"{root / TABLE_FILE}", lambda: NB201Table.load(root / TABLE_FILE),
                            args.repeats)
        else:
            table = measure("CSV layout import (in memory)", lambda: find_nb201_table(root),
                            args.repeats)
            if table is None:
                print(NB201_HELP, file=sys.stderr)
                return 2
            with tempfile.TemporaryDirectory() as tmp:
                path = table.save(Path(tmp) / TABLE_FILE)
                print(f"temporary Parquet copy: {path.stat().st_size / 1e6:.2f} MB")
                table = measure("compact table (Parquet copy)", lambda: NB201Table.load(path),
                                args.repeats)
    except BenchmarkFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(table)} cells; metadata: {table.metadata}")
    query_rate(table, args.queries)
    return 0


if __name__ == "__main__":
    sys.exit(main())
