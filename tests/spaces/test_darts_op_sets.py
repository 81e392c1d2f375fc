"""Op sets of the DARTS space (spaces/darts/op_sets.py): SDARTS's 7-op `s5` on `darts`, the
RobustDARTS spaces darts-s1..s4 (with `noise`), both search networks, derivation, labels, the
named SDARTS cells."""
import pytest
import torch

from spaces import get_space, space_for
from spaces.darts import (OP_SETS, OPS, SDARTS_ADV, SDARTS_RS, count_parameters, network,
                          parse_genotype)
from spaces.darts.genotype import derive_cell


pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py


def test_op_sets_are_smoothdarts_spaces():
    # SmoothDARTS sota/cnn/spaces.py: s5 = PRIMITIVES with 'none' commented out (lines 80-92)
    assert OP_SETS["s5"]["normal"][0] == OPS[1:] and "none" not in OP_SETS["s5"]["reduce"][13]
    assert OP_SETS["darts"]["normal"][5] == OPS
    # s1 differs per edge and per cell type (lines 6-61): edge 6 normal, edge 2 reduce, last edges
    assert OP_SETS["s1"]["normal"][5] == ("max_pool_3x3", "skip_connect")
    assert OP_SETS["s1"]["normal"][13] == ("dil_conv_3x3", "dil_conv_5x5")
    assert OP_SETS["s1"]["reduce"][1] == ("max_pool_3x3", "dil_conv_3x3")
    assert OP_SETS["s1"]["reduce"][13] == ("skip_connect", "dil_conv_5x5")
    assert OP_SETS["s2"]["reduce"] == (("skip_connect", "sep_conv_3x3"),) * 14
    assert OP_SETS["s3"]["normal"] == (("none", "skip_connect", "sep_conv_3x3"),) * 14
    assert OP_SETS["s4"]["normal"] == (("noise", "sep_conv_3x3"),) * 14


@pytest.mark.parametrize("name, supernet, shape, zero_op", [
    ("darts", {}, (14, 8), 0), ("darts", {"op_set": "s5"}, (14, 7), None),
    ("darts-s1", {}, (14, 2), None), ("darts-s2", {}, (14, 2), None),
    ("darts-s3", {}, (14, 3), 0), ("darts-s4", {}, (14, 2), None)])
def test_space_shapes_follow_the_op_set(name, supernet, shape, zero_op):
    sp = space_for(name, supernet)
    assert sp.arch_shapes() == {"normal": shape, "reduce": shape}
    assert sp.zero_op == zero_op
    cols = sp.arch_columns()["normal"]
    rows = sp.arch_labels()["normal"]
    assert len(cols) == shape[1] and len(rows) == 14
    if name == "darts-s1":   # edges differ: the row label names the edge's ops
        assert rows[5] == "4<-0 (max_pool_3x3 | skip_connect)" and cols == ["choice 1", "choice 2"]
    else:
        assert cols == list(sp.edge_ops["normal"][0]) and rows[0] == "2<-0"


def test_the_darts_space_itself_is_unchanged():
    sp = get_space("darts")
    assert sp.arch_shapes()["normal"] == (14, 8) and sp.ops() == list(OPS) and sp.zero_op == 0


def test_sdarts_searches_the_7_op_set_on_darts_and_it_is_in_the_identity():
    from benchmark.harness.config import resolve_config
    for method in ("sdarts-rs", "sdarts-adv"):
        for profile in ("paper", "smoke"):
            cfg = resolve_config("darts", method, 0, profile)
            assert cfg.supernet["op_set"] == "s5"
            assert cfg.to_json()["supernet"]["op_set"] == "s5"   # config.json: the run's identity
    assert "op_set" not in resolve_config("darts", "darts", 0, "paper").supernet
    assert "op_set" not in resolve_config("nb201", "sdarts-rs", 0, "paper").supernet


def test_a_bad_op_set_is_refused_naming_the_option():
    from benchmark.harness.config import ConfigError, resolve_config
    with pytest.raises(ConfigError, match="supernet.op_set must be one of 'darts', 's5'"):
        resolve_config("darts", "darts", 0, "smoke", sets=["supernet.op_set=s1"])
    with pytest.raises(ConfigError, match="supernet.op_set must be one of 's4'"):
        resolve_config("darts-s4", "darts", 0, "smoke", sets=["supernet.op_set=darts"])
    with pytest.raises(ConfigError, match="supernet.edge_ops"):
        resolve_config("darts", "darts", 0, "smoke", sets=['supernet.edge_ops={"normal": []}'])


def test_derivation_without_none_takes_every_column():
    # s5 (no `none`): the strongest op of an edge is chosen from all 7 columns; in the 8-op
    # layout column 0 is `none` and is skipped, so the same numbers give another cell
    w = torch.full((14, 7), 0.1)
    w[:, 0] = 0.5                     # max_pool_3x3 strongest everywhere
    g = derive_cell(w, OP_SETS["s5"]["normal"])
    assert {op for op, _ in g} == {"max_pool_3x3"}
    # s3 has `none` at column 0: it is left out of strength and choice (model_search genotype())
    w3 = torch.tensor([[0.9, 0.05, 0.05]] * 14)
    w3[1] = torch.tensor([0.9, 0.0, 0.1])
    g3 = derive_cell(w3, OP_SETS["s3"]["normal"])
    assert g3[0] == ("sep_conv_3x3", 1) and all(op != "none" for op, _ in g3)
    # s4: `noise` is not left out (SmoothDARTS excludes only 'none')
    g4 = derive_cell(torch.tensor([[0.7, 0.3]] * 14), OP_SETS["s4"]["normal"])
    assert {op for op, _ in g4} == {"noise"}


