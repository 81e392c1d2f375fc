"""Scorer of the NAS-Bench-1Shot1 spaces: the NB101 table, looked up by the module hash the
space records for each genotype (`genotype_info`), with the regret against the space's optimum."""
from __future__ import annotations

from pathlib import Path

# NB101 has one schedule (108 epochs), always used: `score_hp` does not apply and keeps its
# default, the only value accepted (so a setting that would change nothing is refused).
HPS = ("200",)
# The table's name, and the command that builds it (what run_all.sh says when it is missing).
TABLE = "NAS-Bench-101"
GET = "python -m benchmark.prepare nb101 --download"


def load(space, benchmarks_dir: str | Path, hp: str = "200"):
    from benchmark.tabular.nb101_table import NB101_HELP, find_nb101_table
    table = find_nb101_table(benchmarks_dir)
    if table is None:
        return None, f"no NB101 table in {benchmarks_dir}. {NB101_HELP}"
    return (lambda genotype, info: score_nb101(table, info)), f"NB101 table from {benchmarks_dir}"


def score_nb101(table, info: dict) -> dict:
    """Mean of the 3 NB101 repeats at 108 epochs, and regret against the space's optimum.

    test_min_error is a minimum over single repeats while the error is a mean of three, which
    pushes regret up; but it is also a minimum over only the cells the reference code
    enumerates (`spaces.nb1shot1.reference_wirings`: 49 / 65 / 234 of the 66 / 190 / 876
    pruned wirings of spaces 1-3), so a derived cell outside that set can beat it and have a
    NEGATIVE regret. Regret is never clipped (docs/reference/nb1shot1.md#regret).
    """
    from spaces import get_space
    q = table.query(info["module_hash"])
    space = get_space(info["space"])
    if q is None:
        return {"module_hash": info["module_hash"], "found": False}
    return {"module_hash": info["module_hash"], "found": True, "repeats": q["repeats"],
            "test_accuracy": q["test_accuracy"], "valid_accuracy": q["valid_accuracy"],
            "test_error": q["test_error"], "valid_error": q["valid_error"],
            "test_regret": q["test_error"] - space.test_min_error,
            "valid_regret": q["valid_error"] - space.valid_min_error,
            "trainable_parameters": q["trainable_parameters"]}
