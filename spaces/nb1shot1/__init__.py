"""NAS-Bench-1Shot1 search spaces 1-3 (Zela et al., ICLR 2020) over NAS-Bench-101.

Nodes: 0 = cell input, 1..steps = choice blocks, steps+1 = output. Node i picks k_i parents
among 0..i-1 (the output among 0..steps). Architecture tensors (names for arch_shapes):
  'ops'      (steps, 3)  op weights per choice block, order PRIMITIVES
  'output'   (steps+1,)  weights of the output's candidate parents (index 0 = input)
  'input<i>' (i,)        weights of node i's candidate parents, only if node i has a choice
Genotype string: one '|'-separated item per choice block then the output, each
'<op><<parents>' with parents as increasing comma-separated node ids, e.g. (space 1)
  'conv3x3-bn-relu<0|maxpool3x3<0,1|conv1x1-bn-relu<1,2|conv3x3-bn-relu<0,3|output<2,4'
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spaces.nb1shot1 import nb101
from spaces.base import check_arguments
from spaces.nb1shot1.nb101 import CONV1X1, MAXPOOL3X3
from spaces.nb1shot1.model import PRIMITIVES, SuperNet

# Parents per node (1..steps, then output) and the published best errors (docs/reference/nb1shot1.md#the-three-spaces).
_DEFS = {
    1: dict(parents=[1, 2, 2, 2, 2], test_min_error=0.05448716878890991,
            valid_min_error=0.049278855323791504),
    2: dict(parents=[1, 1, 2, 2, 3], test_min_error=0.057592153549194336,
            valid_min_error=0.051582515239715576),
    3: dict(parents=[1, 1, 1, 2, 2, 2], test_min_error=0.05338543653488159,
            valid_min_error=0.04847759008407593),
}

# Search protocols (SearchConfig fields): NAS-Bench-1Shot1 (Zela et al. 2020;
# docs/reference/nb1shot1.md#search-protocol; automl/nasbench-1shot1 optimizers/darts/train_search.py).
_COMMON = dict(split="contiguous", w_weight_decay=3e-4, w_nesterov=False, arch_first=True)
PROFILES = {
    # hessian_every=1: the 1Shot1 DARTS code (SmoothDARTS optimizers/darts/train_search.py
    # lines 213-216, 313-322) reports the Hessian's eigenvalue after every epoch.
    "paper": dict(epochs=50, batch_size=96, supernet=dict(C=16, layers=9), hessian_every=1, **_COMMON),
    "smoke": dict(epochs=2, batch_size=32, train_subset=256, supernet=dict(C=4, layers=3), **_COMMON),
}
# `fair`: one schedule for every method (benchmark/harness/config.py): the space's DARTS
# protocol, the paper profile's values (the 1Shot1 DARTS code), with no method's overrides but
# its options and step order.
PROFILES["fair"] = PROFILES["paper"]

Parents = tuple[tuple[int, ...], ...]   # per node 1..steps+1, sorted parent ids

# Stem channels of the network the proxies score (NASWOT's NB101 default, search.py line 39).
PROXY_STEM = 16


class OneShot1Space:
    benchmark: str = 'nb101'  # scored through the NB101 table (benchmark/harness/scoring.py)
    profiles = PROFILES
    zero_op: int | None = None  # no `none` op: every choice is a real operation
    # weights may carry input_key('ops'): (steps,) multipliers of each choice block's input.
    # The parent tensors (input<i>, output) weight parent states directly (no op between), so
    # an input multiplier there would equal a factor on their weights.
    input_scaled = ('ops',)
    # The Hessian diagnostic as the 1Shot1 code reports it (benchmark/harness/hessian.py):
    # |largest algebraic eigenvalue| of the architecture Hessian, arch weight decay included.
    hessian_diagnostic = 'abs_max_algebraic_wd'

    def __init__(self, index: int):
        d = _DEFS[index]
        self.index = index
        self.name = f'nb1shot1-s{index}'
        self.num_parents: list[int] = d['parents']
        self.steps = len(self.num_parents) - 1
        self.test_min_error: float = d['test_min_error']
        self.valid_min_error: float = d['valid_min_error']
        # Node i has i candidate parents; weights only where picking k_i of them is a choice.
        self.input_nodes = [i for i in range(1, self.steps + 1) if self.num_parents[i - 1] < i]

    def __repr__(self) -> str:
        return f'OneShot1Space({self.index})'

    # ------------------------------------------------------------ architecture tensors
    def arch_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = {'ops': (self.steps, len(PRIMITIVES)), 'output': (self.steps + 1,)}
        shapes.update({f'input{i}': (i,) for i in self.input_nodes})
        return shapes

    def normalize(self, alphas: dict[str, Tensor]) -> dict[str, Tensor]:
        """Softmax over the last dim of every tensor: the reference applies F.softmax to the
        op, output and input weights alike (its `normalize=False` default path)."""
        return {k: F.softmax(v, dim=-1) for k, v in alphas.items()}

    def supernet(self, C: int = 16, layers: int = 9, num_classes: int = 10) -> nn.Module:
        return SuperNet(self.steps, self.input_nodes, C, layers, num_classes)

    def check_supernet(self, kwargs: dict) -> None:
        """C (channels) and layers (cells) at least 1."""
        check_arguments(kwargs, self.supernet, minimum={"C": 1, "layers": 1})

    def sample_weights(self, generator: torch.Generator) -> dict[str, Tensor]:
        """Uniform configuration: one-hot op per block, k-hot (value 1 per chosen parent)
        input/output weights, as the reference's discrete random-WS pass-through."""
        ops = torch.zeros(self.steps, len(PRIMITIVES))
        ops[torch.arange(self.steps), torch.randint(len(PRIMITIVES), (self.steps,), generator=generator)] = 1
        out = {'ops': ops}
        for name, shape in self.arch_shapes().items():
            if name != 'ops':
                k = self.num_parents[-1 if name == 'output' else int(name[5:]) - 1]
                w = torch.zeros(shape)
                w[torch.randperm(shape[0], generator=generator)[:k]] = 1
                out[name] = w
        return out

    # ------------------------------------------------------------ genotypes
    def derive(self, scores: dict[str, Tensor]) -> str:
        """Argmax op per block; top-k parents per node (ties -> lower index); forced nodes
        take all their candidates."""
        ops_idx = scores['ops'].detach().float().cpu().argmax(-1).tolist()
        parents = []
        for node in range(1, self.steps + 2):
            key = 'output' if node == self.steps + 1 else f'input{node}'
            k = self.num_parents[node - 1]
            if key in scores:
                s = scores[key].detach().float().cpu().reshape(-1).numpy()
                parents.append(tuple(sorted(np.argsort(-s, kind='stable')[:k].tolist())))
            else:
                parents.append(tuple(range(node)))
        return self.encode([PRIMITIVES[i] for i in ops_idx], tuple(parents))

    def encode(self, ops: list[str], parents: Parents) -> str:
        items = [f"{op}<{','.join(map(str, p))}" for op, p in zip(ops, parents)]
        return '|'.join(items + [f"output<{','.join(map(str, parents[-1]))}"])

    def parse(self, genotype: str) -> tuple[list[str], Parents]:
        items = genotype.split('|')
        if len(items) != self.steps + 1:
            raise ValueError(f'{self.name}: genotype needs {self.steps + 1} items, got {genotype!r}')
        ops, parents = [], []
        for node, item in enumerate(items, 1):
            op, sep, ps = item.partition('<')
            want = 'output' if node == self.steps + 1 else None
            if not sep or (want and op != want) or (not want and op not in PRIMITIVES):
                raise ValueError(f'{self.name}: bad genotype item {item!r} for node {node}')
            try:
                p = tuple(int(x) for x in ps.split(','))
            except ValueError:
                raise ValueError(f'{self.name}: bad parents in {item!r}') from None
            if (len(p) != self.num_parents[node - 1] or list(p) != sorted(set(p))
                    or p[0] < 0 or p[-1] >= node):
                raise ValueError(f'{self.name}: node {node} needs {self.num_parents[node - 1]} '
                                 f'distinct increasing parents in 0..{node - 1}, got {item!r}')
            if want is None:
                ops.append(op)
            parents.append(p)
        return ops, tuple(parents)

    def nb101_spec(self, ops: list[str], parents: Parents) -> tuple[np.ndarray, list[str]]:
        """7-vertex NB101 spec; spaces with 4 blocks get an unconnected conv1x1 vertex before
        the output (the reference's upscale_to_nasbench_format), which pruning removes."""
        n = self.steps + 2
        m = np.zeros((n, n), dtype=np.int64)
        for node, ps in enumerate(parents, 1):
            m[list(ps), node] = 1
        full_ops = ['input', *ops, 'output']
        if n < nb101.MAX_VERTICES:
            m = np.insert(np.insert(m, n - 1, 0, axis=1), n - 1, 0, axis=0)
            full_ops.insert(n - 1, CONV1X1)
        return m, full_ops

    def genotype_info(self, genotype: str) -> dict:
        ops, parents = self.parse(genotype)
        m, full_ops = self.nb101_spec(ops, parents)
        pm, pops = nb101.prune(m, full_ops)
        return {'space': self.name, 'genotype': genotype, 'matrix': m.tolist(), 'ops': full_ops,
                'pruned_matrix': pm.tolist(), 'pruned_ops': pops,
                'module_hash': nb101.module_hash(m, full_ops),
                'loose_ends': len(full_ops) - len(pops) - (nb101.MAX_VERTICES - self.steps - 2),
                'param_free_ops': pops.count(MAXPOOL3X3)}

    def network(self, genotype: str, num_classes: int = 10) -> nn.Module:
        ops, parents = self.parse(genotype)
        return nb101.network(*self.nb101_spec(ops, parents), num_classes=num_classes)

    def proxy_network(self, genotype: str, num_classes: int = 10) -> nn.Module:
        """The network training-free proxies score (BaLeNAS-TF): the genotype's NB101 network
        as NASWOT builds it for NB101 (BayesWatch/nas-without-training search.py line 39,
        `--stem_out_channels 16`; 3 stacks of 3 cells), He-initialised as there
        (nb101.he_init, their nas_101_api/model.py lines 75-91)."""
        ops, parents = self.parse(genotype)
        return nb101.he_init(nb101.Network(*self.nb101_spec(ops, parents), num_classes=num_classes,
                                           stem_channels=PROXY_STEM))

    def param_free_ops(self, genotype: str) -> int:
        """maxpool3x3 ops in the derived cell after pruning (loose ends do not count)."""
        return self.genotype_info(genotype)['param_free_ops']

    # ------------------------------------------------------------ for figures
    def ops(self) -> list[str]:
        return list(PRIMITIVES)

    def arch_labels(self) -> dict[str, list[str]]:
        """'ops': one row per choice block ('node i'); 'output' / 'input<i>': one row, the
        node whose parents are chosen ('output<-', 'i<-')."""
        labels = {'ops': [f'node {i}' for i in range(1, self.steps + 1)], 'output': ['output<-']}
        labels.update({f'input{i}': [f'{i}<-'] for i in self.input_nodes})
        return labels

    def arch_columns(self) -> dict[str, list[str]]:
        """'ops': the op names; parent tensors: the candidate parent nodes (0 = cell input)."""
        cols = {'ops': self.ops(), 'output': [str(p) for p in range(self.steps + 1)]}
        cols.update({f'input{i}': [str(p) for p in range(i)] for i in self.input_nodes})
        return cols

    def cell_graph(self, genotype: str) -> list[dict]:
        """The NB101 cell after pruning, as NB101's figures draw it: ops on the nodes, plain
        edges. Node names are the block ids of the genotype ('0' = input, 'output')."""
        ops, parents = self.parse(genotype)
        reach = self.reaches_output(parents)
        # A block feeds the output only through a path: loose ends are pruned, as NB101 does.
        name = lambda n: 'output' if n == self.steps + 1 else str(n)  # noqa: E731
        kept = [n for n in range(self.steps + 2) if reach[n]]
        alive = set(kept)
        labels = {name(n): ('input' if n == 0 else 'output' if n == self.steps + 1 else ops[n - 1])
                  for n in kept}
        edges = [(name(p), name(n), '') for n, ps in enumerate(parents, 1) if n in alive
                 for p in ps if p in alive]
        return [{'name': 'cell', 'nodes': [name(n) for n in kept], 'edges': edges,
                 'node_labels': labels}]

    # ------------------------------------------------------------ enumeration
    def iter_parents(self) -> Iterator[Parents]:
        choices = [itertools.combinations(range(node), k)
                   for node, k in enumerate(self.num_parents, 1)]
        return itertools.product(*choices)

    def reaches_output(self, parents: Parents) -> list[bool]:
        """Per node 0..steps+1: on a path to the output."""
        reach = [False] * (self.steps + 2)
        reach[-1] = True
        for node in range(self.steps + 1, 0, -1):
            if reach[node]:
                for p in parents[node - 1]:
                    reach[p] = True
        return reach