def test_s1_derivation_reads_each_edges_own_ops():
    sp = get_space("darts-s1")
    w = {k: torch.tensor([[1.0, 0.0]] * 14) for k in ("normal", "reduce")}
    g = parse_genotype(sp.derive_weights(w))
    # node 2 <- edges 0 (skip|dil3) and 1 (skip|dil5): first op of each
    assert g.normal[:2] == [("skip_connect", 0), ("skip_connect", 1)]
    assert g.reduce[:2] == [("max_pool_3x3", 0), ("max_pool_3x3", 1)]


@pytest.mark.parametrize("name, supernet", [("darts", {"op_set": "s5"}), ("darts-s1", {}),
                                            ("darts-s2", {}), ("darts-s3", {})])
def test_fast_network_computes_the_reference_on_op_sets(name, supernet):
    from spaces.darts.fast import FastSearchNetwork
    sp = space_for(name, supernet)
    torch.manual_seed(0)
    ref = sp.supernet(C=4, layers=3, **supernet).double()
    fast = FastSearchNetwork(C=4, layers=3, channels_last=False, edge_ops=sp.edge_ops).double()
    fast.load_reference(ref)
    x = torch.randn(2, 3, 8, 8, dtype=torch.double)
    w = {k: torch.softmax(torch.randn(v, dtype=torch.double), -1) for k, v in sp.arch_shapes().items()}
    torch.testing.assert_close(fast(x, w), ref(x, w))
    back = fast.to_reference()
    torch.testing.assert_close(back(x, w), ref(x, w))


def test_noise_op_and_s4_networks():
    from spaces.darts.ops import make_op
    op = make_op("noise", 4, 2, affine=False)
    x = torch.randn(3, 4, 8, 8)
    a, b = op(x), op(x * 100)
    assert a.shape == (3, 4, 4, 4) and not torch.equal(a, b)   # fresh N(0, 1), input unused
    assert abs(float(torch.cat([op(x) for _ in range(50)]).std()) - 1) < 0.05
    sp = get_space("darts-s4")
    for impl in ("reference", "fast"):
        net = sp.supernet(C=4, layers=3, impl=impl)
        w = sp.normalize({k: torch.zeros(v) for k, v in sp.arch_shapes().items()})
        assert net(torch.randn(2, 3, 8, 8), w).shape == (2, 10)
    # a derived s4 cell may hold `noise`; the evaluation network builds it (SmoothDARTS
    # sota/cnn/model.py line 39 builds every op from the same OPS table)
    text = sp.derive({k: torch.tensor([[1.0, 0.0]] * 14) for k in ("normal", "reduce")})
    assert "'noise'" in text
    assert sp.genotype_info(text)["op_counts"]["normal"] == {"noise": 8, "sep_conv_3x3": 0}
    net = network(text, C=4, layers=3, auxiliary=False)
    assert net(torch.randn(2, 3, 8, 8))[0].shape == (2, 10)
    assert count_parameters(net) == count_parameters(network(text, C=4, layers=3, auxiliary=False))


@pytest.mark.parametrize("genotype, params", [(SDARTS_RS, 3_606_166), (SDARTS_ADV, 3_344_806)])
def test_named_sdarts_cells_parameter_counts(genotype, params):
    # SmoothDARTS sota/cnn/genotypes.py c10_s5_random / c10_s5_pgd in the 36-channel 20-cell
    # network, auxiliary head excluded (utils.count_parameters_in_MB). Quoted for SDARTS
    # (DARTS-PT / TE-NAS Table 2): 3.4M (RS), 3.3M (ADV): ADV agrees, RS's published cell counts 3.6M.
    assert count_parameters(network(genotype)) == params


def test_retraining_takes_sdarts_cells_by_name():
    from benchmark.retrain.cli import command_line_genotype
    from benchmark.retrain.job import genotype_name
    assert command_line_genotype("SDARTS_RS") == SDARTS_RS
    assert command_line_genotype("c10_s5_pgd") == SDARTS_ADV
    assert genotype_name(SDARTS_ADV) == "SDARTS_ADV"
    assert parse_genotype(SDARTS_RS).normal[2] == ("sep_conv_5x5", 1)


@pytest.mark.slow
def test_sdarts_records_hold_7_op_tensors(tmp_path):
    from tests.e2e import check_layout, run_tiny
    rows = run_tiny("sdarts-rs", tmp_path, space="darts")
    check_layout(rows, space="darts")
    alpha = rows[-1]["arch"]["alpha"]
    assert [len(alpha["normal"]), len(alpha["normal"][0])] == [14, 7]


@pytest.mark.slow
def test_darts_on_s4_with_the_fast_network_end_to_end(tmp_path):
    from tests.e2e import run_tiny
    rows = run_tiny("darts", tmp_path, sets=["supernet.impl=fast"], space="darts-s4")
    alpha = rows[-1]["arch"]["alpha"]
    assert [len(alpha["reduce"]), len(alpha["reduce"][0])] == [14, 2]
    assert set(rows[-1]["genotype_info"]["op_counts"]["normal"]) == {"noise", "sep_conv_3x3"}


def test_report_labels_a_runs_heatmap_with_its_own_op_set(tmp_path):
    import json

    from analysis.report import _arch_axes
    (tmp_path / "config.json").write_text(json.dumps({"space": "darts", "supernet": {"op_set": "s5"}}))
    rows, cols = _arch_axes("darts", tmp_path)["normal"]
    assert cols == list(OPS[1:]) and rows[0] == "2<-0"
    assert _arch_axes("darts")["normal"][1] == list(OPS)          # no run: the space's own 8
    (tmp_path / "config.json").write_text("{damaged")
    assert _arch_axes("darts", tmp_path)["normal"][1] == list(OPS)  # unreadable config: defaults
