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
# message saying where the figures come from or how to get them. Each module also names its
# training schedules, `HPS` (the valid `score_hp` values), and a table lookup its table's name
# and the command that builds it, `TABLE` and `GET` (see `table_help`). Adding a benchmark = one
# module and one line here; the harness never branches on a space or benchmark name.
SCORERS: dict[str, str] = {
    "nb201": "benchmark.tabular.nb201_scorer:load",
    "nb101": "benchmark.tabular.nb101_scorer:load",
    "darts-train": "benchmark.retrain.scorer:load",   # no lookup: scored by retraining
}


def score_hps(space) -> tuple[str, ...]:
    """The `score_hp` values the space's scorer knows (its module's `HPS`)."""
    import importlib
    from spaces import get_space
    if isinstance(space, str):
        space = get_space(space)
    if space.benchmark not in SCORERS:
        raise KeyError(f"space {space.name!r} names an unknown scorer {space.benchmark!r}; "
                       f"registered: {', '.join(SCORERS)}")
    return tuple(importlib.import_module(SCORERS[space.benchmark].split(":")[0]).HPS)


def _loader(space):
    import importlib
    from spaces import get_space
    if isinstance(space, str):
        space = get_space(space)
    if space.benchmark not in SCORERS:
        raise KeyError(f"space {space.name!r} names an unknown scorer {space.benchmark!r}; "
                       f"registered: {', '.join(SCORERS)}")
    module, func = SCORERS[space.benchmark].split(":")
    return space, getattr(importlib.import_module(module), func)


def table_help(space) -> tuple[str, str]:
    """(the table's name, the command that builds it) for a space scored from a table."""
    import importlib
    space, _ = _loader(space)
    module = importlib.import_module(SCORERS[space.benchmark].split(":")[0])
    return (getattr(module, "TABLE", f"{space.benchmark} benchmark"),
            getattr(module, "GET", "python -m benchmark.prepare --help"))


def scored_from_files(space) -> bool:
    """Whether the space's figures come from benchmark files (then `python -m benchmark.score`
    can fill them in once the files are there), not from a run of their own (retraining)."""
    return getattr(_loader(space)[1], "needs_benchmarks", True)


def load_scorer(space, benchmarks_dir: str | Path | None, hp: str = "200") -> tuple[Scorer | None, str]:
    """(scorer or None, a message: where the figures come from or how to add them) for a space
    (its name or the space object)."""
    space, loader = _loader(space)
    if benchmarks_dir is None and getattr(loader, "needs_benchmarks", True):
        return None, "no benchmarks folder given (--benchmarks / NAS_BENCHMARKS / TORCH_HOME)"
    return loader(space, benchmarks_dir, hp)


def rescore(results: Path, benchmarks_dir: Path | None, log=None) -> tuple[int, int, list[str]]:
    """Fill in `benchmark` for every record under `results`; returns (runs, records) scored and
    the damaged run files skipped (each also said through `log`, one line). A run another process
    holds is waited for, saying whose it is. Unfinished runs are scored as far as they got (a line
    torn by a kill is dropped, as resuming would); a run with any other unreadable line, a gap in
    its epochs, or a config.json that is not a run's config is left untouched."""
    # config.json read as a plain namespace: benchmark.harness.config imports this module (to
    # check score_hp against the scorers' schedules), so importing it back would make a cycle.
    from types import SimpleNamespace
    from benchmark.harness.records import DamagedFile, read_json, rewrite_jsonl, scan_jsonl
    from benchmark.harness.rundir import RunDir, records_problems
    from spaces import space_for
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    runs = recs = 0
    skipped: list[str] = []
    scorers: dict[tuple[str, str], Scorer | None] = {}
    for cfg_path in sorted(results.glob("*/*/seed-*/config.json")):
        try:
            cfg, bad = SimpleNamespace(**read_json(cfg_path)), ""
            if not (isinstance(cfg.space, str) and isinstance(cfg.score_hp, str)):
                raise ValueError("space and score_hp must be text")
        except DamagedFile as e:
            bad = str(e)
        except (TypeError, KeyError, AttributeError, ValueError) as e:
            bad = f"{cfg_path}: not a run's config ({type(e).__name__}: {e})"
        if bad:
            skipped.append(bad)
            log(f"skipped {bad}")
            continue
        key = (cfg.space, cfg.score_hp)
        if key not in scorers:
            scorer, msg = load_scorer(cfg.space, benchmarks_dir, cfg.score_hp)
            scorers[key] = scorer
            if scorer is None:
                log(f"skipping {cfg.space} runs: {msg}")
        scorer = scorers[key]
        if scorer is None:
            continue
        rd = RunDir.at(cfg_path.parent)
        lock = rd.wait_lock("benchmark.score: rescoring", "score", log)
        try:
            rd.remove_stale_temp_files()  # a killed writer's (e.g. a killed score's); we hold the lock
            scan = scan_jsonl(rd.epochs)
            finished = rd.done.exists()
            problems = rd.problems(scan) if finished else records_problems(scan, None, False)
            if not problems and any(not isinstance(r.get("genotype"), str) for r in scan.rows):
                problems = ["a record without a genotype"]
            if problems:
                skipped.append(f"{rd.epochs}: {'; '.join(problems)}")
                log(f"skipped {skipped[-1]} (left untouched; repair: python benchmark/run.py ... "
                    "--retry-failed)")
                continue
            rows = scan.rows
            space = space_for(cfg.space, cfg.supernet if isinstance(getattr(cfg, "supernet", None), dict) else {})
            for r in rows:
                r["benchmark"] = scorer(r["genotype"], r.get("genotype_info", {}))
                if r.get("selected_genotype"):
                    sel = r["selected_genotype"]
                    r["selected_benchmark"] = scorer(sel, space.genotype_info(sel))
            rewrite_jsonl(rd.epochs, rows)
        finally:
            rd.unlock(lock)
        runs, recs = runs + 1, recs + len(rows)
    return runs, recs, skipped


def main(argv: list[str] | None = None) -> int:
    import os
    from benchmark.errors import BenchmarkFileError
    p = argparse.ArgumentParser(
        prog="python -m benchmark.score",
        description="Fill in benchmark accuracies of every recorded epoch. Exit codes: 0 every "
                    "readable run scored; 1 some run was skipped because a file of it is damaged "
                    "(each named on stderr; the others are scored); 2 bad input (nothing scored).")
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
    try:
        runs, recs, skipped = rescore(Path(a.results), Path(a.benchmarks) if a.benchmarks else None)
    except BenchmarkFileError as e:
        print(f"error: {e}\n  replace or remove that file (rebuild it with python -m benchmark.prepare), "
              "or point --benchmarks elsewhere", file=sys.stderr)
        return 2
    print(f"scored {recs} records in {runs} runs" +
          (f"; skipped {len(skipped)} damaged run(s) (named above)" if skipped else ""))
    return 1 if skipped else 0


if __name__ == "__main__":
    sys.exit(main())
