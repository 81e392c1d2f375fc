"""DARTS genotypes: the text form, parsing, validation and the DARTS derivation rule.

Text form (the canonical one; what the records hold), as the DARTS code prints its
`Genotype` namedtuple with list-valued concats:

    Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ...], normal_concat=[2, 3, 4, 5],
             reduce=[('max_pool_3x3', 0), ...], reduce_concat=[2, 3, 4, 5])

(on one line). A cell lists 2 (op, input) pairs per intermediate node, nodes in order; inputs
are 0 = c_{k-2}, 1 = c_{k-1}, 2.. = earlier intermediate nodes. The authors' search script
(quark0/darts cnn/model_search.py `genotype()`) builds the concats as `range(2, 6)`, so its
logs print `normal_concat=range(2, 6)`: `parse_genotype` accepts that too and
`format_genotype` writes the list form.

Parsing goes through `ast` (no eval): only the call `Genotype(...)` with the four keyword
arguments, literal lists/tuples, strings, integers and `range(a, b)` are accepted.

Derivation (`derive_cell`; model_search.py `genotype()`): on the softmax weights of one cell
(14 x 8), for each intermediate node keep the 2 incoming edges with the largest non-`none`
weight (ties: the lower input index, as Python's stable sort), each with its argmax op over
the non-`none` ops (ties: the first op); pairs are listed strongest edge first. With an op set
(spaces/darts/op_sets.py) each edge's columns are its own ops; `none` is left out where the edge
has it (SmoothDARTS sota/cnn/model_search.py `genotype()`, lines 179-209), every other op,
RobustDARTS's `noise` included, can be chosen.
"""
from __future__ import annotations

import ast
from typing import NamedTuple, Sequence

import torch

from spaces.darts.ops import KNOWN_OPS, NONE, OPS

STEPS = 4                                   # intermediate nodes per cell
EDGES_PER_NODE = 2                          # inputs kept per intermediate node
NUM_EDGES = sum(i + 2 for i in range(STEPS))  # 14 candidate edges per cell
CONCAT = list(range(2, STEPS + 2))          # [2, 3, 4, 5]: every intermediate node
# Edge rows of an architecture tensor: (destination node, source) with destination as the
# node id 2..5 and source 0..dst-1, in the authors' order (node by node, source increasing).
EDGE_LIST: tuple[tuple[int, int], ...] = tuple((i + 2, j) for i in range(STEPS) for j in range(i + 2))


class GenotypeError(ValueError):
    """A genotype that does not parse or is not in the DARTS space; the message says why."""


class Genotype(NamedTuple):
    normal: list
    normal_concat: list
    reduce: list
    reduce_concat: list


def format_genotype(g: Genotype) -> str:
    """The canonical text (what DARTS prints for list-valued concats)."""
    validate(g)
    cell = lambda pairs: "[" + ", ".join(f"({op!r}, {int(j)})" for op, j in pairs) + "]"  # noqa: E731
    concat = lambda c: "[" + ", ".join(str(int(i)) for i in c) + "]"  # noqa: E731
    return (f"Genotype(normal={cell(g.normal)}, normal_concat={concat(g.normal_concat)}, "
            f"reduce={cell(g.reduce)}, reduce_concat={concat(g.reduce_concat)})")


MAX_TEXT = 10_000   # characters of genotype text (a DARTS genotype has ~400)
MAX_CONCAT = 64     # nodes a range() concat may name before it is refused (a cell has STEPS)