Edges = frozenset[tuple[int, int]]   # (parent, child) pairs of a wiring


def _reference_valid(space: OneShot1Space, edges: Edges) -> bool:
    """The acceptance test of the reference enumeration (automl/nasbench-1shot1,
    nasbench_analysis/search_spaces/search_space.py, `_check_validity_of_adjacency_matrix`),
    restated: some block has an outgoing edge; every node with an incoming edge has all k_i of
    its parents; as many nodes have incoming edges as have outgoing ones; the input has an
    outgoing edge; at most 9 edges."""
    indeg: dict[int, int] = {}
    for _, child in edges:
        indeg[child] = indeg.get(child, 0) + 1
    senders = {p for p, _ in edges}
    return (any(1 <= p <= space.steps for p in senders)
            and all(n == space.num_parents[child - 1] for child, n in indeg.items())
            and len(indeg) == len(senders) and 0 in senders and len(edges) <= 9)


def reference_wirings(space: OneShot1Space) -> Iterator[Edges]:
    """The wirings the reference code enumerates to find the space's optimum.

    A re-statement (our code) of `generate_search_space_without_loose_ends` /
    `_generate_adjacency_matrix` in automl/nasbench-1shot1 (search_space.py): start from the
    empty graph at the output; at a node, if the graph passes `_reference_valid`, emit it and
    stop; otherwise choose the node's missing parents among the lower nodes that are not yet
    its parents, and add them one at a time, descending into each parent
    just added with the edges added so far. Blocks may stay absent. Because the descent into an
    earlier parent is dropped when the next parent is added, the procedure reaches only part of
    the pruned wirings a configuration can have (49 of 66, 65 of 190, 234 of 876 for spaces
    1-3): the benchmark's `test_min_error` is a minimum over this subset.
    """
    def expand(edges: Edges, node: int) -> Iterator[Edges]:
        if _reference_valid(space, edges):
            yield edges
            return
        have = {p for p, c in edges if c == node}
        k = space.num_parents[node - 1] if node > 0 else 0
        free = [p for p in range(node) if p not in have]
        for chosen in itertools.combinations(free, k - len(have)):
            cur = edges
            for p in chosen:
                cur = cur | {(p, node)}
                yield from expand(cur, p)

    yield from expand(frozenset(), space.steps + 1)


