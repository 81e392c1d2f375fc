"""The DARTS paper's selection protocol: `python -m benchmark.retrain select`.

Liu, Simonyan & Yang, DARTS (ICLR 2019), Sec. 3.2 and Table 1: the
search is run 4 times (seeds); each derived cell is trained from
scratch for a short period (100 epochs on CIFAR-10) and the cell with the best validation
accuracy is kept; the table reports mean ± std of that one cell trained from scratch for 600
epochs several times (10 seeds, as Li & Talwalkar, UAI 2019, describe that table).

Per method (its finished search runs under --results/darts/<method>/seed-*), in order:
 1. selection: each run's genotype trained under the `select` profile (benchmark/retrain/
    profiles.py: 100 epochs on the first 45k training images, validated on the held-out last
    5k; never the test set) in <run>/retrain-select/seed-<s>/;
 2. the winner, the highest validation accuracy (ties: the lowest search seed), written with
    every candidate's accuracy to --results/darts/<method>/selection.json
    (selection-<dataset>.json for another dataset);
 3. the final retraining of the winner under `paper` (600 epochs) with --final-seeds, in the
    winner run's own retrain/seed-<r>/ (the folders `python -m benchmark.retrain --results`
    uses, so a retraining both need is made once).
Every training is a retraining job (benchmark/retrain/job.py) on the backends of every other
job (--backend local|slurm|ray): resumable after a kill, skipped once done. A finished
selection is never redone: a rerun reads selection.json; one made over other candidates or
settings is refused (exit 2) unless --reselect, which keeps the old file as
selection.json.replaced-<UTC time>. A damaged selection.json fails its own method only (named,
left as it is). Exit codes: 0 all done, 1 some run failed (named), 2 bad
input (nothing created).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmark.harness.grid import UsageError, parse_seeds
from benchmark.retrain.profiles import DATASETS, FINAL_OF, SELECT_OF, SETTABLE, resolve

SPACE = "darts"
RULE = "highest validation accuracy (selection_acc); ties: the lowest search seed"
PROTOCOL = "selected"   # the identifier published.csv's `protocol` column uses for it


def selection_name(dataset: str = "cifar10") -> str:
    return "selection.json" if dataset == "cifar10" else f"selection-{dataset}.json"


def selection_file(results: Path, method: str, dataset: str = "cifar10", space: str = SPACE) -> Path:
    return Path(results) / space / method / selection_name(dataset)


def build_parser() -> argparse.ArgumentParser:
    from benchmark.harness.run_cli import add_execution_options
    p = argparse.ArgumentParser(
        prog="python -m benchmark.retrain select", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python -m benchmark.retrain select --results results --methods darts --final-seeds 0-9\n"
               "  python -m benchmark.retrain select --results results --profile smoke --final-seeds 0-1 --threads 1")
    p.add_argument("--results", required=True, metavar="DIR", help="the results folder of the searches")
    p.add_argument("--methods", default=None, help="comma list (default: every method with finished darts-space runs)")
    p.add_argument("--profile", default="paper", choices=tuple(SELECT_OF),
                   help="the final retraining's profile: paper (selection under `select`) or smoke "
                        "(selection under `select-smoke`); default paper")
    p.add_argument("--final-seeds", default="0-9",
                   help="retraining seeds of the winner's final training (default 0-9: 10, as Li & Talwalkar describe)")
    p.add_argument("--select-seed", type=int, default=0, help="the retraining seed of each candidate's selection training (default 0)")
    p.add_argument("--select-set", dest="select_sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a selection-training value, e.g. epochs=50; valid_on=test selects on the "
                        "TEST set as the DARTS code's train.py does (named on purpose; not a clean selection)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override a final-retraining value; keys: {', '.join(SETTABLE)}")
    p.add_argument("--epochs", type=int, help="override the final retraining's epochs")
    p.add_argument("--dataset", default="cifar10", choices=tuple(DATASETS), help="as python -m benchmark.retrain")
    p.add_argument("--data", default=None, help="as python -m benchmark.retrain")
    p.add_argument("--download", action="store_true", help="as python -m benchmark.retrain")
    p.add_argument("--devices", default=None, help="cpu or cuda:0[,cuda:1...]")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads per run (recorded)")
    p.add_argument("--deterministic", action="store_true", help="CUDA: deterministic kernels")
    add_execution_options(p)
    p.add_argument("--retry-failed", action="store_true", help="run again the runs that failed before")
    p.add_argument("--reselect", action="store_true",
                   help="choose again where selection.json was made over other candidates or settings "
                        "(the old file is kept as selection.json.replaced-<time>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--dry-run", action="store_true", help="print the selection runs and the state of each selection")
    return p


def _ns(args, **over) -> argparse.Namespace:
    """A namespace for benchmark.retrain.cli.plan: this command's shared options plus `over`."""
    d = dict(vars(args), run=None, results=None, genotype=None, spaces=SPACE, out=args.results)
    d.update(over)
    return argparse.Namespace(**d)


