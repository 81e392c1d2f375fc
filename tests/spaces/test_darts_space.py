"""The DARTS CNN space: genotype text, derivation, search and evaluation networks, protocol."""
import pytest
import torch
import torch.nn.functional as F

from spaces import get_space
from spaces.base import SearchSpace
from spaces.darts import (DARTS_V1, DARTS_V2, OPS, DartsSpace, GenotypeError, count_parameters,
                          drop_path, format_genotype, network, parse_genotype)
from spaces.darts.genotype import derive_cell
from spaces.darts.search_network import SearchNetwork

SPACE = DartsSpace()


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # several threads on a loaded 2-core machine is far slower
    yield
    torch.set_num_threads(before)


# ----- genotype text ---------------------------------------------------------------------------
def test_published_genotypes_round_trip_and_print_like_the_darts_code():
    for text in (DARTS_V1, DARTS_V2):
        g = parse_genotype(text)
        assert format_genotype(g) == text
        assert repr(g) == text  # what DARTS' namedtuple prints for list concats
    assert DARTS_V2.startswith("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ")
    assert DARTS_V2.endswith("('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")


def test_the_search_logs_range_concat_parses_to_the_list_form():
    logged = DARTS_V1.replace("[2, 3, 4, 5]", "range(2, 6)")
    assert "range(2, 6)" in logged
    assert format_genotype(parse_genotype(logged)) == DARTS_V1


