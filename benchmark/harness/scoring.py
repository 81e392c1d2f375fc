"""Genotype -> benchmark figures: the scorer registry and `python -m benchmark.score`.

Each space names how its genotypes are scored (`space.benchmark`, a key of SCORERS): a table
lookup (benchmark/tabular/), or a training run. Searches never open the official multi-GB APIs:
they record genotypes, and a scorer fills in figures during the run when it can, or later
(`python -m benchmark.score`).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable


Scorer = Callable[[str, dict], "dict | None"]

# A space's `benchmark` attribute names its scorer here: "module:function", imported only when
# used. Each function is `load(space, benchmarks_dir, hp) -> (scorer or None, message)`, the
# message saying where the figures come from or how to get them. Adding a benchmark = one
# module and one line here; the harness never branches on a space or benchmark name.
SCORERS: dict[str, str] = {
    "nb201": "benchmark.tabular.nb201_scorer:load",
    "nb101": "benchmark.tabular.nb101_scorer:load",
    "darts-train": "benchmark.retrain.scorer:load",   # no lookup: scored by retraining
}


def load_scorer(space, benchmarks_dir: str | Path | None, hp: str = "200") -> tuple[Scorer | None, str]:
    """(scorer or None, a message: where the figures come from or how to add them) for a space
    (its name or the space object)."""
    import importlib
    from spaces import get_space
    if isinstance(space, str):
        space = get_space(space)
    kind = space.benchmark
    if kind not in SCORERS:
        raise KeyError(f"space {space.name!r} names an unknown scorer {kind!r}; registered: "
                       f"{', '.join(SCORERS)}")
    module, func = SCORERS[kind].split(":")
    loader = getattr(importlib.import_module(module), func)
    if benchmarks_dir is None and getattr(loader, "needs_benchmarks", True):
        return None, "no benchmarks folder given (--benchmarks / NAS_BENCHMARKS / TORCH_HOME)"
    return loader(space, benchmarks_dir, hp)


def rescore(results: Path, benchmarks_dir: Path | None) -> tuple[int, int]:
    """Fill in `benchmark` for every record under `results`; returns (runs, records) scored."""
    from benchmark.harness.config import SearchConfig
    from benchmark.harness.records import read_json, read_jsonl, rewrite_jsonl
    from spaces import get_space
    runs = recs = 0
    scorers: dict[tuple[str, str], Scorer | None] = {}
    for cfg_path in sorted(results.glob("*/*/seed-*/config.json")):
        cfg = SearchConfig.from_json(read_json(cfg_path))
        key = (cfg.space, cfg.score_hp)
        if key not in scorers:
            scorer, msg = load_scorer(cfg.space, benchmarks_dir, cfg.score_hp)
            scorers[key] = scorer
            if scorer is None:
                print(f"skipping {cfg.space} runs: {msg}", file=sys.stderr)
        scorer = scorers[key]
        if scorer is None:
            continue
        from filelock import FileLock
        with FileLock(str(cfg_path.parent / ".lock")):
            path = cfg_path.parent / "epochs.jsonl"
            rows = read_jsonl(path)
            space = get_space(cfg.space)
            for r in rows:
                r["benchmark"] = scorer(r["genotype"], r.get("genotype_info", {}))
                if r.get("selected_genotype"):
                    sel = r["selected_genotype"]
                    r["selected_benchmark"] = scorer(sel, space.genotype_info(sel))
            rewrite_jsonl(path, rows)
        runs, recs = runs + 1, recs + len(rows)
    return runs, recs


def main(argv: list[str] | None = None) -> int:
    import os
    p = argparse.ArgumentParser(prog="python -m benchmark.score",
                                description="Fill in benchmark accuracies of every recorded epoch.")
    p.add_argument("--results", default="results", help="results folder (default: results)")
    p.add_argument("--benchmarks", default=os.environ.get("NAS_BENCHMARKS") or os.environ.get("TORCH_HOME"),
                   help="folder with the compact tables (default: $NAS_BENCHMARKS, else $TORCH_HOME)")
    a = p.parse_args(argv)
    if not Path(a.results).is_dir():
        print(f"error: results folder {a.results} does not exist", file=sys.stderr)
        return 2
    if a.benchmarks and not Path(a.benchmarks).is_dir():
        print(f"error: benchmarks folder {a.benchmarks} does not exist; set --benchmarks", file=sys.stderr)
        return 2
    runs, recs = rescore(Path(a.results), Path(a.benchmarks) if a.benchmarks else None)
    print(f"scored {recs} records in {runs} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
