"""The search-space protocol every space implements.

A space knows its cell encoding, its supernet, how to turn per-choice scores into a
genotype string, and its standalone network. It knows nothing of methods: the supernet
takes already-normalised mixing weights as an argument, so a method may pass softmax(alpha),
a perturbed simplex point (SDARTS), a sample (BaLeNAS) or switch products (BayesNAS).
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Protocol, runtime_checkable

import torch
from torch import nn

Weights = dict[str, torch.Tensor]

# Optional per-edge INPUT multipliers. A space lists in `input_scaled` the architecture tensors
# whose rows are edges, each a mixed op applied to one input tensor; for such a tensor `name`,
# weights may also carry `input_key(name)` = a tensor of shape arch_shapes()[name][:-1] (one
# scalar per row), and the supernet then feeds row r's mixed op with input * m[r] instead of
# the input (every op of the row, parameter-free ones included; the row's mixing weights still
# scale the op outputs). Absent: no multiplier (the same function as m = 1). BayesNAS places its
# edge switch there, as its authors' code does (BayesNAS/BayesNAS search/OneShot.py line 62).
INPUT_SUFFIX = ":input"


def input_key(name: str) -> str:
    """The weights key of the per-row input multiplier of architecture tensor `name`."""
    return name + INPUT_SUFFIX


@runtime_checkable
class SearchSpace(Protocol):
    name: str
    benchmark: str  # which benchmark table scores its genotypes: 'nb201' | 'nb101'
    zero_op: int | None  # column of the `none` (zero) op in every arch tensor; None if absent
    input_scaled: tuple[str, ...]  # tensors whose supernet takes input_key(name) multipliers

    def arch_shapes(self) -> dict[str, tuple[int, ...]]:
        """Named architecture tensors; the last dim of each is one categorical choice."""

    def normalize(self, alphas: Weights) -> Weights:
        """The DARTS view of the architecture: softmax over the last dim of each tensor."""

    def supernet(self, **kwargs) -> nn.Module:
        """One-shot model; ``forward(x, weights: Weights) -> logits``."""

    def check_supernet(self, kwargs: dict) -> None:
        """Raise ValueError naming `supernet.<arg>` and its valid values if `supernet(**kwargs)`
        would be refused or meaningless (unknown argument, wrong type, out of range)."""

    def derive(self, scores: Weights) -> str:
        """Genotype string from per-choice scores (alpha, mu, gammas...)."""

    def genotype_info(self, genotype: str) -> dict:
        """JSON-able facts about a genotype for the records (e.g. an NB101 spec and hash)."""

    def network(self, genotype: str, num_classes: int = 10) -> nn.Module:
        """The standalone network of a genotype, as its benchmark trained it."""

    # For figures (analysis/cells.py, analysis/plots.py): the space's own names, so that the
    # report never hard-codes a space.
    def ops(self) -> list[str]:
        """Op names of the space, in column order of its op-choice tensors."""

    def arch_labels(self) -> dict[str, list[str]]:
        """Row labels of every architecture tensor, e.g. NB201 edges '1<-0' (node <- input)."""

    def cell_graph(self, genotype: str) -> list[dict]:
        """The genotype's cell(s) as graphs to draw, one dict per cell type:
        {"name": str, "nodes": [node names], "edges": [(src, dst, op_label), ...]} and, where
        ops sit on nodes (NB101), "node_labels": {node: op}."""

    def sample_weights(self, generator: torch.Generator) -> Weights:
        """One-hot weights of a uniformly sampled architecture (random search)."""

    def param_free_ops(self, genotype: str) -> int:
        """Number of parameter-free operations in the cell (a collapse diagnostic)."""


def softmax_last(alphas: Weights) -> Weights:
    return {k: torch.softmax(v, dim=-1) for k, v in alphas.items()}


def one_hot_rows(shapes: dict[str, tuple[int, ...]], generator: torch.Generator) -> Weights:
    """A uniformly drawn one-hot choice in every row of every architecture tensor."""
    out = {}
    for name, shape in shapes.items():
        rows = int(torch.tensor(shape[:-1]).prod()) if len(shape) > 1 else 1
        idx = torch.randint(shape[-1], (rows,), generator=generator)
        out[name] = torch.nn.functional.one_hot(idx, shape[-1]).float().reshape(shape)
    return out


def uncompiled():
    """A context in which torch.compile'd code runs eagerly (`torch.compiler.set_stance`).

    A supernet built with `compile=True` (CUDA) runs compiled graphs, and those support only
    first-order reverse mode: a double backward through them (the Hessian diagnostic's
    Hessian-vector products) fails. Code that differentiates twice runs inside this context.
    On a torch without `set_stance` (before 2.6) it does nothing.
    """
    import contextlib
    stance = getattr(getattr(torch, "compiler", None), "set_stance", None)
    return stance("force_eager") if stance is not None else contextlib.nullcontext()


def arch_axes(space) -> dict[str, tuple[list[str], list[str]]]:
    """{tensor: (row labels, column labels)} of a space's architecture tensors. Columns come
    from the space's `arch_columns()` where its tensors differ (1Shot1: ops vs parent nodes),
    else every tensor's columns are `ops()`."""
    rows = space.arch_labels()
    cols = space.arch_columns() if hasattr(space, "arch_columns") else {k: list(space.ops()) for k in rows}
    return {k: (list(rows[k]), list(cols[k])) for k in rows}


def check_arguments(kwargs: dict[str, Any], constructor: Callable, minimum: dict[str, int] | None = None,
                    choices: dict[str, tuple] | None = None, skip: tuple[str, ...] = ()) -> None:
    """Check supernet arguments against `constructor`'s signature: each name must be one of its
    keyword parameters (but `skip`), each value of its default's type (bool, int, float, str),
    at least `minimum[name]` and one of `choices[name]` where given. Raises ValueError."""
    minimum, choices = minimum or {}, choices or {}
    signature = inspect.signature(constructor).parameters
    params = {n: p for n, p in signature.items()
              if n not in skip and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    open_ended = any(p.kind == p.VAR_KEYWORD for p in signature.values())  # **kwargs: any name
    valid = ", ".join([*params, *choices])
    for name, value in kwargs.items():
        if name in choices:
            if value not in choices[name]:
                raise ValueError(f"supernet.{name} must be one of {', '.join(map(repr, choices[name]))}, "
                                 f"got {value!r}")
            continue
        if name not in params:
            if open_ended:
                continue
            raise ValueError(f"supernet.{name}: no such supernet argument; valid: {valid}")
        default = params[name].default
        if isinstance(default, bool):
            ok, what = isinstance(value, bool), "true or false"
        elif isinstance(default, int):
            ok, what = isinstance(value, int) and not isinstance(value, bool), "a whole number"
        elif isinstance(default, float):
            ok, what = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
        elif isinstance(default, str):
            ok, what = isinstance(value, str), "a word"
        else:
            ok, what = True, ""
        if name in minimum:
            ok, what = ok and value >= minimum[name], f"{what} >= {minimum[name]}"
        if not ok:
            raise ValueError(f"supernet.{name} must be {what}, got {value!r}")
