"""Op sets of the DARTS cell space: which candidate ops each of the 14 edges of a normal and of a
reduction cell mixes.

An op set is data, the same for both search networks (the reference `SearchNetwork` and the
fast one, `supernet.impl=fast`): per cell type ("normal", "reduce") one tuple of op names per
edge, edges in the weight-row order of `genotype.EDGE_LIST`, ops in column order. Every edge of
one set has the same number of ops (the authors keep one (14, n) alpha per cell type), so an
architecture tensor is (14, n).

* `darts`: the 8 ops of quark0/darts cnn/genotypes.py `PRIMITIVES` on every edge (`none` first).
* `s5`: SmoothDARTS's "original DARTS space" (xiangning-chen/SmoothDARTS sota/cnn/spaces.py
  lines 80-92, `PRIMITIVES` with `'none'` commented out, and line 99 `'s5'`): the 7 non-`none`
  ops in the same order; its published CIFAR-10 cells `c10_s5_random` / `c10_s5_pgd`
  (sota/cnn/genotypes.py lines 26-27) were searched in it. SDARTS's DARTS-space runs use it.
* `s1`..`s4`: the RobustDARTS spaces (Zela et al., ICLR 2020) as SmoothDARTS defines them
  (sota/cnn/spaces.py lines 6-61, 63-66, 68-73, 75-78): s1 a per-edge pair of ops, different for
  the normal and the reduction cell; s2 {skip_connect, sep_conv_3x3}; s3 {none, skip_connect,
  sep_conv_3x3}; s4 {noise, sep_conv_3x3} on every edge.

Derivation (SmoothDARTS sota/cnn/model_search.py `genotype()`, lines 179-209): `none` is left
out of an edge's strength and of its op choice where the edge has it; every other op (`noise`
included) can be chosen, so a derived s4 cell can hold `noise` (the authors' evaluation
network builds it from the same OPS table, sota/cnn/model.py line 39).
"""
from __future__ import annotations

from spaces.darts.ops import KNOWN_OPS, OPS

NUM_EDGES = 14
CELLS = ("normal", "reduce")

EdgeOps = tuple[tuple[str, ...], ...]   # one tuple of op names per edge


def _uniform(ops: tuple[str, ...]) -> dict[str, EdgeOps]:
    return {cell: (tuple(ops),) * NUM_EDGES for cell in CELLS}


_S1_NORMAL = (("skip_connect", "dil_conv_3x3"), ("skip_connect", "dil_conv_5x5"),
              ("skip_connect", "dil_conv_5x5"), ("skip_connect", "sep_conv_3x3"),
              ("skip_connect", "dil_conv_3x3"), ("max_pool_3x3", "skip_connect"),
              ("skip_connect", "sep_conv_3x3"), ("skip_connect", "sep_conv_3x3"),
              ("skip_connect", "dil_conv_3x3"), ("skip_connect", "sep_conv_3x3"),
              ("max_pool_3x3", "skip_connect"), ("skip_connect", "dil_conv_3x3"),
              ("dil_conv_3x3", "dil_conv_5x5"), ("dil_conv_3x3", "dil_conv_5x5"))
_S1_REDUCE = (("max_pool_3x3", "avg_pool_3x3"), ("max_pool_3x3", "dil_conv_3x3"),
              ("max_pool_3x3", "avg_pool_3x3"), ("max_pool_3x3", "avg_pool_3x3"),
              ("skip_connect", "dil_conv_5x5"), ("max_pool_3x3", "avg_pool_3x3"),
              ("max_pool_3x3", "sep_conv_3x3"), ("skip_connect", "dil_conv_3x3"),
              ("skip_connect", "dil_conv_5x5"), ("max_pool_3x3", "avg_pool_3x3"),
              ("max_pool_3x3", "avg_pool_3x3"), ("skip_connect", "dil_conv_5x5"),
              ("skip_connect", "dil_conv_5x5"), ("skip_connect", "dil_conv_5x5"))

OP_SETS: dict[str, dict[str, EdgeOps]] = {
    "darts": _uniform(OPS),
    "s5": _uniform(tuple(o for o in OPS if o != "none")),
    "s1": {"normal": _S1_NORMAL, "reduce": _S1_REDUCE},
    "s2": _uniform(("skip_connect", "sep_conv_3x3")),
    "s3": _uniform(("none", "skip_connect", "sep_conv_3x3")),
    "s4": _uniform(("noise", "sep_conv_3x3")),
}


def check_op_set(edge_ops: dict[str, EdgeOps]) -> dict[str, EdgeOps]:
    """`edge_ops` as tuples, after checking: both cell types, 14 edges each, known ops, no
    repeats on an edge, the same number of ops on every edge. Raises ValueError."""
    if not isinstance(edge_ops, dict) or set(edge_ops) != set(CELLS):
        raise ValueError(f"edge_ops must map 'normal' and 'reduce' to {NUM_EDGES} op tuples each")
    out, width = {}, None
    for cell in CELLS:
        rows = tuple(tuple(e) for e in edge_ops[cell])
        if len(rows) != NUM_EDGES:
            raise ValueError(f"edge_ops[{cell!r}] has {len(rows)} edges; a DARTS cell has {NUM_EDGES}")
        for k, ops in enumerate(rows):
            bad = [o for o in ops if o not in KNOWN_OPS]
            if bad:
                raise ValueError(f"edge_ops[{cell!r}][{k}]: unknown op {bad[0]!r}; valid: {', '.join(KNOWN_OPS)}")
            if len(set(ops)) != len(ops) or not ops:
                raise ValueError(f"edge_ops[{cell!r}][{k}]: {ops} must name distinct ops")
            if ops == ("none",):
                raise ValueError(f"edge_ops[{cell!r}][{k}]: an edge needs an op other than 'none'")
            width = len(ops) if width is None else width
            if len(ops) != width:
                raise ValueError(f"edge_ops: every edge must offer the same number of ops (one "
                                 f"(14, n) tensor per cell type); edge {cell}[{k}] has {len(ops)}, others {width}")
        out[cell] = rows
    return out


def ops_of(edge_ops: dict[str, EdgeOps]) -> list[str]:
    """Every op name of the set, in order of first appearance (normal cell first)."""
    seen: list[str] = []
    for cell in CELLS:
        for ops in edge_ops[cell]:
            seen += [o for o in ops if o not in seen]
    return seen


def uniform_ops(edge_ops: dict[str, EdgeOps]) -> tuple[str, ...] | None:
    """The one op tuple every edge of both cell types has, or None where edges differ (s1)."""
    rows = {ops for cell in CELLS for ops in edge_ops[cell]}
    return next(iter(rows)) if len(rows) == 1 else None


for _name, _set in OP_SETS.items():   # the tables above are checked once, at import
    check_op_set(_set)
