"""GPU checks in one command: CUDA correctness, search-step speed against the NB201 authors'
model, packed seeds on one GPU, and the first paper-scale DARTS search. Prints one table
(and writes it as JSON with --json). Each part is sized to finish within 10 minutes on one
GPU; run them one at a time with --part.

Parts:
  correctness   `pytest -m device` (tests/harness/test_device.py, test_determinism.py,
                test_fault_injection.py): supernet forward/backward on CUDA vs the CPU, every
                method's smoke run on CUDA, kill-and-resume identical with --deterministic.
                On CUDA the cuda cases run; on a CPU the cpu cases (the CPU reference).
  speed         one DARTS-V1 search step (weights + architecture; C=16, N=5, batch 64) of the
                fast supernet (fp32, bf16 autocast, torch.compile), the NB201 authors' model
                (xautodl's TinyNetworkDarts) and our reference; images/s, peak memory, ratio
                to the authors' model (goal on CUDA: >= 2x).
  packing       images/s of K = 1, 2, 4, 8 runs stepping at once on one GPU, as
                `benchmark/run.py --per-device K` places them (K processes), relative to one
                run, and the same under CUDA MPS where `nvidia-cuda-mps-control` exists
                (goal: K runs >= 0.7*K one run's). Needs CUDA.
  paper-search  DARTS (1st order) on NB201 with the `paper` profile, seed 0, through
                benchmark/run.py; stops after --budget-minutes and resumes on the next call.
                Reports wall time, the final cell and its NB201 CIFAR-10 test accuracy next to
                the NB201 paper's 54.30 for DARTS-V1. Needs CUDA.

Without CUDA: correctness and speed run on the CPU (use --quick for a small size), packing
and paper-search are skipped with the reason (pass --device cpu to run them on the CPU
anyway: a check of the code path, not of the goals).

Exit codes: 0 every requested part ran and every check and goal passed; 1 a check failed,
a goal was missed or a part crashed; 2 bad input (nothing was run); 3 nothing failed but
something requested did not run (a part or a case skipped, e.g. no CUDA, or the paper
search is not finished yet: run the same command again).

    python -m benchmark.measure.gpu_check [--part speed,packing] [--quick] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

if not __package__:  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

REPO = Path(__file__).resolve().parents[2]
PARTS = ("correctness", "speed", "packing", "paper-search")
CUDA_ONLY = {"packing", "paper-search"}
SPEED_GOAL = 2.0      # fast supernet vs the authors' model, same GPU (issue 15)
PACKING_GOAL = 0.7    # K packed runs give at least 0.7*K one run's images/s
DARTS_V1_NB201_C10_TEST = 54.30  # NB201 paper (Dong & Yang, ICLR 2020), Table 5, DARTS-V1
CORRECTNESS_FILES = ("tests/harness/test_device.py", "tests/harness/test_determinism.py", "tests/harness/test_fault_injection.py")
STATUSES = ("pass", "fail", "missed", "measured", "skipped", "error")
EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_SKIPPED = 0, 1, 2, 3


@dataclass
class Row:
    """One line of the table. status: pass / fail (a check), met goal -> pass, missed goal ->
    missed, a figure without a goal -> measured, skipped (with the reason in note), error (the
    part crashed)."""
    part: str
    check: str
    status: str
    value: float | str | None = None
    unit: str = ""
    goal: str = ""
    device: str = ""
    note: str = ""
    extra: dict = field(default_factory=dict)


@dataclass
class Sizes:
    C: int
    N: int
    batch: int
    repeats: int
    warmup: int
    pack: tuple[int, ...]
    pack_steps: int


FULL = Sizes(16, 5, 64, 5, 3, (1, 2, 4, 8), 20)
QUICK = Sizes(8, 1, 16, 2, 1, (1, 2), 2)


# ----- correctness ---------------------------------------------------------------------------
def _junit(path: Path) -> list[dict]:
    """Per test case: name, outcome (passed / failed / skipped) and the message."""
    out = []
    for tc in ET.parse(path).getroot().iter("testcase"):
        outcome, msg = "passed", ""
        for child in tc:
            if child.tag in ("failure", "error"):
                outcome, msg = "failed", (child.get("message") or "")[:300]
            elif child.tag == "skipped":
                outcome, msg = "skipped", (child.get("message") or "")[:300]
        out.append({"name": f"{tc.get('classname', '')}::{tc.get('name', '')}", "outcome": outcome,
                    "message": msg})
    return out


def correctness(args, sizes: Sizes) -> list[Row]:
    on_cuda = args.device.startswith("cuda")
    case = "cuda" if on_cuda else "cpu"
    files = ["tests/harness/test_device.py"] if args.quick else list(CORRECTNESS_FILES)
    select = f"{case} and supernet" if args.quick else case
    rows = []
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        xml = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "-m", "device", "-k", select, "-q", "-p", "no:cacheprovider",
               f"--junitxml={xml}", *files]
        env = {**os.environ, **_data_env(args)}
        if on_cuda:  # the tests name cuda:0: make it the GPU asked for
            env["CUDA_VISIBLE_DEVICES"] = _cuda_index(args.device, env.get("CUDA_VISIBLE_DEVICES"))
        try:
            r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=args.part_timeout)
        except subprocess.TimeoutExpired:
            return [Row("correctness", "pytest -m device", "error", device=case,
                        note=f"did not finish within {args.part_timeout} s")]
        if not xml.exists():
            return [Row("correctness", "pytest -m device", "error", device=case,
                        note=f"pytest exit {r.returncode}: {(r.stdout + r.stderr)[-500:]}")]
        cases = _junit(xml)
    n = {o: sum(c["outcome"] == o for c in cases) for o in ("passed", "failed", "skipped")}
    status = "fail" if n["failed"] or r.returncode not in (0, 5) else ("skipped" if not cases or (
        n["skipped"] and not n["passed"]) else "pass")
    rows.append(Row("correctness", f"pytest -m device -k '{select}'", status,
                    f"{n['passed']} passed, {n['failed']} failed, {n['skipped']} skipped", device=case,
                    note="; ".join(" ".join(files).split()) if status != "skipped" else "no case ran",
                    extra={"cases": cases, "command": " ".join(cmd[1:])}))
    for c in cases:
        if c["outcome"] == "failed":
            rows.append(Row("correctness", c["name"], "fail", device=case, note=c["message"]))
    for reason in sorted({c["message"] for c in cases if c["outcome"] == "skipped"}):
        rows.append(Row("correctness", "skipped cases", "skipped", device=case, note=reason))
    if not on_cuda:
        rows.append(Row("correctness", "cuda cases", "skipped", device="cuda", note=_no_cuda()))
    return rows


# ----- speed ---------------------------------------------------------------------------------
def speed(args, sizes: Sizes) -> list[Row]:
    import torch
    from benchmark.measure import speed as sp
    on_cuda = args.device.startswith("cuda")
    variants = ["reference", "fast"] + (["fast-bf16", "fast-compile"] if on_cuda else [])
    rows = []
    why_not = sp.authors_model_available()
    if why_not is None:
        variants.append(sp.AUTHORS)
    else:
        rows.append(Row("speed", "authors' model (TinyNetworkDarts)", "skipped", device=args.device, note=why_not))
    if not on_cuda:
        for v in ("fast-bf16", "fast-compile"):
            rows.append(Row("speed", v, "skipped", device="cpu",
                            note="a CUDA-only supernet option (ignored on the CPU)"))
    size = f"C={sizes.C} N={sizes.N} batch {sizes.batch}"
    if on_cuda:  # "fp32" convolutions use TF32 where cuDNN allows it (torch's default): say so
        size += f", cuDNN TF32 {'on' if torch.backends.cudnn.allow_tf32 else 'off'}"
    res = sp.time_variants("darts", variants, args.device, sizes.batch, sizes.repeats, sizes.warmup,
                           C=sizes.C, N=sizes.N)
    if not on_cuda and not args.no_cpu_memory:
        for v in variants:
            res[v]["peak_mib"] = sp.cpu_peak_mib("darts", v, sizes.batch, args.threads, C=sizes.C, N=sizes.N)
    authors = res.get(sp.AUTHORS)
    for v in variants:
        r = res[v]
        rows.append(Row("speed", f"step {v}", "measured", round(r["images_per_s"], 1), "images/s",
                        device=args.device, note=f"DARTS-V1 step, {size}, best of {sizes.repeats}",
                        extra={**r, "variant": v}))
        if r["peak_mib"] is not None:
            rows.append(Row("speed", f"peak memory {v}", "measured", round(r["peak_mib"], 1), "MiB",
                            device=args.device, note="one step, above the memory held before it"))
    for v in variants:
        if v.startswith("fast") and authors:
            ratio = authors["step_s"] / res[v]["step_s"]
            goal_applies = on_cuda and sizes == FULL
            status = ("pass" if ratio >= SPEED_GOAL else "missed") if goal_applies else "measured"
            rows.append(Row("speed", f"{v} vs authors' model", status, round(ratio, 2), "x",
                            goal=f">= {SPEED_GOAL:g}x" + ("" if goal_applies else " (on a GPU at the paper size)"),
                            device=args.device))
    rows.append(Row("speed", "threads", "measured", torch.get_num_threads(), "", device=args.device,
                    note=f"torch {torch.__version__}"))
    return rows


# ----- packing -------------------------------------------------------------------------------
def _mps_daemon(tmp: str):
    """Start an MPS control daemon with private pipe/log folders; returns its env, or None."""
    exe = shutil.which("nvidia-cuda-mps-control")
    if exe is None:
        return None
    env = {"CUDA_MPS_PIPE_DIRECTORY": os.path.join(tmp, "pipe"), "CUDA_MPS_LOG_DIRECTORY": os.path.join(tmp, "log")}
    for d in env.values():
        os.makedirs(d, exist_ok=True)
    r = subprocess.run([exe, "-d"], env={**os.environ, **env}, capture_output=True, text=True)
    return env if r.returncode == 0 else None


def _mps_quit(env: dict) -> None:
    exe = shutil.which("nvidia-cuda-mps-control")
    if exe:
        subprocess.run([exe], input="quit\n", env={**os.environ, **env}, capture_output=True, text=True)


def _pack_rows(label: str, args, sizes: Sizes, env: dict | None = None) -> list[Row]:
    from benchmark.measure import speed as sp
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})  # spawned workers inherit it (MPS clients)
    try:
        ips = {k: sp.packed_throughput(k, "darts", "fast", args.device, sizes.batch, sizes.pack_steps,
                                       sizes.warmup, C=sizes.C, N=sizes.N) for k in sizes.pack}
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    one = ips[sizes.pack[0]] / sizes.pack[0]
    goal_applies = args.device.startswith("cuda") and sizes == FULL
    rows = []
    for k, v in ips.items():
        rel = v / one
        status = "measured" if k == 1 or not goal_applies else ("pass" if rel >= PACKING_GOAL * k else "missed")
        rows.append(Row("packing", f"{label} K={k}", status, round(rel, 2), "x one run",
                        goal="" if k == 1 else f">= {PACKING_GOAL * k:.1f}x" + ("" if goal_applies else " (GPU, full size)"),
                        device=args.device, note=f"{v:.1f} images/s in all",
                        extra={"k": k, "images_per_s": v, "strategy": label}))
    return rows


def packing(args, sizes: Sizes) -> list[Row]:
    rows = _pack_rows("processes", args, sizes)
    if not args.device.startswith("cuda"):
        rows.append(Row("packing", "processes + MPS", "skipped", device=args.device, note="MPS is CUDA's"))
    elif args.no_mps:
        rows.append(Row("packing", "processes + MPS", "skipped", device=args.device, note="--no-mps"))
    else:
        with tempfile.TemporaryDirectory(prefix="gpu-check-mps-") as tmp:
            env = _mps_daemon(tmp)
            if env is None:
                rows.append(Row("packing", "processes + MPS", "skipped", device=args.device,
                                note="no nvidia-cuda-mps-control here, or it would not start"))
            else:
                try:
                    rows += _pack_rows("processes + MPS", args, sizes, env)
                finally:
                    _mps_quit(env)
    rows.append(Row("packing", "one process, K supernets", "skipped", device=args.device,
                    note="not implemented (an alternative strategy: torch.func.stack_module_state + vmap, "
                         "or K models in CUDA streams)"))
    return rows


# ----- paper-scale search --------------------------------------------------------------------
def paper_search(args, sizes: Sizes) -> list[Row]:
    from benchmark.harness.records import read_json, read_jsonl
    out = Path(args.out) / "paper-search"
    run_dir = out / "nb201" / "darts" / "seed-0"
    profile = ["--profile", "smoke", "--epochs", "2", "--set", "train_subset=64"] if args.quick else ["--profile", "paper"]
    cmd = [sys.executable, str(REPO / "benchmark" / "run.py"), "--methods", "darts", "--spaces", "nb201",
           "--seeds", "0", *profile, "--devices", args.device, "--out", str(out), "--no-progress"]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    env = {**os.environ, **_data_env(args)}
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, err = p.communicate(timeout=args.budget_minutes * 60)
        stopped = False
    except subprocess.TimeoutExpired:  # the budget is spent: stop it; the next call resumes
        p.send_signal(signal.SIGTERM)
        try:
            _, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
        stopped = True
    this_call = time.perf_counter() - t0
    label = "DARTS-V1 NB201 " + ("smoke (--quick)" if args.quick else "paper profile") + ", seed 0"
    records = read_jsonl(run_dir / "epochs.jsonl") if (run_dir / "epochs.jsonl").exists() else []
    last = records[-1] if records else None
    if not stopped and p.returncode != 0:
        return [Row("paper-search", label, "error", device=args.device,
                    note=f"run.py exit {p.returncode}: {err.strip()[-500:]}")]
    if stopped or not (run_dir / "done.json").exists():
        epochs = read_json(run_dir / "config.json")["epochs"] if (run_dir / "config.json").exists() else None
        done = last["epoch"] if last else 0
        return [Row("paper-search", label, "skipped", f"{done}/{epochs}", "epochs", device=args.device,
                    note=f"budget of {args.budget_minutes:g} min spent; run the same command again to resume",
                    extra={"this_call_seconds": this_call, "out": str(out)})]
    done = read_json(run_dir / "done.json")
    bench = (last or {}).get("benchmark") or {}
    acc = bench.get("cifar10_test")
    rows = [Row("paper-search", "wall time (search epochs)", "measured", round(done["wall_seconds"], 1), "s",
                device=args.device, note=f"{label}; out {out}"),
            Row("paper-search", "final cell", "measured", done["genotype"], device=args.device)]
    if acc is None:
        rows.append(Row("paper-search", "NB201 CIFAR-10 test accuracy", "skipped", device=args.device,
                        note="no NB201 table found: set NAS_BENCHMARKS / --benchmarks, then "
                             f"python -m benchmark.score --results {out}"))
    else:
        rows.append(Row("paper-search", "NB201 CIFAR-10 test accuracy", "measured", round(acc, 2), "%",
                        goal=f"paper: {DARTS_V1_NB201_C10_TEST} (DARTS-V1)", device=args.device,
                        note=f"ours - paper = {acc - DARTS_V1_NB201_C10_TEST:+.2f}"))
    return rows


# ----- driver --------------------------------------------------------------------------------
RUNNERS = {"correctness": correctness, "speed": speed, "packing": packing, "paper-search": paper_search}


def _no_cuda() -> str:
    import torch
    return f"no CUDA device (torch {torch.__version__}, CUDA build {torch.version.cuda})"


def _cuda_index(device: str, visible: str | None) -> str:
    idx = device.split(":", 1)[1] if ":" in device else "0"
    if visible:  # already narrowed: pick from that list
        return visible.split(",")[int(idx)]
    return idx


def _data_env(args) -> dict:
    env = {}
    if args.data:
        env["NAS_DATA"] = str(args.data)
    if args.benchmarks:
        env["NAS_BENCHMARKS"] = str(args.benchmarks)
    return env


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmark.measure.gpu_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", action="append", default=None, metavar="PART",
                   help=f"comma list of: {', '.join(PARTS)}; repeatable (default: all)")
    p.add_argument("--device", default=None,
                   help="cuda:N or cpu (default cuda:0 where CUDA is present, else cpu; naming cpu "
                        "runs packing and paper-search on the CPU too)")
    p.add_argument("--quick", action="store_true",
                   help=f"small sizes (C={QUICK.C} N={QUICK.N} batch {QUICK.batch}, K={QUICK.pack}, the "
                        "supernet tests only, a 2-epoch smoke search): checks the code path, not the goals")
    p.add_argument("--json", help="also write the table (and per-test details) to this JSON file")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default torch's)")
    p.add_argument("--out", default="results/gpu-check",
                   help="folder for the paper search's run (default results/gpu-check; resumed from there)")
    p.add_argument("--budget-minutes", type=float, default=9.0,
                   help="paper-search: stop run.py after this long, resume on the next call (default 9)")
    p.add_argument("--part-timeout", type=int, default=1800, help="correctness: pytest's limit in seconds (default 1800)")
    p.add_argument("--no-mps", action="store_true", help="packing: skip the CUDA MPS measurement")
    p.add_argument("--no-cpu-memory", action="store_true", help="speed on CPU: skip the peak-memory processes")
    p.add_argument("--data", default=os.environ.get("NAS_DATA"), help="CIFAR-10 (default $NAS_DATA)")
    p.add_argument("--benchmarks", default=os.environ.get("NAS_BENCHMARKS"),
                   help="benchmark tables and cifar-split.txt (default $NAS_BENCHMARKS)")
    return p


def parse(argv: list[str] | None):
    """Parsed and validated arguments, or a usage error message."""
    import torch
    args = build_parser().parse_args(argv)
    parts = [s for group in (args.part or [",".join(PARTS)]) for s in group.split(",") if s]
    bad = [s for s in parts if s not in PARTS]
    if bad or not parts:
        return None, f"--part {','.join(bad) or '(empty)'}: valid: {', '.join(PARTS)}"
    args.parts = list(dict.fromkeys(parts))
    args.device_given = args.device is not None
    args.device = args.device or ("cuda:0" if torch.cuda.is_available() else "cpu")
    d = args.device
    if d != "cpu":
        idx = d[5:] if d.startswith("cuda:") else None
        if not (d == "cuda" or (idx is not None and idx.isdigit())):
            return None, f"--device {d!r}: valid: cpu, cuda, cuda:N"
        if not torch.cuda.is_available():
            return None, f"--device {d}: {_no_cuda()}; valid here: cpu"
        if idx is not None and int(idx) >= torch.cuda.device_count():
            return None, f"--device {d}: valid: cuda:0 .. cuda:{torch.cuda.device_count() - 1}"
        args.device = "cuda:0" if d == "cuda" else d
    if args.threads is not None and args.threads < 1:
        return None, "--threads must be at least 1"
    if args.budget_minutes <= 0 or args.part_timeout < 1:
        return None, "--budget-minutes and --part-timeout must be positive"
    needs_data = "paper-search" in args.parts and (args.device != "cpu" or args.device_given)
    needs_data |= "correctness" in args.parts and not args.quick
    if needs_data and not (args.data and Path(args.data).exists()):
        return None, (f"--data {args.data or '(unset)'}: no CIFAR-10 there; set --data or NAS_DATA "
                      "(the correctness runs and the paper search read it)")
    if args.benchmarks and not Path(args.benchmarks).is_dir():
        return None, f"--benchmarks {args.benchmarks}: no such folder"
    return args, None


def exit_code(rows: list[Row]) -> int:
    if any(r.status in ("fail", "missed", "error") for r in rows):
        return EXIT_FAIL
    if any(r.status == "skipped" for r in rows):
        return EXIT_SKIPPED
    return EXIT_OK


def print_table(rows: list[Row]) -> None:
    head = ("part", "check", "device", "value", "goal", "status", "note")
    cells = [head] + [(r.part, r.check, r.device, "" if r.value is None else f"{r.value} {r.unit}".strip(),
                       r.goal, r.status, r.note) for r in rows]
    widths = [min(max(len(str(c[i])) for c in cells), 48) for i in range(len(head) - 1)]
    for c in cells:
        print("  ".join(str(x)[:48].ljust(w) for x, w in zip(c, widths)) + "  " + str(c[-1]), flush=True)


def main(argv: list[str] | None = None) -> int:
    args, err = parse(argv)
    if err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = QUICK if args.quick else FULL
    on_cuda = args.device.startswith("cuda")
    gpu = torch.cuda.get_device_name(args.device) if on_cuda else None
    print(f"gpu_check: device {args.device}{f' ({gpu})' if gpu else ''}, torch {torch.__version__}, "
          f"{'quick sizes' if args.quick else 'full sizes'}, parts {', '.join(args.parts)}", flush=True)
    rows: list[Row] = []
    parts: dict[str, dict] = {}
    for part in args.parts:
        t0 = time.perf_counter()
        if part in CUDA_ONLY and not on_cuda and not args.device_given:
            new = [Row(part, part, "skipped", device="cpu",
                       note=f"{_no_cuda()}; it needs a GPU (--device cpu runs it on the CPU anyway)")]
        else:
            try:
                new = RUNNERS[part](args, sizes)
            except Exception as e:  # one part's crash is reported; the others still run
                new = [Row(part, part, "error", device=args.device, note=f"{type(e).__name__}: {e}"[:500])]
        rows += new
        parts[part] = {"seconds": round(time.perf_counter() - t0, 1), "exit_code": exit_code(new)}
        print(f"[{part}: {parts[part]['seconds']} s]", file=sys.stderr, flush=True)
    print_table(rows)
    code = exit_code(rows)
    if args.json:
        report = {"schema": 1, "command": ["python", "-m", "benchmark.measure.gpu_check", *(argv or sys.argv[1:])],
                  "device": args.device, "gpu": gpu, "torch": torch.__version__, "cuda": torch.version.cuda,
                  "threads": torch.get_num_threads(), "quick": args.quick, "parts": parts,
                  "rows": [asdict(r) for r in rows], "exit_code": code,
                  "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    return code


if __name__ == "__main__":
    sys.exit(main())
