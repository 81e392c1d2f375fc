"""The NAS-Bench-201 search space (Dong & Yang, ICLR 2020): the space object the harness and
the methods use. Cells, arch strings and networks live in spaces/nb201/cells.py (re-exported
here: `spaces.nb201.network`, `parse_arch`, ...); the batched supernet in spaces/nb201/fast.py.
"""
from __future__ import annotations

import torch
from torch import nn

from spaces.base import Weights, check_arguments, one_hot_rows, softmax_last
from spaces.nb201.cells import (EDGES, NUM_ARCHS, NUM_NODES, ArchStringError, InferCell,  # noqa: F401
                                SearchCell, Supernet, arch_index_order, format_arch, network,
                                parse_arch)
from spaces.nb201.fast import FastSupernet
from spaces.nb201.ops import OPS, PARAM_FREE_OPS

# Search protocols (SearchConfig fields). `paper`: AutoDL-Projects' protocol for the published
# DARTS numbers (docs/reference/nb201.md#search-protocol). impl="fast": the batched supernet (spaces/nb201/fast.py),
# same math as impl="reference" (tests/spaces/test_nb201_fast.py) and faster (benchmark.measure.speed).
PROFILES = {
    "paper": dict(epochs=50, batch_size=64, split="official", hessian_every=5,
                  supernet=dict(C=16, N=5, affine=False, track_running_stats=False, impl="fast")),
    "smoke": dict(epochs=2, batch_size=32, split="official", train_subset=256,
                  supernet=dict(C=4, N=1, affine=False, track_running_stats=False, impl="fast")),
}
# `fair`: one schedule for every method (benchmark/harness/config.py): the space's DARTS
# protocol, the paper profile's values (AutoDL-Projects' DARTS-V1 on NB201), with no method's
# overrides but its options and step order.
PROFILES["fair"] = PROFILES["paper"]


class NB201Space:
    name = "nb201"
    benchmark = "nb201"  # scored by the NB201 table (benchmark/harness/scoring.py)
    zero_op = OPS.index("none")
    profiles = PROFILES
    input_scaled = ("alpha",)  # weights may carry input_key("alpha"): (6,) edge-input multipliers

    def arch_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"alpha": (len(EDGES), len(OPS))}

    def normalize(self, alphas: Weights) -> Weights:
        return softmax_last(alphas)

    def supernet(self, **kwargs) -> nn.Module:
        """kwargs: C, N, num_classes, affine, track_running_stats, conv_bias (default False:
        no conv bias in the search cells, as the NB201 paper's code; see SearchCell), impl
        ('reference'|'fast');
        impl='fast' also takes channels_last, bf16, compile (see spaces/nb201/fast.py)."""
        impl = kwargs.pop("impl", "reference")
        if impl == "fast":  # same math, batched; extra kwargs: channels_last, bf16, compile
            return FastSupernet(**kwargs)
        if impl != "reference":
            raise ValueError(f"unknown NB201 supernet impl {impl!r}; valid: reference, fast")
        return Supernet(**kwargs)

    def check_supernet(self, kwargs: dict) -> None:
        """C (channels) and N (cells per stage) at least 1; the arguments of the chosen impl."""
        impl = kwargs.get("impl", "reference")
        check_arguments(kwargs, FastSupernet if impl == "fast" else Supernet, minimum={"C": 1, "N": 1},
                        choices={"impl": ("reference", "fast")}, skip=("cell_cls",))

    def derive(self, scores: Weights) -> str:
        """Per-edge argmax over all 5 ops (`none` included), as the NB201 protocol derives."""
        a = scores["alpha"]
        return format_arch(OPS[int(i)] for i in a.argmax(dim=-1))

    def genotype_info(self, genotype: str) -> dict:
        return {"ops": list(parse_arch(genotype))}

    def network(self, genotype: str, num_classes: int = 10) -> nn.Module:
        return network(genotype, num_classes)

    def sample_weights(self, generator: torch.Generator) -> Weights:
        return one_hot_rows(self.arch_shapes(), generator)

    def param_free_ops(self, genotype: str) -> int:
        return sum(op in PARAM_FREE_OPS for op in parse_arch(genotype))

    def ops(self) -> list[str]:
        return list(OPS)

    def arch_labels(self) -> dict[str, list[str]]:
        """Rows of `alpha`: the edges 'j<-i' in arch-string order."""
        return {"alpha": [f"{j}<-{i}" for j, i in EDGES]}

    def cell_graph(self, genotype: str) -> list[dict]:
        """The cell as NB201's figures draw it: nodes 0..3 (0 = cell input, 3 = output), one
        edge i->j per op; `none` edges (zero) are left out, as a drawn cell has no such edge;
        the nodes keep their order left to right ("layers")."""
        ops = parse_arch(genotype)
        edges = [(str(i), str(j), op) for (j, i), op in zip(EDGES, ops) if op != "none"]
        nodes = [str(n) for n in range(NUM_NODES)]
        return [{"name": "cell", "nodes": nodes, "edges": edges, "layers": [[n] for n in nodes]}]
