"""The "darts-train" scorer of the registry (benchmark/harness/scoring.py SCORERS).

A DARTS-space genotype has no table to look it up in: its figure is the test error after
retraining it from scratch, which takes GPU-days in the paper protocol. So during a search
(and in `python -m benchmark.score`) there is no scorer: the runs record their genotypes
unscored, and `python -m benchmark.retrain` scores them afterwards in their own folders.
"""
from __future__ import annotations

# No training schedule to choose from: `score_hp` does not apply and keeps its default, the only
# value accepted (see benchmark/harness/scoring.py score_hps).
HPS = ("200",)

MESSAGE = ("DARTS-space genotypes are scored by retraining: "
           "python -m benchmark.retrain --results <results folder> --spaces darts")


def load(space, benchmarks_dir, hp):
    """(None, how to score these runs): searches record DARTS genotypes unscored."""
    name = getattr(space, "name", space)
    return None, MESSAGE.replace("--spaces darts", f"--spaces {name}") if isinstance(name, str) else MESSAGE


load.needs_benchmarks = False  # its answer does not depend on a benchmarks folder