def _literal(node: ast.AST, what: str):
    """A literal value, with `range(a, b)` allowed (the authors' concat)."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range"
            and not node.keywords and 1 <= len(node.args) <= 3):
        args = [_literal(a, what) for a in node.args]
        if not all(isinstance(a, int) and not isinstance(a, bool) for a in args):
            raise GenotypeError(f"{what}: range() takes integers, got {ast.unparse(node)!r}")
        if len(args) == 3 and args[2] == 0:
            raise GenotypeError(f"{what}: range() step must not be zero, got {ast.unparse(node)!r}")
        r = range(*args)   # lazy: its length is known without building it
        if len(r) > MAX_CONCAT:
            raise GenotypeError(f"{what}: {ast.unparse(node)} has {len(r)} nodes; a cell has at most "
                                f"{MAX_CONCAT} (valid: nodes 2-{STEPS + 1})")
        return list(r)
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, MemoryError, RecursionError):
        raise GenotypeError(f"{what}: only literal lists, tuples, strings, integers and range(a, b) "
                            f"are allowed, got {ast.unparse(node)!r}") from None


def parse_genotype(text: str) -> Genotype:
    """Genotype text -> validated Genotype (lists of (op, input) tuples, list concats)."""
    if isinstance(text, Genotype):
        validate(text)
        return text
    if not isinstance(text, str):
        raise GenotypeError(f"a genotype must be a string, got {type(text).__name__}")
    if len(text) > MAX_TEXT:
        raise GenotypeError(f"genotype text of {len(text)} characters; a DARTS genotype has a few "
                            f"hundred (at most {MAX_TEXT} accepted)")
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as e:
        raise GenotypeError(f"genotype does not parse ({e.msg}): {text!r}") from None
    except (MemoryError, RecursionError, ValueError) as e:   # absurdly nested text
        raise GenotypeError(f"genotype does not parse ({type(e).__name__}): {text[:80]!r}...") from None
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and tree.func.id == "Genotype"):
        raise GenotypeError(f"expected Genotype(normal=..., normal_concat=..., reduce=..., "
                            f"reduce_concat=...), got {text!r}")
    if tree.args:
        raise GenotypeError("Genotype(...) takes keyword arguments only: "
                            f"normal=, normal_concat=, reduce=, reduce_concat=; got {text!r}")
    fields = {}
    for kw in tree.keywords:
        if kw.arg not in Genotype._fields:
            raise GenotypeError(f"unknown Genotype field {kw.arg!r}; valid: {', '.join(Genotype._fields)}")
        if kw.arg in fields:
            raise GenotypeError(f"Genotype field {kw.arg!r} given twice")
        fields[kw.arg] = _literal(kw.value, kw.arg)
    missing = [f for f in Genotype._fields if f not in fields]
    if missing:
        raise GenotypeError(f"Genotype is missing {', '.join(missing)}")
    g = Genotype(normal=_pairs(fields["normal"], "normal"), normal_concat=_concat(fields["normal_concat"], "normal_concat"),
                 reduce=_pairs(fields["reduce"], "reduce"), reduce_concat=_concat(fields["reduce_concat"], "reduce_concat"))
    validate(g)
    return g


def _pairs(value, name: str) -> list[tuple[str, int]]:
    if not isinstance(value, (list, tuple)):
        raise GenotypeError(f"{name}: expected a list of (op, input) pairs, got {value!r}")
    out = []
    for k, p in enumerate(value):
        if not (isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[0], str)
                and isinstance(p[1], int) and not isinstance(p[1], bool)):
            raise GenotypeError(f"{name}[{k}]: expected an (op name, input index) pair, got {p!r}")
        out.append((p[0], p[1]))
    return out


def _concat(value, name: str) -> list[int]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(i, int) for i in value):
        raise GenotypeError(f"{name}: expected a list of node ids, got {value!r}")
    return list(value)


def validate(g: Genotype) -> None:
    """Raise GenotypeError naming the first thing that puts `g` outside the DARTS space."""
    for cell in ("normal", "reduce"):
        pairs = getattr(g, cell)
        if len(pairs) != STEPS * EDGES_PER_NODE:
            raise GenotypeError(f"{cell}: a cell needs {STEPS * EDGES_PER_NODE} (op, input) pairs "
                                f"({EDGES_PER_NODE} per intermediate node x {STEPS} nodes), got {len(pairs)}")
        for k, (op, j) in enumerate(pairs):
            node = k // EDGES_PER_NODE + 2
            if op not in KNOWN_OPS:
                raise GenotypeError(f"{cell}[{k}]: unknown op {op!r}; valid: {', '.join(KNOWN_OPS[1:])}")
            if op == OPS[NONE]:
                raise GenotypeError(f"{cell}[{k}]: 'none' is not an op of a derived cell "
                                    f"(the DARTS derivation excludes it); valid: {', '.join(KNOWN_OPS[1:])}")
            if not 0 <= j < node:
                raise GenotypeError(f"{cell}[{k}]: node {node} can take inputs 0..{node - 1} "
                                    f"(0 = c_{{k-2}}, 1 = c_{{k-1}}, 2.. = earlier nodes), got {j}")
        for node in range(2, STEPS + 2):
            a, b = pairs[2 * (node - 2)][1], pairs[2 * (node - 2) + 1][1]
            if a == b:
                raise GenotypeError(f"{cell}: node {node} takes input {a} twice; its two inputs "
                                    "must be different nodes")
        concat = getattr(g, cell + "_concat")
        if list(concat) != CONCAT:
            raise GenotypeError(f"{cell}_concat: the DARTS space concatenates every intermediate "
                                f"node, {CONCAT}; got {list(concat)}")


def canonical(text: str) -> str:
    """Parse, validate and re-format (e.g. `range(2, 6)` concats -> lists)."""
    return format_genotype(parse_genotype(text))


def derive_cell(weights: torch.Tensor, edge_ops=None) -> list[tuple[str, int]]:
    """The DARTS rule on one cell's normalised weights (NUM_EDGES x ops per edge); `edge_ops`
    names each edge's columns (default: OPS on every edge)."""
    w = torch.as_tensor(weights).detach().float().cpu()
    edge_ops = [tuple(OPS)] * NUM_EDGES if edge_ops is None else [tuple(e) for e in edge_ops]
    width = len(edge_ops[0])
    if tuple(w.shape) != (NUM_EDGES, width):
        raise ValueError(f"cell weights must be ({NUM_EDGES}, {width}), got {tuple(w.shape)}")
    rows = w.tolist()
    real = [[k for k, op in enumerate(ops) if op != "none"] for ops in edge_ops]
    gene, start = [], 0
    for i in range(STEPS):
        n = i + 2
        strength = [max(rows[start + j][k] for k in real[start + j]) for j in range(n)]
        for j in sorted(range(n), key=lambda j: -strength[j])[:EDGES_PER_NODE]:
            r, cols = rows[start + j], real[start + j]
            best = max(range(len(cols)), key=lambda k: (r[cols[k]], -k))  # first maximum
            gene.append((edge_ops[start + j][cols[best]], j))
        start += n
    return gene