def methods_found(results: Path) -> list[str]:
    return sorted(m.name for m in (results / SPACE).glob("*") if m.is_dir()
                  and any((r / "done.json").is_file() for r in m.glob("seed-*")))


def _read_done(folder: str) -> dict:
    from benchmark.harness.assess import assess
    a = assess(folder, "retrain")
    if a.status != "done" or a.mismatch:
        raise ValueError(f"{folder}: not a whole finished retraining ({a.status}"
                         + (f"; {a.mismatch}" if a.mismatch else "") + ")")
    d = json.loads((Path(folder) / "done.json").read_text())
    if not isinstance(d.get("selection_acc"), (int, float)):
        raise ValueError(f"{folder}/done.json has no selection_acc (not a selection run)")
    return d


def candidates_of(jobs) -> list[dict]:
    """One entry per selection job (finished): search run, seed, genotype, accuracy; ValueError
    naming the first folder that is not a whole finished selection run."""
    from benchmark.harness.assess import folder_seed
    out = []
    for j in jobs:
        d = _read_done(j.folder)
        run = Path(j.folder).parents[1]
        out.append({"search_seed": folder_seed(run), "run": run.name, "search_run": str(run),
                    "genotype": j.config.genotype,
                     "folder": str(j.folder), "selection_acc": float(d["selection_acc"]),
                     "selected_on": d.get("selected_on")})
    return out


def pick(candidates: list[dict]) -> dict:
    """The winner (RULE)."""
    if not candidates:
        raise ValueError("no candidates")
    return min(candidates, key=lambda c: (-c["selection_acc"], c["search_seed"] if c["search_seed"] is not None else 1 << 30,
                                          c["search_run"]))


def _settings(cfg) -> dict:
    """A selection job's settings without the per-candidate fields: what selection.json records
    and a rerun must match."""
    return {k: v for k, v in cfg.to_json().items() if k != "genotype"}


def read_selection(path: Path) -> dict | None:
    """selection.json, None when absent; ValueError naming the file when it is damaged."""
    if not path.exists():
        return None
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is damaged ({type(e).__name__}: {e}); delete it or rerun with --reselect") from None
    if not isinstance(d, dict) or not isinstance(d.get("winner"), dict) or not isinstance(d.get("candidates"), list):
        raise ValueError(f"{path} is damaged (no winner/candidates); delete it or rerun with --reselect")
    return d


def _same(old: dict, runs: list[str], settings: dict) -> str:
    """Why selection.json `old` does not hold for these candidates and settings ('' if it does)."""
    from benchmark.harness.rundir import identity_differences
    was = sorted(str(c.get("run")) for c in old["candidates"])
    if was != sorted(runs):
        return f"it chose among {len(was)} search run(s) ({', '.join(was)}), now {len(runs)} are finished"
    diff = identity_differences(old.get("settings") or {}, settings)
    return f"it was made under other settings ({diff})" if diff else ""


