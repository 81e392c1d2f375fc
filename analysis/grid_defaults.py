"""Defaults for run_all.sh, from the registries (so new methods and spaces are picked up).

  python analysis/grid_defaults.py methods           -> every registered method, comma-joined
  python analysis/grid_defaults.py spaces [BENCH]    -> registered spaces whose benchmark table
                                                        is found in BENCH (the others are named
                                                        on stderr with the reason)
"""
from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def scorable_spaces(bench: str | None) -> tuple[list[str], dict[str, str]]:
    """(spaces whose benchmark table is found, {skipped space: why})."""
    from benchmark.harness.scoring import load_scorer
    from spaces import available, get_space
    ok, skipped, found = [], {}, {}
    for name in available():
        try:
            kind = get_space(name).benchmark
        except Exception as e:  # a space whose code or data is missing must not sink the grid
            skipped[name] = f"cannot load the space ({type(e).__name__}: {e})"
            continue
        if kind not in found:
            try:
                found[kind] = load_scorer(name, bench if bench and Path(bench).is_dir() else None)
            except Exception as e:
                found[kind] = (None, f"{type(e).__name__}: {e}")
        scorer, msg = found[kind]
        if scorer is None:
            skipped[name] = f"no {kind} benchmark table: {msg}"
        else:
            ok.append(name)
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
            print(f"run_all: SKIPPING space{'s' if len(names) > 1 else ''} {', '.join(names)}: {why}",
                  file=sys.stderr)
        print(",".join(ok))
        return 0
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