def derive_genotype(normal: torch.Tensor, reduce: torch.Tensor, edge_ops=None) -> str:
    """Both cells; `edge_ops` {"normal": per-edge op tuples, "reduce": ...} (default OPS)."""
    edge_ops = edge_ops or {}
    return format_genotype(Genotype(derive_cell(normal, edge_ops.get("normal")), list(CONCAT),
                                    derive_cell(reduce, edge_ops.get("reduce")), list(CONCAT)))


def _g(normal: Sequence, reduce: Sequence) -> str:
    return format_genotype(Genotype(list(normal), list(CONCAT), list(reduce), list(CONCAT)))


# The published cells (quark0/darts cnn/genotypes.py; DARTS paper Fig. 4/5).
DARTS_V1 = _g(  # first order
    [("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
     ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2)],
    [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
     ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0)])
DARTS_V2 = _g(  # second order: the paper's DARTS cell
    [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
     ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
    [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
     ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)])
# SDARTS's CIFAR-10 cells from the 7-op DARTS space (s5) (xiangning-chen/SmoothDARTS
# sota/cnn/genotypes.py line 26 `c10_s5_random` = SDARTS-RS, line 27 `c10_s5_pgd` = SDARTS-ADV;
# 3.4M and 3.3M parameters as quoted in DARTS-PT / TE-NAS Table 2).
SDARTS_RS = _g(
    [("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_5x5", 1), ("skip_connect", 0),
     ("sep_conv_3x3", 3), ("skip_connect", 1), ("sep_conv_3x3", 1), ("dil_conv_3x3", 2)],
    [("max_pool_3x3", 0), ("sep_conv_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
     ("dil_conv_5x5", 3), ("max_pool_3x3", 0), ("sep_conv_3x3", 2), ("sep_conv_5x5", 3)])
SDARTS_ADV = _g(
    [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 1), ("skip_connect", 0),
     ("sep_conv_5x5", 0), ("dil_conv_3x3", 3), ("dil_conv_3x3", 4), ("skip_connect", 0)],
    [("max_pool_3x3", 0), ("sep_conv_5x5", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
     ("skip_connect", 3), ("skip_connect", 2), ("skip_connect", 2), ("sep_conv_5x5", 4)])
# Names for `python -m benchmark.retrain --genotype NAME` (the first name of a cell names its
# retraining folder); the SDARTS authors' names are aliases.
PUBLISHED = {"DARTS_V1": DARTS_V1, "DARTS_V2": DARTS_V2, "SDARTS_RS": SDARTS_RS, "SDARTS_ADV": SDARTS_ADV}
ALIASES = {"c10_s5_random": "SDARTS_RS", "c10_s5_pgd": "SDARTS_ADV"}