def plan(args) -> tuple[dict, list[str]]:
    """{method: (selection jobs, selection file, its recorded selection or None)} and the notes
    of left-out search runs; UsageError (exit 2) before anything is created."""
    from benchmark.retrain import cli
    try:
        final_seeds = parse_seeds(args.final_seeds)
    except UsageError as e:
        raise UsageError(str(e).replace("--seeds", "--final-seeds")) from None
    if args.select_seed < 0:
        raise UsageError(f"--select-seed {args.select_seed}: must be an integer >= 0")
    if args.epochs is not None and args.epochs < 1:
        raise UsageError(f"--epochs {args.epochs}: must be an integer >= 1")
    try:   # the final settings, checked now: nothing may be created before a bad value is named
        from spaces.darts import DARTS_V2
        final = resolve(DARTS_V2, final_seeds[0], args.profile, args.dataset, args.epochs, args.sets)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if final.selecting:
        raise UsageError("--set valid_on: the final retraining reports the test error; set the "
                         "selection's validation with --select-set")
    results = Path(args.results)
    if not results.is_dir():
        raise UsageError(f"--results {results}: no such folder")
    methods = ([m.strip() for m in args.methods.split(",") if m.strip()] if args.methods
               else methods_found(results))
    if not methods:
        raise UsageError(f"--results {results}: no finished {SPACE}-space search runs found")
    out, notes = {}, []
    for m in methods:
        path = selection_file(results, m, args.dataset)
        try:
            old = read_selection(path)
        except ValueError as e:   # a damaged file fails its own method only; named, left as it is
            print(f"note: left out {m}: {e}", file=sys.stderr)
            notes.append(str(e))
            continue
        skipped: list[str] = []
        try:
            jobs = cli.plan(_ns(args, results=str(results), methods=m, seeds=str(args.select_seed),
                                profile=SELECT_OF[args.profile], sets=args.select_sets,
                                epochs=None), skipped)
        except UsageError as e:
            raise UsageError(f"{m}: {e}") from None
        if not all(j.config.selecting for j in jobs):
            raise UsageError("--select-set valid_on=none: a selection needs valid_on=holdout or valid_on=test")
        notes += skipped
        if old is not None:
            why = _same(old, [Path(j.folder).parents[1].name for j in jobs], _settings(jobs[0].config))
            if why and not args.reselect:
                raise UsageError(f"{path}: {why}; rerun with --reselect to choose again (the "
                                 "candidates already trained are kept) or use the same options")
            if why:
                old = None
        out[m] = (jobs, path, old)
    return out, notes


def write_selection(path: Path, method: str, dataset: str, jobs, final_profile: str) -> dict:
    """Pick the winner among the finished selection jobs and write selection.json (atomically;
    a file it replaces is kept as .replaced-<time>)."""
    from benchmark.harness.records import atomic_write_json
    cands = candidates_of(jobs)
    win = pick(cands)
    d = {"space": SPACE, "method": method, "dataset": dataset, "protocol": PROTOCOL,
         "source": "Liu et al., DARTS, ICLR 2019, Sec. 3.2 and Table 1 (benchmark/retrain/select.py)",
         "rule": RULE, "settings": _settings(jobs[0].config), "candidates": cands, "winner": win,
         "final_profile": final_profile, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if path.exists():
        path.replace(path.with_name(f"{path.name}.replaced-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"))
    atomic_write_json(path, d)
    return d


def main(argv: list[str] | None = None) -> int:
    from benchmark.harness.backends import run_jobs
    from benchmark.harness.run_cli import _cuda, execution, summarize
    from benchmark.retrain import cli
    args = build_parser().parse_args(argv)
    if args.deterministic:
        import os
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    try:
        planned, notes = plan(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        for m, (jobs, path, old) in planned.items():
            state = f"winner {old['winner']['search_run']}" if old else "not selected yet"
            print(f"{m}: {path} ({state})")
            for j in jobs:
                print(j.folder, json.dumps(j.config.to_json(), sort_keys=True))
        return 1 if notes else 0
    devices = (args.devices or ("cuda:0" if _cuda() else "cpu")).split(",")
    ex = execution(_ns(args), devices)
    todo = [j for m, (jobs, _, old) in planned.items() if old is None for j in jobs]
    outcomes = run_jobs(todo, **ex) if todo else []
    outcomes = [j.execute(wait=True) if o.status == "busy" else o for j, o in zip(todo, outcomes)]
    problems = 0
    final_jobs = []
    for m, (jobs, path, old) in planned.items():
        sel = old
        if sel is None:
            try:
                sel = write_selection(path, m, args.dataset, jobs, args.profile)
            except ValueError as e:   # a candidate unfinished or failed: no winner yet
                print(f"{m}: no selection yet: {e}; rerun this command to continue", file=sys.stderr)
                problems += 1
                continue
        w = sel["winner"]
        print(f"{m}: selected {w['search_run']} (validation accuracy {w['selection_acc']:.2f}% on "
              f"{w.get('selected_on')}; {len(sel['candidates'])} candidates) -> {path}", file=sys.stderr)
        try:
            final_jobs += cli.plan(_ns(args, run=[str(path.parent / str(w["run"]))], seeds=args.final_seeds,
                                       profile=args.profile, methods=None))
        except UsageError as e:   # the winner's run changed since (damaged, refused): name it
            print(f"{m}: the winner cannot be retrained: {e}", file=sys.stderr)
            problems += 1
    fouts = run_jobs(final_jobs, **ex) if final_jobs else []
    fouts = [j.execute(wait=True) if o.status == "busy" else o for j, o in zip(final_jobs, fouts)]
    rc = summarize(outcomes + fouts)
    if notes:
        print(f"{len(notes)} search run(s) left out of the selection (named above)", file=sys.stderr)
    return max(rc, 1 if (problems or notes) else 0)