def count_architectures(space: OneShot1Space, hashes: bool = True) -> dict:
    """Sizes of a space under the definitions of docs/spaces/nb1shot1.md#definitions."""
    n_ops = len(PRIMITIVES)
    graphs = loose_free = 0
    structures: set[tuple] = set()   # pruned wiring (edges among kept vertices, kept blocks)
    for parents in space.iter_parents():
        graphs += 1
        reach = space.reaches_output(parents)
        if all(reach):
            loose_free += 1
        kept = tuple(b for b in range(1, space.steps + 1) if reach[b])
        edges = tuple((p, node) for node, ps in enumerate(parents, 1) if reach[node]
                      for p in ps)
        structures.add((kept, edges))
    ref = list(reference_wirings(space))
    res = {'space': space.name, 'graphs': graphs,
           'configurations': graphs * n_ops ** space.steps,
           'graphs_no_loose_ends': loose_free,
           'architectures_no_loose_ends': loose_free * n_ops ** space.steps,
           'pruned_wirings': len(structures),
           'pruned_architectures': sum(n_ops ** len(kept) for kept, _ in structures),
           'reference_wirings': len(ref),
           'reference_architectures': sum(
               n_ops ** len({p for p, _ in w if p >= 1}) for w in ref)}
    if hashes:
        # Ops of pruned blocks cannot change the hash: hash each kept-op assignment once.
        seen = set()
        for kept, edges in structures:
            full = list(range(space.steps + 2))
            m = np.zeros((len(full), len(full)), dtype=np.int64)
            for p, node in edges:
                m[p, node] = 1
            for ops in itertools.product(PRIMITIVES, repeat=len(kept)):
                o = ['input'] + [CONV1X1] * space.steps + ['output']
                for b, op in zip(kept, ops):
                    o[b] = op
                seen.add(nb101.module_hash(m, o))
        res['distinct_hashes'] = len(seen)
    return res


SPACES = {f'nb1shot1-s{i}': OneShot1Space(i) for i in (1, 2, 3)}


def _main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description='NAS-Bench-1Shot1 spaces')
    ap.add_argument('--count', action='store_true', help='print the size of every space')
    ap.add_argument('--no-hashes', action='store_true', help='skip distinct-hash counting (slow)')
    args = ap.parse_args(argv)
    if not args.count:
        ap.print_help()
        return 0
    cols = ['configurations', 'graphs', 'graphs_no_loose_ends', 'architectures_no_loose_ends',
            'pruned_wirings', 'pruned_architectures', 'reference_wirings',
            'reference_architectures']
    cols += [] if args.no_hashes else ['distinct_hashes']
    print('| space | ' + ' | '.join(cols) + ' | seconds |')
    print('|---' * (len(cols) + 2) + '|')
    for space in SPACES.values():
        t = time.perf_counter()
        r = count_architectures(space, hashes=not args.no_hashes)
        print(f'| {space.name} | ' + ' | '.join(f'{r[c]:,}' for c in cols)
              + f' | {time.perf_counter() - t:.1f} |', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(_main())