def _edit(old: str, new: str, text: str = DARTS_V2) -> str:
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize("text, message", [
    (_edit("('sep_conv_3x3', 0)", "('sep_conv_7x7', 0)"), "unknown op 'sep_conv_7x7'"),
    (_edit("('sep_conv_3x3', 0)", "('none', 0)"), "'none' is not an op"),
    (_edit("('sep_conv_3x3', 1)", "('sep_conv_3x3', 2)"), "node 2 can take inputs 0..1"),
    (_edit("('dil_conv_3x3', 2)", "('dil_conv_3x3', -1)"), "node 5 can take inputs 0..4"),
    (_edit("('sep_conv_3x3', 0), ", ""), "needs 8 (op, input) pairs"),
    (_edit("('sep_conv_3x3', 1)", "('sep_conv_3x3', 0)"), "node 2 takes input 0 twice"),
    (_edit("normal_concat=[2, 3, 4, 5]", "normal_concat=[2, 3, 4]"), "normal_concat"),
    (_edit("reduce_concat=[2, 3, 4, 5]", "reduce_concat=range(3, 6)"), "reduce_concat"),
    (_edit("('sep_conv_3x3', 0)", "('sep_conv_3x3', 0, 1)"), "normal[0]"),
    (_edit(", reduce_concat=[2, 3, 4, 5]", ""), "missing reduce_concat"),
    (_edit("normal=", "norma="), "unknown Genotype field 'norma'"),
    ("Genotype(normal=[('sep_conv_3x3', 0)]", "does not parse"),
    ("Genotyp(normal=[])", "expected Genotype("),
    ("__import__('os').system('true')", "expected Genotype("),
    (_edit("[2, 3, 4, 5]", "__import__('os').getpid()"), "only literal"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|", "does not parse"),
])
def test_validation_names_what_is_wrong(text, message):
    with pytest.raises(GenotypeError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        parse_genotype(text)


# ----- derivation ------------------------------------------------------------------------------
def _row(**ops) -> list[float]:
    r = [0.0] * len(OPS)
    for name, v in ops.items():
        r[OPS.index(name)] = v
    return r


def test_derivation_keeps_top2_edges_by_non_none_weight_and_the_argmax_real_op():
    w = torch.full((14, 8), 0.01)
    # node 2 (rows 0, 1): edge 1 stronger; edge 0's `none` is the largest weight of all.
    w[0] = torch.tensor(_row(none=0.9, sep_conv_5x5=0.05, skip_connect=0.04))
    w[1] = torch.tensor(_row(dil_conv_3x3=0.3, max_pool_3x3=0.2))
    # node 3 (rows 2..4): edges 2 and 0 win; edge 1 has a big `none` only.
    w[2] = torch.tensor(_row(avg_pool_3x3=0.2))
    w[3] = torch.tensor(_row(none=0.95, sep_conv_3x3=0.02))
    w[4] = torch.tensor(_row(skip_connect=0.6))
    # node 4 (rows 5..8): ties on every edge -> the two lowest inputs, first op of the tie.
    w[5:9] = torch.tensor(_row(sep_conv_3x3=0.1, dil_conv_5x5=0.1))
    # node 5 (rows 9..13): edges 4 then 3.
    w[12] = torch.tensor(_row(dil_conv_5x5=0.5))
    w[13] = torch.tensor(_row(max_pool_3x3=0.7, none=0.2))
    assert derive_cell(w) == [("dil_conv_3x3", 1), ("sep_conv_5x5", 0),
                              ("skip_connect", 2), ("avg_pool_3x3", 0),
                              ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
                              ("max_pool_3x3", 4), ("dil_conv_5x5", 3)]


def test_space_derive_applies_softmax_to_scores_as_darts_does():
    # Raw scores rank edge 0 first by its largest real op (2.0 > 1.9), but its `none` is also
    # large, so after softmax edge 1 is the stronger one: DARTS compares softmax weights.
    a = torch.zeros(14, 8)
    a[0] = torch.tensor(_row(none=3.0, sep_conv_3x3=2.0))
    a[1] = torch.tensor(_row(sep_conv_5x5=1.9))
    scores = {"normal": a, "reduce": torch.zeros(14, 8)}
    assert SPACE.derive_weights(scores).startswith("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_5x5', 1)")
    assert SPACE.derive(scores).startswith("Genotype(normal=[('sep_conv_5x5', 1), ('sep_conv_3x3', 0)")
    parse_genotype(SPACE.derive(scores))


# ----- search network --------------------------------------------------------------------------
@pytest.mark.slow
def test_search_network_forward_backward_reaches_weights_and_alphas():
    torch.manual_seed(0)
    net = SearchNetwork(C=4, layers=3)  # reductions at cells 1 and 2
    assert [c.reduction for c in net.cells] == [False, True, True]
    alphas = {k: (1e-3 * torch.randn(14, 8)).requires_grad_() for k in ("normal", "reduce")}
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([1, 7])
    logits = net(x, SPACE.normalize(alphas))
    assert logits.shape == (2, 10)
    F.cross_entropy(logits, y).backward()
    for k, a in alphas.items():
        assert a.grad is not None and a.grad.abs().sum() > 0, k
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing
    # normal cells read weights["normal"], reduction cells weights["reduce"]
    with torch.no_grad():
        net.eval()
        w = SPACE.normalize(alphas)
        base = net(x, w)
        other = net(x, {**w, "reduce": torch.softmax(torch.randn(14, 8), -1)})
    assert not torch.allclose(base, other)


@pytest.mark.slow
def test_search_network_sizes_match_the_authors():
    # quark0/darts model_search.Network(16, 10, 8) and (4, 10, 5), counted with their code
    assert sum(p.numel() for p in SearchNetwork(16, 8).parameters()) == 1_930_618
    assert sum(p.numel() for p in SearchNetwork(4, 5).parameters()) == 136_182
    with pytest.raises(ValueError, match="supernet.C"):
        SearchNetwork(C=3, layers=5)


# ----- evaluation network ----------------------------------------------------------------------
@pytest.mark.parametrize("genotype, params, with_aux", [
    (DARTS_V1, 3_169_414, 3_645_840), (DARTS_V2, 3_349_342, 3_825_768)])
def test_evaluation_network_parameter_counts_equal_the_authors(genotype, params, with_aux):
    # quark0/darts model.NetworkCIFAR(36, 10, 20, auxiliary, genotype) counted with their
    # utils.count_parameters_in_MB (auxiliary excluded) and in total: the paper's 3.3M cell.
    net = network(genotype)
    assert count_parameters(net) == params
    assert sum(p.numel() for p in net.parameters()) == with_aux
    bare = network(genotype, auxiliary=False)
    assert count_parameters(bare) == sum(p.numel() for p in bare.parameters()) == params


def test_drop_path_and_auxiliary_head_in_train_and_eval():
    torch.manual_seed(0)
    net = network(DARTS_V2, C=4, layers=5, auxiliary=True)   # aux after cell 3 (8x8)
    x = torch.randn(4, 3, 32, 32)
    net.eval()
    with torch.no_grad():
        a, aux = net(x)
        net.drop_path_prob = 0.5
        b, _ = net(x)
    assert aux is None and torch.equal(a, b)  # eval: no head, no drop path
    net.train()
    with torch.no_grad():
        net.drop_path_prob = 0.0
        c1, aux1 = net(x)
        c2, _ = net(x)
        assert aux1 is not None and aux1.shape == (4, 10)
        assert torch.equal(c1, c2)  # train without drop path: deterministic
        net.drop_path_prob = 0.5
        torch.manual_seed(1)
        d1, _ = net(x)
        torch.manual_seed(2)
        d2, _ = net(x)
    assert not torch.allclose(d1, d2) and not torch.allclose(d1, c1)
    no_aux = network(DARTS_V2, C=4, layers=5, auxiliary=False).train()
    assert no_aux(x)[1] is None
    # the head reads the output of cell 2*layers//3 (= 3 here; cell 4 has the same shape)
    seen = {}
    net.cells[3].register_forward_hook(lambda m, i, o: seen.setdefault("cell", o))
    net.auxiliary_head.register_forward_hook(lambda m, i, o: seen.setdefault("head", i[0]))
    with torch.no_grad():
        net.drop_path_prob = 0.0
        net(x)
    assert torch.equal(seen["cell"], seen["head"])


def test_drop_path_drops_whole_samples_and_rescales_the_rest():
    torch.manual_seed(0)
    out = drop_path(torch.ones(2000, 3, 2, 2), 0.25)
    per_sample = out.flatten(1)
    assert ((per_sample == 0).all(1) | (per_sample == 1 / 0.75).all(1)).all()
    kept = (per_sample[:, 0] > 0).float().mean().item()
    assert abs(kept - 0.75) < 0.04


def test_identity_skips_are_never_dropped():
    # A cell made of skips from its inputs (identity at stride 1): nothing to drop there.
    from spaces.darts.eval_network import EvalCell
    pairs = [("skip_connect", 0), ("skip_connect", 1)] * 4
    cell = EvalCell(pairs, [2, 3, 4, 5], 4, 4, 4, reduction=False, reduction_prev=False).train()
    s = torch.randn(3, 4, 8, 8)
    torch.manual_seed(0)
    a = cell(s, s, 0.9)
    b = cell(s, s, 0.0)
    assert torch.equal(a, b)


# ----- the space object ------------------------------------------------------------------------
def test_space_protocol_and_facts():
    s = get_space("darts")
    assert isinstance(s, SearchSpace) and s.name == "darts" and s.benchmark == "darts-train"
    assert s.zero_op == 0 and s.ops()[0] == "none" and len(s.ops()) == 8
    assert s.arch_shapes() == {"normal": (14, 8), "reduce": (14, 8)}
    labels = s.arch_labels()["normal"]
    assert labels[:3] == ["2<-0", "2<-1", "3<-0"] and labels[-1] == "5<-4" and len(labels) == 14
    # V1 normal cell: 3 skip_connect, no pooling; V2: 2 skip_connect
    assert s.param_free_ops(DARTS_V1) == s.skip_connections(DARTS_V1) == 3
    assert s.param_free_ops(DARTS_V2) == s.skip_connections(DARTS_V2) == 2
    info = s.genotype_info(DARTS_V2)
    assert info["op_counts"]["reduce"]["max_pool_3x3"] == 5 and info["skip_connections"] == 2
    normal = s.cell_graph(DARTS_V2)[0]
    assert normal["name"] == "normal" and len(normal["edges"]) == 8 + 4
    assert ("c_{k-1}", "0", "sep_conv_3x3") in normal["edges"] and ("0", "3", "dil_conv_3x3") in normal["edges"]
    proxy = s.proxy_network(DARTS_V2)
    assert proxy(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert sum(p.numel() for p in proxy.parameters()) == 246_106  # authors' NetworkCIFAR(16, 10, 8)


def test_sample_weights_are_darts_cells_and_derive_back():
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(20):
        w = SPACE.sample_weights(g)
        for cell in w.values():
            assert cell[:, SPACE.zero_op].sum() == 0
            start = 0
            for i in range(4):
                rows = cell[start:start + i + 2]
                assert rows.sum() == 2 and (rows.sum(1) <= 1).all()  # 2 distinct inputs, one op each
                start += i + 2
        gen = SPACE.derive(w)
        assert gen == SPACE.derive_weights(w)
        chosen = {(int(e), int(o)) for e, o in w["normal"].nonzero()}
        from spaces.darts.genotype import EDGE_LIST
        derived = {(EDGE_LIST.index((k // 2 + 2, j)), OPS.index(op))
                   for k, (op, j) in enumerate(parse_genotype(gen).normal)}
        assert derived == chosen
        seen.add(gen)
    assert len(seen) == 20
    inputs = {j for _ in range(100) for _, j in parse_genotype(SPACE.derive(SPACE.sample_weights(g))).normal[6:]}
    assert inputs == {0, 1, 2, 3, 4}  # node 5 draws among all its 5 possible inputs


def test_paper_profile_follows_the_darts_code():
    from benchmark.harness.config import resolve_config
    cfg = resolve_config("darts", "darts", 0, "paper")
    assert (cfg.epochs, cfg.batch_size, cfg.split, cfg.w_lr, cfg.w_lr_min) == (50, 64, "contiguous", 0.025, 0.001)
    assert (cfg.w_momentum, cfg.w_nesterov, cfg.w_weight_decay, cfg.grad_clip) == (0.9, False, 3e-4, 5.0)
    assert (cfg.a_lr, cfg.a_betas, cfg.a_weight_decay) == (3e-4, (0.5, 0.999), 1e-3)
    assert cfg.supernet == {"C": 16, "layers": 8, "impl": "fast"} and cfg.arch_first
    for m in ("darts", "darts-2nd", "sdarts-rs", "sdarts-adv", "balenas", "balenas-tf"):
        assert resolve_config("darts", m, 0, "paper").arch_first, m
    rsps = resolve_config("darts", "random-ws", 0, "paper")
    assert rsps.epochs == 100 and rsps.method_options["num_candidates"] == 1000
    assert resolve_config("nb201", "darts", 0, "paper").arch_first is False  # unchanged there


# ----- methods with space-specific pieces ------------------------------------------------------
def test_bayesnas_derives_a_darts_genotype_from_its_gammas():
    from benchmark.harness.config import resolve_config
    from methods.bayesnas import BayesNAS
    cfg = resolve_config("darts", "bayesnas", 0, "smoke")
    m = BayesNAS(SPACE, SPACE.supernet(C=2, layers=3), cfg, torch.Generator().manual_seed(0))
    for k in ("normal", "reduce"):
        m.gamma_edge[k] = torch.ones(14)
        m.gamma_op[k] = torch.full((14, 8), 0.01)
        m.gamma_op[k][:, 0] = 5.0  # `none` gammas never count
    g = m.gamma_op["normal"]
    g[0, OPS.index("sep_conv_3x3")] = 0.5     # node 2: edges 0 and 1
    g[1, OPS.index("skip_connect")] = 0.4
    g[2, OPS.index("dil_conv_5x5")] = 0.9     # node 3: edge 0 is pruned (edge gamma), so 1, 2
    m.gamma_edge["normal"][2] = 0.001
    g[3, OPS.index("avg_pool_3x3")] = 0.3
    g[4, OPS.index("max_pool_3x3")] = 0.2
    genotype = parse_genotype(m.derive())
    assert genotype.normal[:4] == [("sep_conv_3x3", 0), ("skip_connect", 1),
                                   ("avg_pool_3x3", 1), ("max_pool_3x3", 2)]


METHODS = ["darts", "darts-2nd", "sdarts-rs", "sdarts-adv", "bayesnas", "balenas", "balenas-tf", "random-ws"]


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_every_method_searches_the_darts_space(method, tmp_path):
    from tests.e2e import check_layout, run_tiny
    sets = ["train_subset=8", "batch_size=8", "supernet.C=2"]
    if method == "balenas-tf":
        sets += ["method.num_candidates=2", "method.proxy_batch_size=4"]
    if method == "random-ws":
        sets += ["method.num_candidates=2", "method.valid_batch_size=4"]
    records = run_tiny(method, tmp_path, sets, epochs=1, space="darts")
    check_layout(records, space="darts")
    for r in records:
        g = parse_genotype(r["genotype"])
        assert r["param_free_ops"] == SPACE.param_free_ops(r["genotype"])
        assert r["genotype_info"]["skip_connections"] == sum(op == "skip_connect" for op, _ in g.normal)
        if "selected_genotype" in r:
            parse_genotype(r["selected_genotype"])
