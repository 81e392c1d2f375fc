"""Search-step speed of a supernet: reference (one module per op per edge) vs fast.

For each method, one search step (its arch step and weight step, in the paper profile's
order) on the paper-size supernet (C=16, N=5, batch 64) with random images. Variants are
timed interleaved in one process (best of --repeats) so the ratios compare like with like
on a shared machine. Images/s counts the train and the valid batch of a step (2 x batch).
Peak memory of one step: on CUDA the allocator's peak during a step (after the warm-up)
above what was allocated before it; on CPU the peak resident memory of the first step above
the built model, in a fresh process (`--no-cpu-memory` skips those processes). Variant
`authors` is the NB201 authors' own model (xautodl's TinyNetworkDarts, DARTS-V1). With a
GPU: throughput of K runs packed on it (K processes stepping at once) vs one run.

`--space darts`: the DARTS search network (C=16, 8 cells, the paper profile's), reference vs
fast (spaces/darts/fast.py), methods darts, darts-2nd, sdarts-adv, balenas by default, on 1
and 2 CPU threads (`--threads 1,2`) in one process, each thread count's variants interleaved;
the ratio is of the MEDIAN step times (the best is printed too).

    python -m benchmark.measure.speed [--space nb201|darts] [--methods darts] [--devices cpu,cuda:0]
                                      [--repeats 5] [--threads 1,2]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

if not __package__:  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402

# name -> supernet kwargs (on top of the paper profile's)
VARIANTS = {
    "reference": dict(impl="reference"),
    "fast": dict(impl="fast"),
    "fast-nchw": dict(impl="fast", channels_last=False),
    "fast-bf16": dict(impl="fast", bf16=True),
    "fast-compile": dict(impl="fast", compile=True),
}
CPU_VARIANTS = ("reference", "fast", "fast-nchw")
CUDA_VARIANTS = ("reference", "fast", "fast-bf16")
# The DARTS space: name -> supernet kwargs on top of its paper profile's (C=16, 8 cells).
DARTS_VARIANTS = {
    "reference": dict(impl="reference"),
    "fast": dict(impl="fast"),
    "fast-nchw": dict(impl="fast", channels_last=False),
}
DARTS_METHODS = ("darts", "darts-2nd", "sdarts-adv", "balenas")


AUTHORS = "authors"  # the NB201 authors' own search model (xautodl's TinyNetworkDarts)


def authors_model_available() -> str | None:
    """None if xautodl's TinyNetworkDarts imports, else why not."""
    try:
        from xautodl.models.cell_searchs.search_model_darts import TinyNetworkDarts  # noqa: F401
    except Exception as e:  # ImportError, or xautodl's own imports failing
        return f"xautodl not importable ({type(e).__name__}: {e}); pip install --no-deps xautodl"
    return None


def _random_batches(batch: int, device: str, seed: int):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(batch, 3, 32, 32, generator=g).to(device),
             torch.randint(10, (batch,), generator=g).to(device)) for _ in range(2)]


