"""Genotype -> benchmark figures, through the suite's compact tables.

Searches never open the official multi-GB APIs: they record genotypes, and a scorer built
from a compact table fills in accuracies, during the run when a table is found, or later
(`python -m benchmark.score`).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

if not __package__:  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

Scorer = Callable[[str, dict], "dict | None"]


def load_scorer(benchmark: str, benchmarks_dir: str | Path | None, hp: str = "200") -> tuple[Scorer | None, str]:
    """(scorer or None, a message: where the table came from or how to add one)."""
    if benchmark == "darts-train":  # no table: a DARTS-space genotype is scored by retraining it
        return None, ("DARTS-space genotypes are scored by training them from scratch "
                      "(the retraining command), not by a table")
    if benchmarks_dir is None:
        return None, "no benchmarks folder given (--benchmarks / NAS_BENCHMARKS / TORCH_HOME)"
    if benchmark == "nb201":
        from benchmark.nb201_table import NB201_HELP, find_nb201_table
        table = find_nb201_table(benchmarks_dir)
        if table is None:
            return None, f"no NB201 table in {benchmarks_dir}. {NB201_HELP}"

        def score(genotype: str, info: dict) -> dict:
            return {"hp": hp, **table.scores(genotype, hp=hp)}
        return score, f"NB201 table from {benchmarks_dir}"
    if benchmark == "nb101":
        from benchmark.nb101_table import NB101_HELP, find_nb101_table
        table = find_nb101_table(benchmarks_dir)
        if table is None:
            return None, f"no NB101 table in {benchmarks_dir}. {NB101_HELP}"
        return (lambda genotype, info: score_nb101(table, info)), f"NB101 table from {benchmarks_dir}"
    raise KeyError(f"unknown benchmark {benchmark!r}")


def score_nb101(table, info: dict) -> dict:
    """Mean of the 3 NB101 repeats at 108 epochs, and regret against the space's optimum.

    test_min_error is a minimum over single repeats while the error is a mean of three, so even
    the best architecture has a regret slightly above 0 (REFERENCE.md section 2).
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


def rescore(results: Path, benchmarks_dir: Path | None) -> tuple[int, int]:
    """Fill in `benchmark` for every record under `results`; returns (runs, records) scored."""
    from benchmark.config import SearchConfig
    from benchmark.records import read_json, read_jsonl, rewrite_jsonl
    from spaces import get_space
    runs = recs = 0
    scorers: dict[tuple[str, str], Scorer | None] = {}
    for cfg_path in sorted(results.glob("*/*/seed-*/config.json")):
        cfg = SearchConfig.from_json(read_json(cfg_path))
        kind = get_space(cfg.space).benchmark
        if (kind, cfg.score_hp) not in scorers:
            scorer, msg = load_scorer(kind, benchmarks_dir, cfg.score_hp)
            scorers[(kind, cfg.score_hp)] = scorer
            if scorer is None:
                print(f"skipping {kind} runs: {msg}", file=sys.stderr)
        scorer = scorers[(kind, cfg.score_hp)]
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
