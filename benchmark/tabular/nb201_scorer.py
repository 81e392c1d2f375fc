"""Scorer of the NB201 space: a lookup in the compact NAS-Bench-201 table at the run's
training schedule (`hp`, always named; docs/reference/nb201.md#querying-the-table)."""
from __future__ import annotations

from pathlib import Path

# The benchmark's two training schedules (epochs), as strings: the valid `score_hp` values.
HPS = ("12", "200")
# The table's name, and the command that builds it (what run_all.sh says when it is missing).
TABLE = "NAS-Bench-201"
GET = "python -m benchmark.prepare nb201 --source FILE"


def load(space, benchmarks_dir: str | Path, hp: str = "200"):
    from benchmark.tabular.nb201_table import NB201_HELP, find_nb201_table
    table = find_nb201_table(benchmarks_dir)
    if table is None:
        return None, f"no NB201 table in {benchmarks_dir}. {NB201_HELP}"

    def score(genotype: str, info: dict) -> dict:
        return {"hp": hp, **table.scores(genotype, hp=hp)}
    return score, f"NB201 table from {benchmarks_dir}"
