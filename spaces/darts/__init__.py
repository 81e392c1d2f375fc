"""The DARTS CNN search space (Liu, Simonyan & Yang, ICLR 2019), as the authors' code defines it
(github quark0/darts, cnn/).

Public names: `network` (the evaluation network of a genotype), `parse_genotype`,
`format_genotype`, `canonical`, `GenotypeError`, `DARTS_V1`, `DARTS_V2`, `SDARTS_RS`,
`SDARTS_ADV`, `PUBLISHED`, `OPS`, `OP_SETS`, `count_parameters`.

Op sets (spaces/darts/op_sets.py): the space `darts` searches the 8 DARTS ops unless the run's
`supernet.op_set` says otherwise (`s5`: the 7 ops without `none`, which SDARTS's profile sets);
the spaces `darts-s1`..`darts-s4` are the RobustDARTS spaces, each with its own op set. A space
object is configured for one run with `for_supernet(cfg.supernet)` (spaces.space_for).
"""
from __future__ import annotations

from spaces.darts.genotype import (ALIASES, CONCAT, DARTS_V1, DARTS_V2, EDGE_LIST, NUM_EDGES,  # noqa: F401
                                   PUBLISHED, SDARTS_ADV, SDARTS_RS, STEPS, Genotype, GenotypeError,
                                   canonical, derive_cell, derive_genotype, format_genotype,
                                   parse_genotype, validate)
from spaces.darts.eval_network import NetworkCIFAR, count_parameters, drop_path, network  # noqa: F401
from spaces.darts.ops import KNOWN_OPS, OPS, PARAM_FREE_OPS  # noqa: F401
from spaces.darts.op_sets import OP_SETS, ops_of, uniform_ops  # noqa: F401

import torch
from torch import nn

from spaces.base import Weights, check_arguments, softmax_last


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
# impl="fast" (the default of both profiles): the batched network of spaces/darts/fast.py, the
# reference's function (tests/spaces/test_darts_fast.py: logits, gradients and BN statistics to
# 1e-12 in float64; every method's smoke records alike) at under half its step time on a CPU
# (benchmark.measure.speed --space darts: darts 2.18x / 2.22x, darts-2nd 2.12x on 1 / 2
# threads; docs/spaces/darts.md#speed). impl="reference" (--set supernet.impl=reference): the
# per-edge port of the authors' network, kept as the yardstick.
PROFILES = {
    "paper": dict(epochs=50, batch_size=64, split="contiguous", train_subset=None, w_lr=0.025,
                  w_lr_min=0.001, w_momentum=0.9, w_nesterov=False, w_weight_decay=3e-4,
                  grad_clip=5.0, a_lr=3e-4, a_betas=[0.5, 0.999], a_weight_decay=1e-3,
                  arch_first=True, arch_init_std=1e-3, hessian_every=5,
                  supernet=dict(C=16, layers=8, impl="fast")),
    "smoke": dict(epochs=2, batch_size=16, split="contiguous", train_subset=32, w_lr=0.025,
                  w_lr_min=0.001, w_momentum=0.9, w_nesterov=False, w_weight_decay=3e-4,
                  grad_clip=5.0, a_lr=3e-4, a_betas=[0.5, 0.999], a_weight_decay=1e-3,
                  arch_first=True, arch_init_std=1e-3, hessian_every=0,
                  supernet=dict(C=4, layers=3, impl="fast")),
}
# `fair`: one schedule for every method (benchmark/harness/config.py): the space's DARTS
# protocol, the paper profile's values (quark0/darts cnn/train_search.py), with no method's
# overrides but its options and step order.
PROFILES["fair"] = PROFILES["paper"]

# The network BaLeNAS-TF's proxies score (`proxy_network`): the search network's size (C=16,
# 8 cells), no auxiliary head, freshly initialised. The 36-channel 20-cell evaluation network
# would cost about 8x the compute per candidate for a score that only ranks cells.
PROXY_C, PROXY_LAYERS = 16, 8


