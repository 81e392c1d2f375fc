"""Proxy fidelity on NAS-Bench-201: Spearman correlation of a training-free proxy with the
benchmark's CIFAR-10 test accuracy over random cells.

Each sampled cell's standalone network (spaces.nb201.network, C=16, N=5, randomly initialised)
is scored by `methods.proxies.score` on one fixed batch of CIFAR-10 TRAINING images
(normalised, not augmented). Published reference: NASWOT on NB201 CIFAR-10, about 0.7-0.8
(Mellor et al. 2021). Prints a table; exit 0 on success, 2 on bad input.

  python -m benchmark.measure.proxy_fidelity --data cifar10.npz --benchmarks DIR [--archs 200]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmark.measure.proxy_fidelity", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.environ.get("NAS_DATA"), help="CIFAR-10 .npz or torchvision root (default $NAS_DATA)")
    p.add_argument("--benchmarks", default=os.environ.get("NAS_BENCHMARKS"),
                   help="folder with the NB201 table (default $NAS_BENCHMARKS)")
    p.add_argument("--archs", type=int, default=200, help="random cells to score (default 200)")
    p.add_argument("--proxies", default="naswot", help="comma list of naswot,synflow,grad_norm (default naswot)")
    p.add_argument("--batch-size", type=int, default=128, help="images in the scoring batch (default 128)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args(argv)

    import numpy as np
    import torch
    from scipy.stats import kendalltau, spearmanr

    from benchmark.harness.data import MEAN, STD, DataError, load_cifar10
    from benchmark.errors import BenchmarkFileError
    from benchmark.tabular.nb201_table import find_nb201_table
    from methods.proxies import PROXIES, score
    from spaces.nb201 import NUM_ARCHS, network

    names = [s for s in args.proxies.split(",") if s]
    bad = [n for n in names if n not in PROXIES]
    if bad or not names:
        print(f"error: unknown proxies {bad}; valid: {', '.join(PROXIES)}", file=sys.stderr)
        return 2
    if args.archs < 3 or args.archs > NUM_ARCHS:
        print(f"error: --archs must be in 3..{NUM_ARCHS}", file=sys.stderr)
        return 2
    if not args.data:
        print("error: set --data or NAS_DATA to CIFAR-10", file=sys.stderr)
        return 2
    try:
        data = load_cifar10(args.data)
        table = find_nb201_table(args.benchmarks)
    except (DataError, BenchmarkFileError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if table is None:
        print(f"error: no NB201 table in {args.benchmarks!r}; set --benchmarks/NAS_BENCHMARKS", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)

    rng = np.random.default_rng(args.seed)
    idx = rng.choice(len(data.y_train), args.batch_size, replace=False)
    x = torch.from_numpy(data.x_train[idx]).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    y = torch.from_numpy(data.y_train[idx])
    rows = rng.choice(len(table), args.archs, replace=False)
    archs = [table.arch_of(int(table.indexes[r])) for r in rows]
    acc = np.array([table.query(a, "cifar10_test", "200") for a in archs], dtype=float)

    scores = {n: [] for n in names}
    t0 = time.perf_counter()
    for i, arch in enumerate(archs):
        for n in names:
            torch.manual_seed(args.seed * 100_003 + i)
            scores[n].append(score(n, network(arch), x, y))
        if (i + 1) % 25 == 0:
            print(f"  {i + 1}/{len(archs)} cells scored ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)

    print(f"NB201 CIFAR-10 test accuracy (hp 200) vs proxy, {len(archs)} random cells, "
          f"batch {args.batch_size}, data md5 {data.md5[:8]}, seed {args.seed}")
    print(f"{'proxy':<10} {'spearman':>9} {'kendall':>8} {'finite':>7}")
    for n in names:
        s = np.array(scores[n], dtype=float)
        ok = np.isfinite(s) & np.isfinite(acc)
        rho = spearmanr(s[ok], acc[ok]).statistic
        tau = kendalltau(s[ok], acc[ok]).statistic
        print(f"{n:<10} {rho:>9.3f} {tau:>8.3f} {int(ok.sum()):>7}")
    print("published: NASWOT on NB201 CIFAR-10 ~0.7-0.8 (Mellor et al. 2021)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
