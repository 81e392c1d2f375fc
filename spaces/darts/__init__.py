"""The DARTS CNN search space (Liu, Simonyan & Yang, ICLR 2019), as the authors' code defines it
(github quark0/darts, cnn/).

Public names: `network` (the evaluation network of a genotype), `parse_genotype`,
`format_genotype`, `canonical`, `GenotypeError`, `DARTS_V1`, `DARTS_V2`, `OPS`,
`count_parameters`.
"""
from __future__ import annotations

from spaces.darts.genotype import (CONCAT, DARTS_V1, DARTS_V2, EDGE_LIST, NUM_EDGES, PUBLISHED,  # noqa: F401
                                   STEPS, Genotype, GenotypeError, canonical, derive_cell,
                                   derive_genotype, format_genotype, parse_genotype, validate)
from spaces.darts.eval_network import NetworkCIFAR, count_parameters, drop_path, network  # noqa: F401
from spaces.darts.ops import OPS, PARAM_FREE_OPS  # noqa: F401

import torch
from torch import nn

from spaces.base import Weights, check_arguments, softmax_last
from spaces.darts.ops import NONE


class LogitsOnly(nn.Module):
    """An evaluation network whose forward returns the main logits only (for the proxies)."""

    def __init__(self, net: NetworkCIFAR):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[0]


# Search profiles. `paper`: the DARTS authors' cnn/train_search.py (quark0/darts): 50 epochs,
# batch 64, CIFAR-10 training set split into its first and second halves (train_portion 0.5,
# SubsetRandomSampler over indices[:25000] / indices[25000:] -> split "contiguous"), SGD lr
# 0.025 cosine to 0.001, momentum 0.9 (no Nesterov), wd 3e-4, grad-norm clip 5; architecture
# Adam lr 3e-4, betas (0.5, 0.999), wd 1e-3, alpha init 1e-3 * N(0, 1); architect.step runs
# before the weight step (arch_first); supernet C=16, 8 cells. hessian_every 5: the dominant
# eigenvalue of the architecture Hessian every 5 epochs (the collapse diagnostic of Zela et
# al., who track it in this space). `smoke`: the same code path in seconds on a CPU.
# impl="reference" (the default): the per-edge port of the authors' network. impl="fast" (opt-in,
# --set supernet.impl=fast): the batched network of spaces/darts/fast.py, the reference's
# function (tests/spaces/test_darts_fast.py) at about half its step time for darts
# (benchmark.measure.speed --space darts); it takes BayesNAS's per-edge input multipliers. Not yet
# the default: darts-2nd's measured ratio (docs/spaces/darts.md#speed) has not shown 2x.
PROFILES = {
    "paper": dict(epochs=50, batch_size=64, split="contiguous", train_subset=None, w_lr=0.025,
                  w_lr_min=0.001, w_momentum=0.9, w_nesterov=False, w_weight_decay=3e-4,
                  grad_clip=5.0, a_lr=3e-4, a_betas=[0.5, 0.999], a_weight_decay=1e-3,
                  arch_first=True, arch_init_std=1e-3, hessian_every=5,
                  supernet=dict(C=16, layers=8, impl="reference")),
    "smoke": dict(epochs=2, batch_size=16, split="contiguous", train_subset=32, w_lr=0.025,
                  w_lr_min=0.001, w_momentum=0.9, w_nesterov=False, w_weight_decay=3e-4,
                  grad_clip=5.0, a_lr=3e-4, a_betas=[0.5, 0.999], a_weight_decay=1e-3,
                  arch_first=True, arch_init_std=1e-3, hessian_every=0,
                  supernet=dict(C=4, layers=3, impl="reference")),
}

# The network BaLeNAS-TF's proxies score (`proxy_network`): the search network's size (C=16,
# 8 cells), no auxiliary head, freshly initialised. The 36-channel 20-cell evaluation network
# would cost about 8x the compute per candidate for a score that only ranks cells.
PROXY_C, PROXY_LAYERS = 16, 8