class DartsSpace:
    """The DARTS CNN space behind the protocol of spaces/base.py.

    Architecture tensors: "normal" and "reduce", each (14, n): rows = the 14 edges (node 2 <- 0,
    1; node 3 <- 0, 1, 2; ...; see `arch_labels`), columns = the op set's ops of each edge (n = 8,
    OPS, in the `darts` op set). Genotypes are scored by training from scratch
    (`benchmark = "darts-train"`).

    `op_set` names the space's own op set (spaces/darts/op_sets.py); `op_sets` the values a
    run's `supernet.op_set` may take in this space (the first is the default).
    """

    benchmark = "darts-train"
    profiles = PROFILES
    # weights may carry input_key("normal") / input_key("reduce"): (14,) multipliers of each
    # edge's input (spaces.base.input_key), honoured by the search network
    input_scaled = ("normal", "reduce")

    def __init__(self, name: str = "darts", op_set: str | None = None,
                 op_sets: tuple[str, ...] = ("darts", "s5")):
        self.name, self.op_sets = name, tuple(op_sets)
        # in run_all.sh's default grid (analysis/grid_defaults.py): `darts` only; the RobustDARTS
        # spaces are run when named (--spaces darts-s1,...)
        self.default_grid = name == "darts"
        self.op_set = op_set or self.op_sets[0]
        if self.op_set not in self.op_sets:
            raise ValueError(f"supernet.op_set of space {name} must be one of {', '.join(self.op_sets)}, "
                             f"got {self.op_set!r}")
        self.edge_ops = OP_SETS[self.op_set]
        first = self.edge_ops["normal"][0]
        # column of `none` in every arch tensor (None: not on every edge at one column)
        cols = {ops.index("none") if "none" in ops else None for c in self.edge_ops.values() for ops in c}
        self.zero_op = next(iter(cols)) if len(cols) == 1 else None
        self._width = len(first)

    def for_supernet(self, supernet: dict | None) -> "DartsSpace":
        """This space with the op set a run's supernet arguments name (`op_set`, default the
        space's own); ValueError for one the space does not offer."""
        return DartsSpace(self.name, (supernet or {}).get("op_set", self.op_sets[0]), self.op_sets)

    def arch_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"normal": (NUM_EDGES, self._width), "reduce": (NUM_EDGES, self._width)}

    def ops(self) -> list[str]:
        """Every op of the op set (the columns where every edge has the same ops)."""
        return ops_of(self.edge_ops)

    def arch_columns(self) -> dict[str, list[str]]:
        """Column labels: the op names where every edge offers the same ops, else 'choice k'
        (s1: the row labels name each edge's ops)."""
        same = uniform_ops(self.edge_ops)
        cols = list(same) if same else [f"choice {k + 1}" for k in range(self._width)]
        return {"normal": list(cols), "reduce": list(cols)}

    def arch_labels(self) -> dict[str, list[str]]:
        """Row labels of every architecture tensor: 'dst<-src' in genotype node ids (followed by
        the edge's ops where edges differ, s1)."""
        rows = [f"{dst}<-{src}" for dst, src in EDGE_LIST]
        if uniform_ops(self.edge_ops):
            return {"normal": list(rows), "reduce": list(rows)}
        return {c: [f"{r} ({' | '.join(ops)})" for r, ops in zip(rows, self.edge_ops[c])]
                for c in ("normal", "reduce")}

    def normalize(self, alphas: Weights) -> Weights:
        return softmax_last(alphas)

    def supernet(self, **kwargs) -> nn.Module:
        """kwargs: C (16), layers (8), num_classes (10), stem_multiplier (3), impl ('reference',
        the profiles' default is 'fast'); impl='fast' also takes channels_last (True) and
        skip_zero (False) (see spaces/darts/fast.py); impl='reference' takes skip_zero (False) too:
        ops of weight exactly 0 are not run when the weights need no gradient (see
        spaces/darts/search_network.py); op_set (this space's op set unless given; one of
        `op_sets`): both impls get its per-edge op lists. impl='oneshot': BayesNAS's one-shot
        network (spaces/darts/oneshot.py; the bayesnas paper profile's), layers 8 only, op sets
        of the authors' 7 ops (and `none`) only."""
        impl = kwargs.pop("impl", "reference")
        kwargs["edge_ops"] = self.for_supernet({"op_set": kwargs.pop("op_set", self.op_set)}).edge_ops
        if impl == "fast":
            from spaces.darts.fast import FastSearchNetwork
            return FastSearchNetwork(**kwargs)
        if impl == "oneshot":  # BayesNAS's one-shot network (spaces/darts/oneshot.py)
            from spaces.darts.oneshot import OneShotNetwork
            return OneShotNetwork(**kwargs)
        if impl != "reference":
            raise ValueError(f"unknown DARTS supernet impl {impl!r}; valid: reference, fast, oneshot")
        from spaces.darts.search_network import SearchNetwork
        return SearchNetwork(**kwargs)

    def check_supernet(self, kwargs: dict) -> None:
        """C (channels) at least 1; layers (cells) at least 3, so that both reduction cells
        (at 1/3 and 2/3 of the depth) exist; stem_multiplier at least 1; steps and multiplier
        only 4 (the space's 14 edges per cell, quark0/darts cnn/model_search.py defaults, which
        SearchNetwork refuses to change): refused here, at planning, not after the run's
        folder exists; impl one of reference, fast, oneshot, and only the chosen impl's
        arguments (oneshot: layers 8 only, an op set of the authors' ops); op_set one of the
        space's `op_sets` (the per-edge op lists themselves are not an argument)."""
        from spaces.darts.fast import FastSearchNetwork
        from spaces.darts.search_network import SearchNetwork
        impls = ("reference", "fast", "oneshot")
        if kwargs.get("impl", "reference") == "oneshot":  # BayesNAS's one-shot network
            from spaces.darts.oneshot import ONESHOT_OPS, OneShotNetwork
            check_arguments(kwargs, OneShotNetwork, minimum={"C": 1, "stem_multiplier": 1},
                            choices={"layers": (8,), "impl": impls, "op_set": self.op_sets},
                            skip=("edge_ops",))
            ops = set(ops_of(self.for_supernet(kwargs).edge_ops))
            if not ops <= set(ONESHOT_OPS):
                raise ValueError(f"supernet.impl=oneshot builds the BayesNAS authors' ops only "
                                 f"({', '.join(ONESHOT_OPS)}); op set {kwargs.get('op_set', self.op_set)!r} "
                                 f"has {', '.join(sorted(ops - set(ONESHOT_OPS)))}")
            return
        cls = FastSearchNetwork if kwargs.get("impl", "reference") == "fast" else SearchNetwork
        check_arguments(kwargs, cls, minimum={"C": 1, "layers": 3, "stem_multiplier": 1},
                        choices={"steps": (4,), "multiplier": (4,), "impl": impls,
                                 "op_set": self.op_sets},
                        skip=("edge_ops",))

    def derive(self, scores: Weights) -> str:
        """The DARTS rule on softmax(scores) (model_search.py applies softmax to alpha first)."""
        return self.derive_weights(softmax_last({k: torch.as_tensor(v).float() for k, v in scores.items()}))

    def derive_weights(self, weights: Weights) -> str:
        """The DARTS rule on weights used as given (non-negative magnitudes, e.g. one-hot
        samples or BayesNAS gammas): top-2 incoming edges by largest non-`none` weight, each
        with its argmax non-`none` op (each edge's columns its op set's ops)."""
        return derive_genotype(weights["normal"], weights["reduce"], self.edge_ops)

    def genotype_info(self, genotype: str) -> dict:
        """The cells, and per cell the count of each non-`none` op of the op set (and of any other
        op the genotype holds)."""
        g = parse_genotype(genotype)
        names = [op for op in self.ops() if op != "none"]
        names += [o for cell in ("normal", "reduce") for o, _ in getattr(g, cell) if o not in names]
        names = list(dict.fromkeys(names))
        counts = {cell: {op: sum(o == op for o, _ in getattr(g, cell)) for op in names}
                  for cell in ("normal", "reduce")}
        return {"normal": [list(p) for p in g.normal], "reduce": [list(p) for p in g.reduce],
                "op_counts": counts,
                "skip_connections": counts["normal"].get("skip_connect", 0),
                "param_free_ops": sum(n for op, n in counts["normal"].items()
                                      if op in PARAM_FREE_OPS and op != "none")}

    def network(self, genotype: str, num_classes: int = 10) -> nn.Module:
        """The evaluation network (C=36, 20 cells, auxiliary head); forward -> (logits, aux)."""
        return network(genotype, num_classes=num_classes)

    def proxy_network(self, genotype: str, num_classes: int = 10) -> nn.Module:
        """A smaller standalone network for training-free proxies: C=16, 8 cells, no auxiliary
        head; forward -> logits."""
        return LogitsOnly(network(genotype, C=PROXY_C, layers=PROXY_LAYERS, num_classes=num_classes,
                                  auxiliary=False))

    def sample_weights(self, generator: torch.Generator, include_none: bool = False) -> Weights:
        """A uniformly sampled DARTS cell pair as mixing weights, as random search with weight
        sharing samples it (Li & Talwalkar, liamcli/randomNAS_release darts_wrapper_discrete.py
        `sample_arch`): per intermediate node 2 distinct inputs drawn uniformly, each with a
        uniformly drawn op; weight 1 on those (edge, op) entries, 0 elsewhere (unchosen edges
        contribute nothing). By default ops are drawn among the edge's non-`none` ops (a derived
        cell has no `none`), so `derive` of a sample returns exactly the sampled cells.
        include_none=True: among all the edge's ops, `none` included, as the reference draws them
        (darts_wrapper_discrete.py line 266, `np.random.choice(range(num_ops), 4)` with
        num_ops = len(PRIMITIVES) = 8); an input sampled with `none` then contributes zero, and
        `derive` of such a sample is not the sampled cell (a genotype here has no `none`)."""
        out = {}
        for name in ("normal", "reduce"):
            w = torch.zeros(NUM_EDGES, self._width)
            start = 0
            for i in range(STEPS):
                n = i + 2
                for j in torch.randperm(n, generator=generator)[:2].tolist():
                    real = [k for k, o in enumerate(self.edge_ops[name][start + j])
                            if include_none or o != "none"]
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


# The RobustDARTS spaces (Zela et al., ICLR 2020) as SmoothDARTS defines them (sota/cnn/spaces.py);
# searched with the DARTS protocol (SmoothDARTS sota/cnn/train_search.py defaults are the DARTS
# values: 50 epochs, batch 64, lr 0.025 -> 0.001, wd 3e-4, C=16, 8 cells), so they share PROFILES.
VARIANTS = {f"darts-s{k}": DartsSpace(f"darts-s{k}", f"s{k}", (f"s{k}",)) for k in range(1, 5)}
