"""Run a grid of searches: `python benchmark/run.py --methods darts --spaces nb201 --seeds 0-9`.

Finished runs are skipped, unfinished ones resume from their last finished epoch, a failed
run is recorded in its folder and the others go on. A run that another process is working on
is waited for, then reported as that process left it. Exit codes: 0 all runs done, 1 some run
failed or was refused, 2 bad input (nothing was started).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import Callable

if not __package__:  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmark.harness.config import MAX_LOSS, PROFILES, resolve_config  # noqa: E402
from benchmark.harness.grid import MAX_RUNS, UsageError, make_grid, parse_names, parse_seeds  # noqa: E402
from benchmark.paths import default_benchmarks_dir  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    from methods.registry import available as methods
    from spaces import available as spaces
    p = argparse.ArgumentParser(
        prog="python benchmark/run.py", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: python benchmark/run.py --methods darts,darts-2nd --spaces nb201 "
               "--seeds 0-1 --profile smoke --data cifar10.npz --benchmarks ~/.torch")
    p.add_argument("--methods", required=True, help=f"comma list of: {', '.join(methods())}")
    p.add_argument("--spaces", default="nb201", help=f"comma list of: {', '.join(spaces())} (default nb201)")
    p.add_argument("--seeds", default="0", help="seeds, e.g. 0-9,12 (default 0)")
    p.add_argument("--profile", default="paper", choices=PROFILES,
                   help="paper = the published protocol; smoke = minutes on a CPU (default paper)")
    p.add_argument("--epochs", type=int, help="override the profile's number of search epochs")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field (e.g. batch_size=32, split=random-half, "
                        "supernet.C=8, method.num_samples=2); repeatable")
    p.add_argument("--out", default="results", help="results folder (default results/)")
    p.add_argument("--data", default=os.environ.get("NAS_DATA"),
                   help="CIFAR-10: an .npz (x_train, y_train, ...) or a torchvision root (default $NAS_DATA)")
    p.add_argument("--download", action="store_true", help="let torchvision download CIFAR-10 into --data")
    p.add_argument("--benchmarks", default=None,
                   help="folder of benchmark tables and cifar-split.txt "
                        "(default $NAS_BENCHMARKS, else $TORCH_HOME, else ~/.torch)")
    p.add_argument("--split-file", help="NB201 cifar-split.txt (default: found in --benchmarks)")
    p.add_argument("--devices", default=None, help="cpu or cuda:0[,cuda:1...] (default cuda:0 if present, else cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads per run, at least 1 (recorded)")
    p.add_argument("--log", default="none", metavar="none|tensorboard|wandb",
                   help="live curves of every epoch's scalars: tensorboard (<run>/tensorboard/, needs "
                        "the tensorboard package) or wandb (offline, <run>/wandb/, needs wandb); "
                        "not part of a run's identity (default none)")
    p.add_argument("--max-loss", type=float, default=MAX_LOSS, metavar="T",
                   help="a run whose mean train or valid loss over an epoch exceeds T has diverged: it "
                        "stops and is marked failed, like a NaN loss (default 1000; inf: off; recorded)")
    p.add_argument("--deterministic", action="store_true",
                   help="CUDA: deterministic kernels (torch.use_deterministic_algorithms, cuDNN "
                        "deterministic, no autotuning, CUBLAS_WORKSPACE_CONFIG=:4096:8); recorded "
                        "in provenance.json. Costs speed (some kernels are slower) and about 32 MiB of "
                        "GPU memory; an op without a deterministic kernel fails its run. "
                        "CPU runs with --threads fixed are deterministic without it")
    add_execution_options(p)
    p.add_argument("--retry-failed", action="store_true",
                   help="run again the runs that failed before, and recompute finished runs whose "
                        "files are damaged (from checkpoint.pt only where it matches the intact "
                        "records, else afresh)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--dry-run", action="store_true",
                   help="print the grid and resolved configs as they are planned; run and create nothing")
    return p


def add_execution_options(p: argparse.ArgumentParser) -> None:
    """--backend, --jobs, --per-device and the Slurm/Ray options (read by `execution`); shared
    with the retraining command."""
    g = p.add_argument_group("parallel and cluster execution (see benchmark/harness/backends.py)")
    g.add_argument("--backend", default="local", choices=("local", "slurm", "ray"),
                   help="local = this machine (default); slurm = a submitit job array; ray = a Ray cluster")
    g.add_argument("--jobs", type=int, default=1, help="local CPU runs at once; cores are split among them (default 1)")
    g.add_argument("--per-device", type=int, default=1, help="local runs packed on each GPU of --devices (default 1)")
    g.add_argument("--cpus-per-job", type=int, default=2, help="slurm/ray: cores (and torch threads) per run (default 2)")
    g.add_argument("--gpus-per-job", type=float, default=0,
                   help="slurm: GPUs per run (integer); ray: may be fractional, 0.25 packs 4 runs per GPU (default 0)")
    g.add_argument("--slurm-partition", help="slurm partition")
    g.add_argument("--slurm-time", type=int, default=24 * 60, help="slurm time limit per run in minutes (default 1440)")
    g.add_argument("--slurm-mem-gb", type=int, help="slurm memory per run in GB")
    g.add_argument("--slurm-parallelism", type=int, default=64, help="slurm array tasks running at once (default 64)")
    g.add_argument("--slurm-folder", default=None, help="submitit logs (default <out>/slurm-logs)")
    g.add_argument("--slurm-cluster", default=None, choices=("slurm", "local", "debug"),
                   help="submitit cluster (default: slurm if sbatch is found); 'local' runs the array here")
    g.add_argument("--ray-address", default=None, help="ray: 'auto' or host:port of a running cluster (default: start a local one)")


def plan(args, on_job: Callable | None = None) -> list:
    """Validate everything and build the jobs; raises UsageError (exit 2) on bad input.

    Work that does not depend on the seed (resolving and validating a config, loading the
    data, reading the split file) is done once per space and method, not once per run, so a
    grid of 10^5 runs plans in seconds. `on_job(job)` sees each job as it is planned (the
    dry run prints them). A dry run creates nothing; otherwise --out is created (and probed)
    only once everything has been checked."""
    from benchmark.harness.config import ConfigError, check_train_subset
    from benchmark.harness.data import DataError, find_split_file, make_split, split_source
    from benchmark.errors import BenchmarkFileError
    from benchmark.harness.records import DamagedFile
    from benchmark.harness.rundir import IdentityMismatch, RunDir
    from benchmark.harness.scoring import load_scorer, scored_from_files
    from benchmark.harness.worker import Job, cached_data
    from methods.registry import available as methods
    from spaces import available as spaces, get_space

    space_names = parse_names(args.spaces, spaces(), "spaces")
    method_names = parse_names(args.methods, methods(), "methods")
    seeds = parse_seeds(args.seeds)
    from benchmark.harness.live_log import unavailable
    if unavailable(args.log):  # unknown value, or its package missing: before anything runs
        raise UsageError(unavailable(args.log))
    runs = len(space_names) * len(method_names) * len(seeds)
    if runs > MAX_RUNS:
        raise UsageError(f"the grid has {runs:,} runs (spaces x methods x seeds); at most {MAX_RUNS:,} "
                         "are planned by one command: split the seeds over several commands")
    check_numbers(args)
    base = {}  # (space, method) -> the resolved config of seed 0; a seed changes only `seed`
    for space in space_names:
        for method in method_names:
            try:
                base[space, method] = resolve_config(space, method, 0, args.profile, args.epochs, args.sets)
            except (ValueError, TypeError, KeyError) as e:
                raise UsageError(f"{space}/{method}: {e}") from None
    devices = (args.devices or ("cuda:0" if _cuda() else "cpu")).split(",")
    execution(args, devices)  # validates the execution options
    for d in (devices if args.backend == "local" else []):  # cluster nodes have their own
        if d != "cpu" and not (d.startswith("cuda") and _cuda()):
            raise UsageError(f"--devices {d!r}: not available here; valid: cpu" +
                             (", cuda:N" if _cuda() else " (no CUDA device found)"))
    if args.data is None:
        raise UsageError("no CIFAR-10 given: set --data PATH or NAS_DATA (an .npz with x_train/"
                         "y_train/x_test/y_test, or a torchvision root folder with --download)")
    bench = args.benchmarks or str(default_benchmarks_dir())
    if args.benchmarks and not Path(args.benchmarks).is_dir():
        raise UsageError(f"--benchmarks {args.benchmarks}: no such folder")
    if os.environ.get("NAS_BENCHMARKS") and not args.benchmarks and not Path(bench).is_dir():
        raise UsageError(f"NAS_BENCHMARKS={bench}: no such folder")
    split_file = args.split_file or find_split_file(bench)
    if args.split_file and not Path(args.split_file).is_file():
        raise UsageError(f"--split-file {args.split_file}: no such file")
    bench_dir = bench if Path(bench).is_dir() else None
    split_path = Path(split_file) if split_file else None
    try:
        data = cached_data(str(args.data), args.download)
        first_of_kind: dict[str, str] = {}  # one check (and note) per scorer
        for name in space_names:
            first_of_kind.setdefault(get_space(name).benchmark, name)
        for kind, name in sorted(first_of_kind.items()):
            scorer, msg = load_scorer(name, bench_dir)
            if scorer is None:
                later = (f"\n      fill them in later with: python -m benchmark.score --results {args.out}"
                         if scored_from_files(name) else "")
                print(f"note: runs will record genotypes without {kind} figures: {msg}{later}",
                      file=sys.stderr)
        halves: dict[str, int] = {}  # split kind -> images per half (each split checked once)
        for (space, method), cfg in base.items():
            if cfg.split not in halves:
                a, b, _ = make_split(cfg.split, len(data.y_train), 0, split_path)
                halves[cfg.split] = min(len(a), len(b))
            try:
                check_train_subset(cfg, halves[cfg.split])
            except ConfigError as e:
                raise UsageError(f"{space}/{method}: {e}") from None
    except DataError as e:
        raise UsageError(str(e)) from None
    except BenchmarkFileError as e:
        raise UsageError(f"{e}\n  replace or remove that file (or point --benchmarks / --split-file "
                         "elsewhere); nothing was run") from None
    existing: dict[tuple[str, str], set[str]] = {}  # run folders already there, listed once
    for space, method in base:
        try:
            existing[space, method] = set(os.listdir(Path(args.out) / space / method))
        except OSError:
            existing[space, method] = set()
    jobs = []
    for spec in make_grid(space_names, method_names, seeds):
        cfg = dataclasses.replace(base[spec.space, spec.method], seed=spec.seed, data_md5=data.md5,
                                  split_source=split_source(base[spec.space, spec.method].split,
                                                            spec.seed, split_path))
        job = Job(spec, cfg, args.out, str(args.data), bench_dir, str(split_file) if split_file else None,
                  devices[0], args.threads, not args.no_progress, args.retry_failed, args.download,
                  deterministic=args.deterministic, max_loss=args.max_loss, log=args.log)
        if f"seed-{spec.seed}" in existing[spec.space, spec.method]:  # refuse before anything
            rd = RunDir(args.out, spec.space, spec.method, spec.seed)      # runs rather than mix results
            try:
                rd.check_identity(cfg.to_json())
                if not rd.config.exists():  # a checkpoint says what it was made under
                    rd.check_checkpoint_identity(cfg.to_json())
            except IdentityMismatch as e:
                raise UsageError(str(e)) from None
            except DamagedFile:
                pass  # a damaged folder fails that run only (the worker says how to repair it)
        if on_job is not None:
            on_job(job)
        jobs.append(job)
    if not getattr(args, "dry_run", False):
        out = Path(args.out)
        try:
            out.mkdir(parents=True, exist_ok=True)
            probe = out / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as e:
            raise UsageError(f"--out {out}: not writable ({e.strerror}); choose another folder") from None
    return jobs


def check_numbers(args) -> None:
    """Every number given on the command line, in its range (exit 2 before anything runs)."""
    if args.epochs is not None and args.epochs < 1:
        raise UsageError(f"--epochs must be at least 1, got {args.epochs}")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be at least 1 (torch CPU threads per run), got {args.threads}")
    if not args.max_loss > 0:  # nan fails this too
        raise UsageError(f"--max-loss must be a number > 0 (inf: no threshold), got {args.max_loss}")
    if args.slurm_mem_gb is not None and args.slurm_mem_gb < 1:
        raise UsageError(f"--slurm-mem-gb must be at least 1, got {args.slurm_mem_gb}")


def execution(args, devices: list[str]) -> dict:
    """Backend keyword arguments for `benchmark.harness.backends.run_jobs`; raises UsageError."""
    from benchmark.harness.backends import Placement, RayOptions, SlurmOptions
    for name in ("jobs", "per_device", "cpus_per_job", "slurm_time", "slurm_parallelism"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if not args.gpus_per_job >= 0 or args.gpus_per_job == float("inf"):
        raise UsageError(f"--gpus-per-job must be 0 or more, got {args.gpus_per_job}")
    if args.backend == "slurm" and args.gpus_per_job != int(args.gpus_per_job):
        raise UsageError("--gpus-per-job must be a whole number with --backend slurm "
                         "(fractional GPUs are a Ray feature; or use --per-device locally)")
    if args.backend == "slurm" and args.slurm_cluster in (None, "slurm"):
        import shutil
        if shutil.which("sbatch") is None:  # else submitit would quietly run all runs here
            raise UsageError("--backend slurm: no 'sbatch' on this machine; run on the cluster's "
                             "login node, or add --slurm-cluster local to try the array here")
    cpu = all(d == "cpu" for d in devices)
    if args.backend == "local" and args.jobs > 1 and not cpu:
        raise UsageError("--jobs is for CPU runs; on GPUs use --per-device K (runs per GPU)")
    if args.backend == "local" and args.per_device > 1 and cpu:
        raise UsageError("--per-device packs runs on GPUs; on CPU use --jobs N")
    placement = Placement(tuple(devices), args.jobs if cpu else args.per_device)
    slurm = SlurmOptions(args.slurm_folder or str(Path(args.out) / "slurm-logs"), args.slurm_partition,
                         args.slurm_time, int(args.gpus_per_job), args.cpus_per_job, args.slurm_mem_gb,
                         args.slurm_parallelism, args.slurm_cluster)
    ray = RayOptions(args.ray_address, args.cpus_per_job, args.gpus_per_job)
    for lib, backend in (("submitit", "slurm"), ("ray", "ray")):
        if args.backend == backend:
            try:
                __import__(lib)
            except ImportError:
                raise UsageError(f"--backend {backend} needs the '{lib}' package: pip install {lib}") from None
    return dict(backend=args.backend, placement=placement, slurm=slurm, ray=ray)


def _cuda() -> bool:
    import torch
    return torch.cuda.is_available()


def main(argv: list[str] | None = None) -> int:
    from benchmark.harness.backends import run_jobs
    from benchmark.harness.worker import wait_for_busy
    args = build_parser().parse_args(argv)
    if args.deterministic:  # must precede CUDA initialisation
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    try:
        jobs = plan(args, on_job=_print_job if args.dry_run else None)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # a dry run piped into `head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit's flush
        return 0
    if args.dry_run:
        return 0
    devices = (args.devices or ("cuda:0" if _cuda() else "cpu")).split(",")
    outcomes = wait_for_busy(jobs, run_jobs(jobs, **execution(args, devices)))
    return summarize(outcomes)


def _print_job(job) -> None:
    """A dry run prints each run as it is planned (a big grid shows progress at once)."""
    import json
    print(job.spec.label, json.dumps(job.config.to_json(), sort_keys=True))


def summarize(outcomes) -> int:
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
        if not o.ok:
            print(f"{o.label}: {o.status}: {o.message}", file=sys.stderr)
        elif o.notes:
            print(f"{o.label}: {o.status}: {o.notes}", file=sys.stderr)
    print("summary: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
