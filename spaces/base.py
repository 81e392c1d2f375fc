"""The search-space protocol every space implements.

A space knows its cell encoding, its supernet, how to turn per-choice scores into a
genotype string, and its standalone network. It knows nothing of methods: the supernet
takes already-normalised mixing weights as an argument, so a method may pass softmax(alpha),
a perturbed simplex point (SDARTS), a sample (BaLeNAS) or switch products (BayesNAS).
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn

Weights = dict[str, torch.Tensor]


@runtime_checkable
class SearchSpace(Protocol):
    name: str
    benchmark: str  # which benchmark table scores its genotypes: 'nb201' | 'nb101'
    zero_op: int | None  # column of the `none` (zero) op in every arch tensor; None if absent

    def arch_shapes(self) -> dict[str, tuple[int, ...]]:
        """Named architecture tensors; the last dim of each is one categorical choice."""

    def normalize(self, alphas: Weights) -> Weights:
        """The DARTS view of the architecture: softmax over the last dim of each tensor."""

    def supernet(self, **kwargs) -> nn.Module:
        """One-shot model; ``forward(x, weights: Weights) -> logits``."""

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
