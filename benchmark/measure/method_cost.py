"""Search-step cost of each method on the paper-size NB201 supernet, as a ratio to DARTS of the
same gradient order (first-order methods vs `darts`, second-order vs `darts-2nd`).

One step = the method's arch_step + weight_step in its profile's order, on random batches of
the given size (timing does not depend on pixel values). Repeats are interleaved (each round
times every method once) and the median is reported, so slow drifts of a shared machine
touch every method alike. Per-epoch work (BayesNAS' curvature update, BaLeNAS-TF's proxy
selection, RSPS' candidate scoring) is not in a step; --epoch-extras times it once.
Prints a table; exit 0, or 2 on bad input.

  python -m benchmark.measure.method_cost [--repeats 5] [--C 16 --N 5 --batch 64]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

# (label, registry name, extra --set items, baseline label)
ENTRIES = [
    ("darts", "darts", [], None),
    ("sdarts-rs", "sdarts-rs", [], "darts"),
    ("sdarts-adv", "sdarts-adv", [], "darts"),
    ("bayesnas", "bayesnas", [], "darts"),
    ("balenas", "balenas", [], "darts"),
    ("balenas-tf", "balenas-tf", [], "darts"),
    ("random-ws", "random-ws", [], "darts"),
    ("darts-2nd", "darts-2nd", [], None),
    ("balenas(order=2)", "balenas", ["method.order=2"], "darts-2nd"),
]


def build(name: str, sets: list[str], C: int, N: int, batch: int, seed: int = 0):
    import torch
    from benchmark.harness.config import resolve_config
    from benchmark.harness.loop import search_step
    from methods.base import StepContext
    from methods.registry import get_method
    from spaces import get_space
    cfg = resolve_config("nb201", name, seed, "paper", None,
                         [f"supernet.C={C}", f"supernet.N={N}", f"batch_size={batch}", *sets])
    torch.manual_seed(seed)
    space = get_space("nb201")
    net = space.supernet(**cfg.supernet)
    method = get_method(name)(space, net, cfg, torch.Generator().manual_seed(seed))
    w_opt = torch.optim.SGD(net.parameters(), lr=cfg.w_lr, momentum=cfg.w_momentum,
                            nesterov=cfg.w_nesterov, weight_decay=cfg.w_weight_decay)
    g = torch.Generator().manual_seed(seed + 1)

    def batch_(n: int = batch):
        return torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)
    ctx = StepContext(net, w_opt, 1, cfg.epochs, cfg.grad_clip, 25000, 25000,
                      lambda n, augment=False: iter(lambda: batch_(n), None))  # candidate batches
    tb, vb = batch_(), batch_()

    def step() -> float:
        net.train()
        t0 = time.perf_counter()
        search_step(method, tb, vb, ctx, cfg.arch_first)
        return time.perf_counter() - t0

    def epoch_extra() -> float:
        t0 = time.perf_counter()
        method.epoch_end(cfg.epochs, ctx)
        return time.perf_counter() - t0
    return step, epoch_extra


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmark.measure.method_cost", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5, help="interleaved timed rounds (default 5)")
    p.add_argument("--C", type=int, default=16, help="supernet channels (default 16, paper)")
    p.add_argument("--N", type=int, default=5, help="cells per stage (default 5, paper)")
    p.add_argument("--batch", type=int, default=64, help="batch size (default 64, paper)")
    p.add_argument("--methods", default=",".join(e[0] for e in ENTRIES),
                   help="comma list of labels (default: all); baselines are added as needed")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--epoch-extras", action="store_true", help="also time each method's epoch_end once")
    args = p.parse_args(argv)
    import torch
    known = {e[0]: e for e in ENTRIES}
    wanted = [s for s in args.methods.split(",") if s]
    bad = [w for w in wanted if w not in known]
    if bad or args.repeats < 1 or min(args.C, args.N, args.batch) < 1:
        print(f"error: unknown methods {bad} (valid: {', '.join(known)}) or a size/repeat < 1",
              file=sys.stderr)
        return 2
    for w in list(wanted):
        base = known[w][3]
        if base and base not in wanted:
            wanted.insert(0, base)
    if args.threads:
        torch.set_num_threads(args.threads)
    steps, extras = {}, {}
    for w in wanted:
        steps[w], extras[w] = build(known[w][1], known[w][2], args.C, args.N, args.batch)
        steps[w]()  # warm-up (allocator, kernels, optimiser state)
    times = {w: [] for w in wanted}
    for r in range(args.repeats):
        for w in wanted:
            times[w].append(steps[w]())
        print(f"  round {r + 1}/{args.repeats} done", file=sys.stderr)
    med = {w: statistics.median(v) for w, v in times.items()}
    print(f"NB201 supernet C={args.C} N={args.N} batch {args.batch}, {args.repeats} interleaved "
          f"repeats, torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    head = f"{'method':<18} {'step s (median)':>15} {'baseline':>10} {'ratio':>6}"
    if args.epoch_extras:
        head += f" {'epoch_end s':>11}"
    print(head)
    for w in wanted:
        base = known[w][3] or w
        line = f"{w:<18} {med[w]:>15.3f} {base:>10} {med[w] / med[base]:>6.2f}"
        if args.epoch_extras:
            line += f" {extras[w]():>11.2f}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
