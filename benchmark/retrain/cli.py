"""Retrain DARTS-space genotypes from scratch: `python -m benchmark.retrain`.

Genotypes from one finished search run (--run), from every finished run of a results folder
(--results, with --spaces/--methods), or given on the command line (--genotype: the DARTS
text form, or a published cell's name: DARTS_V1, DARTS_V2, SDARTS_RS, SDARTS_ADV; the SDARTS
authors' names c10_s5_random / c10_s5_pgd are accepted for the last two). `python -m
benchmark.retrain select --help`: the DARTS paper's selection protocol
(benchmark/retrain/select.py). Each (genotype, retraining seed)
is one run folder (see benchmark/retrain/job.py) that resumes after a kill and is skipped
once done. Exit codes: 0 all done, 1 some run failed or was refused, 2 bad input (nothing
was created).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from benchmark.harness.grid import UsageError, parse_names, parse_seeds
from benchmark.paths import DEFAULT_DATA_DIR, data_source, folder_problem
from benchmark.retrain.profiles import DATASETS, PROFILES, SETTABLE, resolve

# The spaces whose genotypes the DARTS evaluation network (spaces.darts.network) builds.
RETRAINABLE = ("darts", "darts-s1", "darts-s2", "darts-s3", "darts-s4")


def build_parser() -> argparse.ArgumentParser:
    from benchmark.harness.run_cli import add_execution_options
    p = argparse.ArgumentParser(
        prog="python -m benchmark.retrain", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python -m benchmark.retrain --results results --spaces darts --seeds 0-1 --profile smoke\n"
               "  python -m benchmark.retrain --genotype DARTS_V2 --seeds 0 --profile paper --devices cuda:0\n"
               "  python -m benchmark.retrain --genotype SDARTS_RS --genotype SDARTS_ADV --seeds 0 --profile paper")
    src = p.add_argument_group("what to retrain (exactly one)").add_mutually_exclusive_group(required=True)
    src.add_argument("--run", action="append", metavar="RUN_DIR",
                     help="a finished search run folder (its done.json genotype); repeatable")
    src.add_argument("--results", metavar="DIR", help="every finished run of the --spaces under this results folder")
    src.add_argument("--genotype", action="append", metavar="TEXT|NAME",
                     help="Genotype(normal=[...], normal_concat=[2, 3, 4, 5], reduce=[...], "
                          "reduce_concat=[2, 3, 4, 5]) or a published cell's name: DARTS_V1, DARTS_V2, "
                          "SDARTS_RS (alias c10_s5_random), SDARTS_ADV (alias c10_s5_pgd); repeatable")
    p.add_argument("--spaces", default="darts", help=f"with --results: comma list of {', '.join(RETRAINABLE)} (default darts)")
    p.add_argument("--methods", default=None, help="with --results: only these methods (default: all found)")
    p.add_argument("--seeds", default="0", help="retraining seeds (not the search seeds), e.g. 0-1 (default 0)")
    p.add_argument("--profile", default="paper", choices=PROFILES,
                   help="paper = the DARTS evaluation protocol (600 epochs); smoke = seconds on a CPU; "
                        "select = the DARTS paper's selection training (100 epochs on 45k, validated on the "
                        "held-out last 5k; select-smoke its smoke size); default paper. The whole selection "
                        "protocol: python -m benchmark.retrain select --help")
    p.add_argument("--epochs", type=int, help="override the profile's number of epochs")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override a protocol value; repeatable; keys: {', '.join(SETTABLE)}")
    p.add_argument("--dataset", default="cifar10", choices=tuple(DATASETS),
                   help="cifar10 (default) or cifar100 (a transfer target: --data is then the folder "
                        "holding torchvision's cifar-100-python/)")
    p.add_argument("--data", default=None,
                   help="CIFAR-10: the searches' .npz (with x_test/y_test) or torchvision root (default $NAS_DATA, "
                        f"else {DEFAULT_DATA_DIR}, where torchvision's official archive is downloaded once); "
                        "CIFAR-100: the folder holding cifar-100-python/")
    p.add_argument("--download", action="store_true",
                   help="download torchvision's official CIFAR-10 archive into the --data folder (md5-checked)")
    p.add_argument("--out", default="results",
                   help="where --genotype runs go: <out>/retrain/darts/<name>/seed-<r> (default results)")
    p.add_argument("--devices", default=None, help="cpu or cuda:0[,cuda:1...] (default cuda:0 if present, else cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads per run (recorded)")
    p.add_argument("--deterministic", action="store_true", help="CUDA: deterministic kernels (as benchmark/run.py)")
    add_execution_options(p)
    p.add_argument("--retry-failed", action="store_true", help="run again the runs that failed before")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--dry-run", action="store_true", help="print the runs and their configs, run nothing")
    return p


def genotype_of_run(run: Path) -> str:
    """The final genotype of a finished, whole search run (done.json), canonical; UsageError
    naming the run and what is wrong otherwise (benchmark/harness/assess.py: the worker's rules)."""
    from benchmark.harness.assess import assess
    from spaces.darts import GenotypeError, canonical
    if not run.is_dir():
        raise UsageError(f"{run}: no such folder (a finished search run is a folder with a done.json)")
    if not (run / "done.json").is_file():
        raise UsageError(f"{run}: not a finished search run (no done.json); finish it with "
                         "benchmark/run.py first")
    a = assess(run, "search", check_checkpoint=False)
    if a.status == "damaged":
        raise UsageError(f"{run}: a damaged search run ({'; '.join(a.problems)}); repair it with "
                         "benchmark/run.py --retry-failed (same options), or delete it")
    if a.mismatch:
        raise UsageError(f"{run}: its files disagree about whose run it is ({a.mismatch})")
    from benchmark.harness.records import DamagedFile, read_json
    try:
        d = read_json(run / "done.json")
    except (OSError, DamagedFile) as e:
        raise UsageError(f"{run}: done.json does not parse ({e})") from None
    if not isinstance(d, dict):
        raise UsageError(f"{run}: done.json is not a JSON object; repair the run with "
                         "benchmark/run.py --retry-failed")
    text = d.get("genotype") or d.get("final_genotype")
    try:
        return canonical(text)
    except GenotypeError as e:
        raise UsageError(f"{run}: its genotype is not a DARTS-space genotype: {e}") from None


def finished_runs(results: Path, spaces: list[str], methods: list[str] | None) -> tuple[list[Path], int]:
    """(finished run folders of those spaces/methods, number of unfinished ones left out)."""
    found, unfinished = [], 0
    for space in spaces:
        for run in sorted((results / space).glob("*/seed-*")):
            if not run.is_dir() or (methods and run.parent.name not in methods):
                continue
            if (run / "done.json").is_file():
                found.append(run)
            else:
                unfinished += 1
    return found, unfinished


def out_problem(out: Path) -> str:
    """Why retraining folders cannot be made under --out ('' if they can, as far as can be told)."""
    return folder_problem(out)


def command_line_genotype(text: str) -> str:
    from spaces.darts import ALIASES, PUBLISHED, GenotypeError, canonical
    name = ALIASES.get(text.strip(), text.strip())
    if name in PUBLISHED:
        return PUBLISHED[name]
    try:
        return canonical(text)
    except GenotypeError as e:
        raise UsageError(f"--genotype: {e} (or name a published cell: {', '.join([*PUBLISHED, *ALIASES])})") from None


def plan(args, skipped: list[str] | None = None) -> list:
    """Validate everything and build the jobs; raises UsageError (exit 2) before creating anything.
    With --results, a search run that cannot be retrained (damaged, ...) is named on stderr,
    appended to `skipped`, and left out; the others are planned."""
    skipped = [] if skipped is None else skipped
    from benchmark.harness.data import DataError
    from benchmark.harness.rundir import IdentityMismatch
    from benchmark.harness.run_cli import _cuda, execution
    from benchmark.retrain.data import load
    from benchmark.retrain.job import RetrainDir, RetrainJob, folder_for_genotype, folder_for_run

    seeds = parse_seeds(args.seeds)
    if args.epochs is not None and args.epochs < 1:
        raise UsageError(f"--epochs {args.epochs}: must be an integer >= 1")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads {args.threads}: must be an integer >= 1")
    sources: list[tuple[str, str, object]] = []   # (genotype, source, run folder or None)
    if args.run:
        for r in args.run:
            run = Path(r)
            try:
                sources.append((genotype_of_run(run), str(run), run))
            except UsageError as e:
                raise UsageError(f"--run {e}") from None
    elif args.results:
        results = Path(args.results)
        if not results.is_dir():
            raise UsageError(f"--results {results}: no such folder")
        spaces = parse_names(args.spaces, list(RETRAINABLE), "spaces")
        methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
        runs, unfinished = finished_runs(results, spaces, methods)
        if unfinished:
            print(f"note: {unfinished} unfinished search run(s) under {results} left out "
                  "(finish them with benchmark/run.py, then rerun this)", file=sys.stderr)
        if not runs:
            raise UsageError(f"--results {results}: no finished search runs of {', '.join(spaces)}"
                             + (f" ({', '.join(methods)})" if methods else "") + " found")
        for r in runs:   # a damaged run is named and left out; the others are retrained
            try:
                sources.append((genotype_of_run(r), str(r), r))
            except UsageError as e:
                skipped.append(str(e))
                print(f"note: left out {e}", file=sys.stderr)
        if not sources:
            raise UsageError(f"--results {results}: none of its finished search runs can be "
                             "retrained (see the notes above)")
    else:
        sources += [(command_line_genotype(g), "command line", None) for g in args.genotype]
        problem = out_problem(Path(args.out))
        if problem:
            raise UsageError(f"--out {args.out}: {problem}")

    configs = {}
    try:
        for genotype, _, _ in sources:
            for seed in seeds:
                configs[(genotype, seed)] = resolve(genotype, seed, args.profile, args.dataset,
                                                    args.epochs, args.sets)
    except ValueError as e:
        raise UsageError(str(e)) from None

    devices = (args.devices or ("cuda:0" if _cuda() else "cpu")).split(",")
    execution(args, devices)  # validates the execution options
    for d in (devices if args.backend == "local" else []):
        if d != "cpu" and not (d.startswith("cuda") and _cuda()):
            raise UsageError(f"--devices {d!r}: not available here; valid: cpu" +
                             (", cuda:N" if _cuda() else " (no CUDA device found)"))
    download = args.download
    if args.dataset == "cifar10":
        data_path, download, default = data_source(args.data, args.download)
        if default:
            print(f"note: CIFAR-10 from the default folder {data_path} (no --data or NAS_DATA given)",
                  file=sys.stderr)
    elif args.data is None:
        raise UsageError("no data given: set --data PATH (the folder holding cifar-100-python/)")
    else:
        data_path = args.data
    try:
        data = load(args.dataset, data_path, download)
    except DataError as e:
        raise UsageError(str(e)) from None
    held = {c.holdout for c in configs.values() if c.valid_on == "holdout"}
    for h in held:   # the held-out tail must leave images to train on
        if not 1 <= h < len(data.y_train):
            raise UsageError(f"--set holdout={h}: must be at least 1 and less than the "
                             f"{len(data.y_train)} training images of {data_path}")

    jobs = []
    for genotype, source, run in sources:
        for seed in seeds:
            cfg = dataclasses.replace(configs[(genotype, seed)], data_md5=data.md5)
            sel = cfg.selecting
            folder = (folder_for_run(run, args.dataset, seed, sel) if run is not None
                      else folder_for_genotype(Path(args.out), genotype, args.dataset, seed, sel))
            try:
                RetrainDir(folder).check_identity(cfg.to_json())
            except IdentityMismatch as e:
                raise UsageError(str(e)) from None
            jobs.append(RetrainJob(cfg, str(folder), str(data_path), source, devices[0], args.threads,
                                   not args.no_progress, args.retry_failed, download,
                                   args.deterministic))
    jobs = list({j.folder: j for j in jobs}.values())  # the same genotype twice: one run
    return jobs


def main(argv: list[str] | None = None) -> int:
    from benchmark.harness.backends import run_jobs
    from benchmark.harness.run_cli import _cuda, execution, summarize
    args = build_parser().parse_args(argv)
    if args.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    skipped: list[str] = []
    try:
        jobs = plan(args, skipped)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        for j in jobs:
            print(j.folder, json.dumps(j.config.to_json(), sort_keys=True))
        return 1 if skipped else 0
    devices = (args.devices or ("cuda:0" if _cuda() else "cpu")).split(",")
    outcomes = run_jobs(jobs, **execution(args, devices))   # Ctrl-C: benchmark/retrain/__main__.py
    outcomes = [j.execute(wait=True) if o.status == "busy" else o for j, o in zip(jobs, outcomes)]
    rc = summarize(outcomes)
    if skipped:
        print(f"{len(skipped)} search run(s) left out (named above)", file=sys.stderr)
    return max(rc, 1 if skipped else 0)
