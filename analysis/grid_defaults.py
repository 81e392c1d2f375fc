"""Defaults for run_all.sh, from the registries (so new methods and spaces are picked up).

  python analysis/grid_defaults.py methods           -> every registered method, comma-joined
  python analysis/grid_defaults.py spaces [BENCH]    -> registered spaces to run: those scored by
                                                        retraining (darts), and those whose
                                                        benchmark table is found in BENCH (the
                                                        others are named on stderr, one line per
                                                        missing table with the command that
                                                        builds it)
  python analysis/grid_defaults.py paper-vs-fair     -> the Markdown table of what each method's
                                                        `paper` profile changes against `fair`
                                                        (docs/profiles.md holds it; a test
                                                        checks the page against this output)
"""
from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def scorable_spaces(bench: str | None) -> tuple[list[str], dict[str, str]]:
    """(spaces to run by default, {skipped space: why}). A space scored by runs of its own (the
    DARTS space: by retraining its genotypes) is always run; a space scored from a benchmark
    table is run when its table is found in `bench` (default: benchmark.paths), else skipped
    with the command that builds the table."""
    from benchmark.harness.scoring import load_scorer, scored_from_files, table_help
    from benchmark.paths import default_benchmarks_dir
    from spaces import available, get_space
    folder = Path(bench).expanduser() if bench else default_benchmarks_dir()
    ok, skipped, found = [], {}, {}
    for name in available():
        try:
            if not getattr(get_space(name), "default_grid", True):
                continue   # opt-in with --spaces (the RobustDARTS spaces darts-s1..s4)
            kind = get_space(name).benchmark
            from_table = scored_from_files(name)
        except Exception as e:  # a space whose code or data is missing must not sink the grid
            skipped[name] = f"cannot load the space ({type(e).__name__}: {e})"
            continue
        if not from_table:
            ok.append(name)
            continue
        if kind not in found:  # one look per table, whatever number of spaces it scores
            try:
                scorer, _ = load_scorer(name, str(folder) if folder.is_dir() else None)
                found[kind] = None
                if scorer is None:
                    table, command = table_help(name)
                    out = "" if folder == default_benchmarks_dir() else f" --out {folder}"
                    found[kind] = f"no {table} table in {folder}; get it with: {command}{out}"
            except Exception as e:  # a damaged table
                found[kind] = f"cannot read its {kind} table in {folder}: {type(e).__name__}: {e}"
        if found[kind] is None:
            ok.append(name)
        else:
            skipped[name] = found[kind]
    return ok, skipped


def main(argv: list[str]) -> int:
    if argv[:1] == ["methods"]:
        from methods.registry import available
        print(",".join(available()))
        return 0
    if argv[:1] == ["spaces"]:
        ok, skipped = scorable_spaces(argv[1] if len(argv) > 1 else None)
        by_reason: dict[str, list[str]] = {}
        for name, why in skipped.items():  # one message per reason, naming all its spaces
            by_reason.setdefault(why, []).append(name)
        for why, names in by_reason.items():
            print(f"run_all: skipping {', '.join(names)}: {why}", file=sys.stderr)
        print(",".join(ok))
        return 0
    if argv[:1] == ["paper-vs-fair"]:
        from analysis.tables import paper_vs_fair, to_markdown
        print(to_markdown(paper_vs_fair()), end="")
        return 0
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