class DartsSpace:
    """The DARTS CNN space behind the protocol of spaces/base.py.

    Architecture tensors: "normal" and "reduce", each (14, 8): rows = the 14 edges (node 2 <- 0,
    1; node 3 <- 0, 1, 2; ...; see `arch_labels`), columns = OPS. Genotypes are scored by
    training from scratch (`benchmark = "darts-train"`).
    """

    name = "darts"
    benchmark = "darts-train"
    zero_op = NONE
    profiles = PROFILES
    # weights may carry input_key("normal") / input_key("reduce"): (14,) multipliers of each
    # edge's input (spaces.base.input_key), honoured by the search network
    input_scaled = ("normal", "reduce")

    def arch_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"normal": (NUM_EDGES, len(OPS)), "reduce": (NUM_EDGES, len(OPS))}

    def ops(self) -> list[str]:
        return list(OPS)

    def arch_labels(self) -> dict[str, list[str]]:
        """Row labels of every architecture tensor: 'dst<-src' in genotype node ids."""
        rows = [f"{dst}<-{src}" for dst, src in EDGE_LIST]
        return {"normal": list(rows), "reduce": list(rows)}

    def normalize(self, alphas: Weights) -> Weights:
        return softmax_last(alphas)

    def supernet(self, **kwargs) -> nn.Module:
        """kwargs: C (16), layers (8), num_classes (10), stem_multiplier (3), impl ('reference',
        the profiles' default too; 'fast' is opt-in: --set supernet.impl=fast); impl='fast' also takes channels_last (True) and
        skip_zero (True) (see spaces/darts/fast.py)."""
        impl = kwargs.pop("impl", "reference")
        if impl == "fast":
            from spaces.darts.fast import FastSearchNetwork
            return FastSearchNetwork(**kwargs)
        if impl != "reference":
            raise ValueError(f"unknown DARTS supernet impl {impl!r}; valid: reference, fast")
        from spaces.darts.search_network import SearchNetwork
        return SearchNetwork(**kwargs)

    def check_supernet(self, kwargs: dict) -> None:
        """C (channels) at least 1; layers (cells) at least 3, so that both reduction cells
        (at 1/3 and 2/3 of the depth) exist; stem_multiplier at least 1; steps and multiplier
        only 4 (the space's 14 edges per cell, quark0/darts cnn/model_search.py defaults, which
        SearchNetwork refuses to change): refused here, at planning, not after the run's
        folder exists; impl one of reference, fast, and only the chosen impl's arguments."""
        from spaces.darts.fast import FastSearchNetwork
        from spaces.darts.search_network import SearchNetwork
        cls = FastSearchNetwork if kwargs.get("impl", "reference") == "fast" else SearchNetwork
        check_arguments(kwargs, cls, minimum={"C": 1, "layers": 3, "stem_multiplier": 1},
                        choices={"steps": (4,), "multiplier": (4,), "impl": ("reference", "fast")})

    def derive(self, scores: Weights) -> str:
        """The DARTS rule on softmax(scores) (model_search.py applies softmax to alpha first)."""
        return self.derive_weights(softmax_last({k: torch.as_tensor(v).float() for k, v in scores.items()}))

    def derive_weights(self, weights: Weights) -> str:
        """The DARTS rule on weights used as given (non-negative magnitudes, e.g. one-hot
        samples or BayesNAS gammas): top-2 incoming edges by largest non-`none` weight, each
        with its argmax non-`none` op."""
        return derive_genotype(weights["normal"], weights["reduce"])

    def genotype_info(self, genotype: str) -> dict:
        g = parse_genotype(genotype)
        counts = {cell: {op: sum(o == op for o, _ in getattr(g, cell)) for op in OPS[1:]}
                  for cell in ("normal", "reduce")}
        return {"normal": [list(p) for p in g.normal], "reduce": [list(p) for p in g.reduce],
                "op_counts": counts,
                "skip_connections": counts["normal"]["skip_connect"],
                "param_free_ops": sum(counts["normal"][op] for op in OPS if op in PARAM_FREE_OPS and op != "none")}

    def network(self, genotype: str, num_classes: int = 10) -> nn.Module:
        """The evaluation network (C=36, 20 cells, auxiliary head); forward -> (logits, aux)."""
        return network(genotype, num_classes=num_classes)

    def proxy_network(self, genotype: str, num_classes: int = 10) -> nn.Module:
        """A smaller standalone network for training-free proxies: C=16, 8 cells, no auxiliary
        head; forward -> logits."""
        return LogitsOnly(network(genotype, C=PROXY_C, layers=PROXY_LAYERS, num_classes=num_classes,
                                  auxiliary=False))

    def sample_weights(self, generator: torch.Generator) -> Weights:
        """A uniformly sampled DARTS cell pair as mixing weights, as random search with weight
        sharing samples it (Li & Talwalkar, liamcli/randomNAS_release darts_wrapper_discrete.py
        `sample_arch`): per intermediate node 2 distinct inputs drawn uniformly, each with a
        uniformly drawn op; weight 1 on those (edge, op) entries, 0 elsewhere (unchosen edges
        contribute nothing). Ops are drawn among the 7 non-`none` ops (a derived cell has no
        `none`), so `derive` of a sample returns exactly the sampled cells."""
        out = {}
        real = [k for k in range(len(OPS)) if k != NONE]
        for name in ("normal", "reduce"):
            w = torch.zeros(NUM_EDGES, len(OPS))
            start = 0
            for i in range(STEPS):
                n = i + 2
                for j in torch.randperm(n, generator=generator)[:2].tolist():
                    op = real[int(torch.randint(len(real), (1,), generator=generator))]
                    w[start + j, op] = 1.0
                start += n
            out[name] = w
        return out

    def param_free_ops(self, genotype: str) -> int:
        """Parameter-free ops (max/avg pool, skip_connect) in the NORMAL cell."""
        return self.genotype_info(genotype)["param_free_ops"]

    def skip_connections(self, genotype: str) -> int:
        """skip_connect ops in the NORMAL cell (the DARTS collapse signal)."""
        return self.genotype_info(genotype)["skip_connections"]

    def cell_graph(self, genotype: str) -> list[dict]:
        """Both cells as graphs for drawing: nodes 'c_{k-2}', 'c_{k-1}', '0'..'3', 'c_{k}';
        edges (src, dst, op), plus the concat edges (node, 'c_{k}', 'concat')."""
        g = parse_genotype(genotype)
        inputs = ["c_{k-2}", "c_{k-1}"]
        name = lambda j: inputs[j] if j < 2 else str(j - 2)  # noqa: E731
        out = []
        for cell in ("normal", "reduce"):
            pairs = getattr(g, cell)
            edges = [(name(j), str(k // 2), op) for k, (op, j) in enumerate(pairs)]
            edges += [(str(i - 2), "c_{k}", "concat") for i in getattr(g, cell + "_concat")]
            out.append({"name": cell, "nodes": inputs + [str(i) for i in range(STEPS)] + ["c_{k}"],
                        "edges": edges})
        return out