def make_authors_step(device: str, batch: int, C: int = 16, N: int = 5, seed: int = 0):
    """One DARTS-V1 search step of the NB201 authors' model, as their search script does it
    (AutoDL-Projects exps/NAS-Bench-201-algos/DARTS-V1.py, search_func): the weight step
    (SGD, gradient clipped at 5), then the architecture step (Adam) on the other batch; each
    reads its loss and accuracy back, as their meters do. Hyperparameters: the NB201 `paper`
    profile's (the same as their DARTS-V1 config). No DataParallel wrapper (one device)."""
    from benchmark.harness.config import resolve_config
    from xautodl.models.cell_operations import NAS_BENCH_201
    from xautodl.models.cell_searchs.search_model_darts import TinyNetworkDarts
    cfg = resolve_config("nb201", "darts", seed, "paper")
    torch.manual_seed(seed)
    net = TinyNetworkDarts(C, N, 4, 10, NAS_BENCH_201, False, False).to(device).train()
    w_opt = torch.optim.SGD(net.get_weights(), lr=cfg.w_lr, momentum=cfg.w_momentum,
                            nesterov=cfg.w_nesterov, weight_decay=cfg.w_weight_decay)
    a_opt = torch.optim.Adam(net.get_alphas(), lr=cfg.a_lr, betas=tuple(cfg.a_betas),
                             weight_decay=cfg.a_weight_decay)
    (xt, yt), (xv, yv) = _random_batches(batch, device, seed)
    ce = torch.nn.functional.cross_entropy

    def step() -> None:
        w_opt.zero_grad()
        _, logits = net(xt)
        loss = ce(logits, yt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        w_opt.step()
        loss.item(), (logits.argmax(1) == yt).float().mean().item()
        a_opt.zero_grad()
        _, logits = net(xv)
        loss = ce(logits, yv)
        loss.backward()
        a_opt.step()
        loss.item(), (logits.argmax(1) == yv).float().mean().item()
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
    return step


def make_step(method: str, variant: str, device: str, batch: int, seed: int = 0,
              C: int = 16, N: int = 5, space: str = "nb201"):
    """A zero-argument callable doing one search step of `method` with the given supernet
    (a VARIANTS name, or AUTHORS for the authors' model, DARTS-V1 only). space="darts": a
    DARTS_VARIANTS name on the paper-profile DARTS network (C and N are not used)."""
    if variant == AUTHORS:
        if space != "nb201" or method != "darts":
            raise ValueError("the authors' model is timed for DARTS-V1 (method darts) on nb201 only")
        return make_authors_step(device, batch, C, N, seed)
    size = DARTS_VARIANTS[variant] if space == "darts" else {"C": C, "N": N, **VARIANTS[variant]}
    return _make_space_step(space, method, size, device, batch, seed)


def _make_space_step(space_name: str, method: str, supernet: dict, device: str, batch: int, seed: int):
    """One search step of `method` on `space_name`'s paper-profile supernet with `supernet`
    arguments on top, through the suite's loop and method hooks (what a search runs)."""
    import dataclasses
    from benchmark.harness.config import resolve_config
    from benchmark.harness.loop import search_step
    from methods.base import StepContext
    from methods.registry import get_method
    from spaces import space_for
    # bayesnas' DARTS paper profile runs its authors' one-shot network; the DARTS search network
    # variants timed here are its darts-protocol procedure's
    sets = ["method.procedure=darts-protocol"] if (space_name, method) == ("darts", "bayesnas") else None
    cfg = resolve_config(space_name, method, seed, "paper", sets=sets)
    cfg = dataclasses.replace(cfg, batch_size=batch, supernet={**cfg.supernet, **supernet})
    torch.manual_seed(seed)
    space = space_for(space_name, cfg.supernet)
    net = space.supernet(**cfg.supernet).to(device).train()
    m = get_method(method)(space, net, cfg, torch.Generator().manual_seed(seed), device)
    w_opt = torch.optim.SGD(net.parameters(), lr=cfg.w_lr, momentum=cfg.w_momentum,
                            nesterov=cfg.w_nesterov, weight_decay=cfg.w_weight_decay)
    ctx = StepContext(net, w_opt, 1, cfg.epochs, cfg.grad_clip, 25000, 25000)
    tb, vb = _random_batches(batch, device, seed)

    def step() -> None:
        search_step(m, tb, vb, ctx, cfg.arch_first)
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
    return step


def time_variants(method: str, variants, device: str, batch: int, repeats: int, warmup: int,
                  C: int = 16, N: int = 5, space: str = "nb201") -> dict:
    """Best-of-`repeats` step time of each variant (and the median, `median_s`), timed
    interleaved. On CUDA also `peak_mib`: the allocator's peak during one step (after the
    warm-up) above what was allocated before it (every variant's model and optimiser state)."""
    steps = {v: make_step(method, v, device, batch, C=C, N=N, space=space) for v in variants}
    best = {v: float("inf") for v in variants}
    times: dict = {v: [] for v in variants}
    peak = {}
    for v, step in steps.items():
        for _ in range(warmup):
            step()
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            step()
            peak[v] = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    for _ in range(repeats):  # interleaved: load changes hit every variant alike
        for v, step in steps.items():
            t = time.perf_counter()
            step()
            times[v].append(time.perf_counter() - t)
            best[v] = min(best[v], times[v][-1])
    return {v: {"step_s": best[v], "images_per_s": 2 * batch / best[v], "peak_mib": peak.get(v),
                "median_s": sorted(times[v])[len(times[v]) // 2], "times_s": times[v]}
            for v in variants}


def _vm_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _step_peak_mib(method: str, variant: str, batch: int, C: int = 16, N: int = 5,
                   space: str = "nb201") -> float:
    """In a fresh process: peak RSS (MiB) of one step above the built model's RSS.
    Linux: writing 5 to clear_refs resets the peak (VmHWM), so importing torch does not count."""
    step = make_step(method, variant, "cpu", batch, C=C, N=N, space=space)
    Path("/proc/self/clear_refs").write_text("5")
    before = _vm_kib("VmRSS")
    step()
    return (_vm_kib("VmHWM") - before) / 1024


def cpu_peak_mib(method: str, variant: str, batch: int, threads: int | None, C: int = 16,
                 N: int = 5, space: str = "nb201") -> float | None:
    """Peak resident memory of one CPU step (a fresh process each, so no variant inherits
    another's freed-but-kept pages); None where /proc is not Linux's."""
    code = (f"import sys, torch; sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})\n"
            + (f"torch.set_num_threads({threads})\n" if threads else "")
            + "from benchmark.measure.speed import _step_peak_mib\n"
            f"print(_step_peak_mib({method!r}, {variant!r}, {batch}, {C}, {N}, {space!r}))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    try:
        return float(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def _pack_worker(rank: int, method: str, variant: str, device: str, batch: int, steps: int,
                 warmup: int, barrier, results, C: int = 16, N: int = 5) -> None:
    step = make_step(method, variant, device, batch, seed=rank, C=C, N=N)
    for _ in range(warmup):
        step()
    barrier.wait()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    results[rank] = (t, time.perf_counter())


def packed_throughput(k: int, method: str, variant: str, device: str, batch: int, steps: int,
                      warmup: int, C: int = 16, N: int = 5) -> float:
    """Images/s of k runs stepping at once on one device (separate processes, as --per-device
    places them): from the first timed step of any to the last of all."""
    import torch.multiprocessing as mp
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(k), ctx.Manager().dict()
    procs = [ctx.Process(target=_pack_worker, args=(r, method, variant, device, batch, steps, warmup,
                                                    barrier, results, C, N)) for r in range(k)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    if len(results) != k:
        raise RuntimeError(f"{k - len(results)} packed worker(s) failed")
    t0, t1 = min(s for s, _ in results.values()), max(e for _, e in results.values())
    return k * steps * 2 * batch / (t1 - t0)


def main(argv: list[str] | None = None) -> int:
    from methods.registry import available
    p = argparse.ArgumentParser(prog="python -m benchmark.measure.speed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", default="nb201", choices=("nb201", "darts"),
                   help="nb201 (default) or darts (the DARTS search network, reference vs fast)")
    p.add_argument("--methods", default=None,
                   help=f"comma list (default: all registered; with --space darts {','.join(DARTS_METHODS)})")
    p.add_argument("--devices", default=None, help="comma list (default: cpu, plus cuda:0 when present)")
    p.add_argument("--batch", type=int, default=64, help="batch size (default 64, the paper's)")
    p.add_argument("--repeats", type=int, default=5, help="timed steps per variant; the best counts (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1; more with compile)")
    p.add_argument("--threads", default=None,
                   help="torch CPU threads (default torch's); with --space darts a comma list, default 1,2")
    p.add_argument("--variants", default=None,
                   help=f"comma list of {', '.join(VARIANTS)}, {AUTHORS} (xautodl's TinyNetworkDarts; "
                        f"darts only) (default: {','.join(CPU_VARIANTS)} on CPU, "
                        f"{','.join(CUDA_VARIANTS)} on CUDA)")
    p.add_argument("--pack", default="1,2,4,8", help="K values for the packing test on a GPU (default 1,2,4,8)")
    p.add_argument("--pack-steps", type=int, default=10, help="timed steps per packed run (default 10)")
    p.add_argument("--pack-device", default=None, help="device for packing (default cuda:0 when present; 'none' skips)")
    p.add_argument("--no-cpu-memory", action="store_true", help="skip the CPU peak-memory processes")
    p.add_argument("--json", help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    if args.space == "darts":
        return main_darts(args)
    try:
        args.threads = int(args.threads) if args.threads else None
        if args.threads is not None and args.threads < 1:
            raise ValueError
    except ValueError:
        print(f"error: --threads must be one whole number >= 1 with --space nb201, got {args.threads!r}",
              file=sys.stderr)
        return 2
    methods = [m for m in (args.methods or ",".join(available())).split(",") if m]
    bad = [m for m in methods if m not in available()]
    devices = (args.devices or ("cpu,cuda:0" if torch.cuda.is_available() else "cpu")).split(",")
    bad_dev = [d for d in devices if d != "cpu" and not (d.startswith("cuda") and torch.cuda.is_available())]
    variants = args.variants.split(",") if args.variants else None
    if bad or bad_dev or (variants and set(variants) - set(VARIANTS) - {AUTHORS}) or min(args.repeats, args.batch) < 1:
        print(f"error: check --methods (valid: {', '.join(available())}), --devices (cpu"
              f"{', cuda:N' if torch.cuda.is_available() else '; no CUDA here'}), --variants "
              f"({', '.join(VARIANTS)}, {AUTHORS}), --repeats/--batch >= 1", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    report: dict = {"batch": args.batch, "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "steps": {}, "packing": {}}
    print(f"NB201 supernet C=16 N=5, batch {args.batch}, best of {args.repeats}; torch "
          f"{torch.__version__}, {torch.get_num_threads()} CPU threads")
    print(f"{'device':8} {'method':10} {'variant':13} {'step s':>8} {'img/s':>8} {'peak MiB':>9} {'speedup':>8}")
    for device in devices:
        for method in methods:
            vs = [v for v in variants or (CUDA_VARIANTS if device.startswith("cuda") else CPU_VARIANTS)
                  if v != AUTHORS or method == "darts"]
            res = time_variants(method, vs, device, args.batch, args.repeats, args.warmup)
            if device == "cpu" and not args.no_cpu_memory:
                for v in vs:
                    res[v]["peak_mib"] = cpu_peak_mib(method, v, args.batch, args.threads)
            base = res[vs[0]]["step_s"]
            for v in vs:
                r = res[v]
                r["speedup_vs_" + vs[0]] = base / r["step_s"]
                mem = f"{r['peak_mib']:.0f}" if r["peak_mib"] is not None else "-"
                print(f"{device:8} {method:10} {v:13} {r['step_s']:8.3f} {r['images_per_s']:8.1f} "
                      f"{mem:>9} {base / r['step_s']:7.2f}x", flush=True)
            report["steps"][f"{device}/{method}"] = res
    pack_dev = args.pack_device or ("cuda:0" if torch.cuda.is_available() else "none")
    if pack_dev != "none":
        method = methods[0]
        print(f"packing on {pack_dev}: {method}, fast supernet, {args.pack_steps} steps per run")
        one = None
        for k in (int(x) for x in args.pack.split(",")):
            ips = packed_throughput(k, method, "fast", pack_dev, args.batch, args.pack_steps, args.warmup)
            one = one or ips
            report["packing"][k] = ips
            print(f"  K={k}: {ips:8.1f} img/s in all, {ips / one:5.2f}x one run's", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


def _trim() -> None:
    """Return freed heap memory to the system (glibc), so that this process's footprint does not
    add to the memory processes' on a small machine."""
    import gc
    gc.collect()
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def main_darts(args) -> int:
    """--space darts: per method and thread count, reference vs fast step time (median and
    best of --repeats, interleaved in this process) and each one's peak memory."""
    from methods.registry import available
    methods = [m for m in (args.methods or ",".join(DARTS_METHODS)).split(",") if m]
    variants = args.variants.split(",") if args.variants else ["reference", "fast"]
    try:
        threads = [int(t) for t in (args.threads or "1,2").split(",")]
    except ValueError:
        threads = [0]
    devices = (args.devices or "cpu").split(",")
    bad_dev = [d for d in devices if d != "cpu" and not (d.startswith("cuda") and torch.cuda.is_available())]
    if (set(methods) - set(available()) or set(variants) - set(DARTS_VARIANTS) or min(threads) < 1
            or bad_dev or min(args.repeats, args.batch) < 1 or variants[0] != "reference"):
        print(f"error: check --methods (valid: {', '.join(available())}), --variants (reference first, "
              f"then any of {', '.join(DARTS_VARIANTS)}), --threads (comma list of whole numbers >= 1), "
              f"--devices (cpu{', cuda:N' if torch.cuda.is_available() else '; no CUDA here'}), "
              "--repeats/--batch >= 1", file=sys.stderr)
        return 2
    report: dict = {"space": "darts", "batch": args.batch, "torch": torch.__version__, "steps": {}}
    print(f"DARTS search network C=16, 8 cells, batch {args.batch}, median (best) of {args.repeats} "
          f"interleaved steps; torch {torch.__version__}")
    print(f"{'device':8} {'thr':>3} {'method':11} {'variant':10} {'median s':>9} {'best s':>8} "
          f"{'peak MiB':>9} {'fast/ref':>9}")
    for device in devices:
        for t in (threads if device == "cpu" else [threads[0]]):
            torch.set_num_threads(t)
            for method in methods:
                res = time_variants(method, variants, device, args.batch, args.repeats, args.warmup,
                                    space="darts")
                if device == "cpu" and not args.no_cpu_memory:
                    _trim()  # give the timed models' memory back before the memory processes
                    for v in variants:
                        res[v]["peak_mib"] = cpu_peak_mib(method, v, args.batch, t, space="darts")
                base = res["reference"]["median_s"]
                for v in variants:
                    r = res[v]
                    r["speedup_vs_reference"] = base / r["median_s"]
                    mem = f"{r['peak_mib']:.0f}" if r["peak_mib"] is not None else "-"
                    print(f"{device:8} {t:3d} {method:11} {v:10} {r['median_s']:9.2f} {r['step_s']:8.2f} "
                          f"{mem:>9} {base / r['median_s']:8.2f}x", flush=True)
                report["steps"][f"{device}/{t}/{method}"] = res
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
