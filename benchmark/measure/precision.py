"""`python -m benchmark.measure.precision`: how far float32 is from float64 in the NB201
supernet's architecture gradient at initialisation, for the reference and the fast supernet.

Both supernets get the same weights (the fast one packs the reference's), the same batch of
random images and the same alpha (std 1e-3, as a search initialises it); the float64
gradient of the reference is the yardstick. The figures say why a seed fixes a run only
together with the implementation, device and thread count (README, "What a seed fixes").
"""
from __future__ import annotations

import argparse
import copy
import sys

import torch
import torch.nn.functional as F

from spaces.nb201 import EDGES, OPS, Supernet
from spaces.nb201.fast import FastSupernet


def alpha_grad(net, x, y, alpha, dtype) -> torch.Tensor:
    net = copy.deepcopy(net).to(dtype)
    a = alpha.to(dtype).clone().requires_grad_()
    F.cross_entropy(net(x.to(dtype), {"alpha": torch.softmax(a, -1)}), y).backward()
    return a.grad.double()


def measure(C: int = 16, N: int = 5, batch: int = 16, seed: int = 0) -> list[dict]:
    torch.manual_seed(seed)
    ref = Supernet(C=C, N=N)
    fast = FastSupernet(C=C, N=N)
    fast.load_reference(ref)
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(batch, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    alpha = 1e-3 * torch.randn(len(EDGES), len(OPS), generator=g)
    g64 = alpha_grad(ref, x, y, alpha, torch.float64)
    rows = []
    for name, net in (("reference", ref), ("fast", fast)):
        g32, f64 = alpha_grad(net, x, y, alpha, torch.float32), alpha_grad(net, x, y, alpha, torch.float64)
        rows.append({"impl": name, "max_abs_f32_vs_f64": (g32 - g64).abs().max().item(),
                     "rel_norm_f32_vs_f64": ((g32 - g64).norm() / g64.norm()).item(),
                     "max_abs_f64_vs_reference_f64": (f64 - g64).abs().max().item(),
                     "max_abs_grad": g64.abs().max().item()})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--C", type=int, default=16)
    ap.add_argument("--N", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    for opt in ("C", "N", "batch", "threads"):
        if getattr(args, opt) < 1:
            print(f"error: --{opt} must be >= 1, got {getattr(args, opt)}", file=sys.stderr)
            return 2
    torch.set_num_threads(args.threads)
    print(f"alpha gradient at init, C={args.C}, N={args.N}, batch {args.batch}, "
          f"{args.threads} thread(s); yardstick: reference in float64")
    print("| impl | max abs f32-f64 | rel. (norm) | max abs f64 vs reference f64 | max abs grad |")
    print("| --- | --- | --- | --- | --- |")
    for r in measure(args.C, args.N, args.batch, args.seed):
        print(f"| {r['impl']} | {r['max_abs_f32_vs_f64']:.2e} | {r['rel_norm_f32_vs_f64']:.2%} | "
              f"{r['max_abs_f64_vs_reference_f64']:.1e} | {r['max_abs_grad']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
