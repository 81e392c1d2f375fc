"""The report in the field's terms: cell diagrams from each space's `cell_graph`, heatmaps
labelled with the space's edges and op names, published values as labelled reference lines,
and one self-contained report.html. Records are hand-made (real genotypes), so this is quick."""
from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from analysis import cells as CD, plots as P, tables as T
from analysis.report import build
from spaces import get_space
from spaces.base import arch_axes
from spaces.nb201 import EDGES
from spaces.nb201.ops import OPS
from tests.analysis.test_analysis_tables import nb201, write_run

G_BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
G_WORST = "|none~0|+|skip_connect~0|none~1|+|skip_connect~0|avg_pool_3x3~1|none~2|"
S1 = "conv3x3-bn-relu<0|maxpool3x3<0,1|conv1x1-bn-relu<1,2|conv3x3-bn-relu<0,3|output<2,4"
S1_LOOSE = "conv3x3-bn-relu<0|maxpool3x3<0,1|conv1x1-bn-relu<1,2|conv3x3-bn-relu<0,3|output<0,4"


# ---------------------------------------------------------------- the spaces' own names
def test_nb201_cell_graph_edges_are_the_genotypes_ops():
    (cell,) = get_space("nb201").cell_graph(G_WORST)
    assert cell["nodes"] == ["0", "1", "2", "3"]
    # none edges are left out; each other edge j<-i carries its op, in the arch-string order
    assert cell["edges"] == [("0", "2", "skip_connect"), ("0", "3", "skip_connect"),
                             ("1", "3", "avg_pool_3x3")]
    (cell,) = get_space("nb201").cell_graph(G_BEST)
    assert [(int(d), int(s)) for s, d, _ in cell["edges"]] == list(EDGES)


@pytest.mark.parametrize("name", ["nb1shot1-s1", "nb1shot1-s2", "nb1shot1-s3"])
def test_nb101_cell_graph_is_the_pruned_spec(name):
    """Ops on the nodes and plain edges, equal to NB101's own pruning of the padded spec."""
    import torch
    space = get_space(name)
    gen = torch.Generator().manual_seed(3)
    for _ in range(20):
        g = space.derive({k: torch.randn(v, generator=gen) for k, v in space.arch_shapes().items()})
        (cell,) = space.cell_graph(g)
        info = space.genotype_info(g)
        assert sorted(cell["node_labels"].values()) == sorted(info["pruned_ops"])
        assert len(cell["edges"]) == int(np.asarray(info["pruned_matrix"]).sum())
        assert set(cell["node_labels"]) == set(cell["nodes"])
        assert {op for op in cell["node_labels"].values()} <= set(space.ops()) | {"input", "output"}


def test_nb101_loose_end_is_not_drawn():
    space = get_space("nb1shot1-s1")
    (cell,) = space.cell_graph(S1_LOOSE)  # block 2 (maxpool) feeds only block 3... which feeds 4
    (full,) = space.cell_graph(S1)
    assert len(cell["nodes"]) == len(space.genotype_info(S1_LOOSE)["pruned_ops"])
    assert "output" in cell["nodes"] and "output" in full["nodes"]


@pytest.mark.parametrize("name", ["nb201", "nb1shot1-s1", "nb1shot1-s3"])
def test_arch_axes_match_the_tensors(name):
    space = get_space(name)
    axes = arch_axes(space)
    assert set(axes) == set(space.arch_shapes())
    for t, shape in space.arch_shapes().items():
        rows, cols = axes[t]
        assert (len(rows), len(cols)) == ((int(np.prod(shape[:-1])) if len(shape) > 1 else 1), shape[-1])
    if name == "nb201":
        assert axes["alpha"] == (["1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2"], list(OPS))
    else:
        assert axes["ops"][1] == space.ops() and axes["output"][0] == ["output<-"]


# ---------------------------------------------------------------- the renderer
def test_diagram_labels_every_op_edge_and_no_structural_one():
    graph = {"name": "normal", "nodes": ["c_{k-2}", "c_{k-1}", "0", "1", "c_{k}"],
             "edges": [("c_{k-2}", "0", "sep_conv_3x3"), ("c_{k-1}", "0", "skip_connect"),
                       ("0", "1", "dil_conv_5x5"), ("c_{k-2}", "1", "max_pool_3x3"),
                       ("0", "c_{k}", "concat"), ("1", "c_{k}", "concat")]}
    fig, ax = plt.subplots()
    CD.draw_cell(ax, graph, CD.op_colors(["sep_conv_3x3", "skip_connect", "dil_conv_5x5", "max_pool_3x3"]))
    texts = [t.get_text() for t in ax.texts]
    plt.close(fig)
    assert sorted(t for t in texts if t not in graph["nodes"]) == sorted(
        ["sep_conv_3x3", "skip_connect", "dil_conv_5x5", "max_pool_3x3"])
    assert sorted(t for t in texts if t in graph["nodes"]) == sorted(graph["nodes"])
    pos = CD.layout(graph)  # inputs left of the nodes they feed, the output rightmost
    assert pos["c_{k-2}"][0] == pos["c_{k-1}"][0] < pos["0"][0] < pos["1"][0] < pos["c_{k}"][0]


def test_arc_label_sits_on_its_arc():
    """The label of a bent edge is on matplotlib's arc3 curve (checked against the path)."""
    graph = {"name": "cell", "nodes": ["0", "1", "2"], "edges": [("0", "2", "nor_conv_3x3")],
             "layers": [["0"], ["1"], ["2"]]}
    fig, ax = plt.subplots()
    CD.draw_cell(ax, graph, {})
    fig.canvas.draw()
    (label,) = [t for t in ax.texts if t.get_text() == "nor_conv_3x3"]
    (arrow,) = ax.patches[-1:]
    # the arrow's path (data coordinates) is Bezier segments: evaluate them, not their control points
    ts = np.linspace(0, 1, 200)
    pts = np.concatenate([seg(ts) for seg, _ in arrow.get_path().iter_bezier()])
    lx, ly = label.get_position()
    plt.close(fig)
    assert np.min(np.hypot(pts[:, 0] - lx, pts[:, 1] - ly)) < 0.05
    assert abs(ly) > 0.2  # a bent arc, not the straight chord through node 1


# ---------------------------------------------------------------- heatmaps
def test_balenas_heatmap_softmax_of_mu_and_sigma_labelled(tmp_path):
    space = get_space("nb201")
    mu = np.zeros((6, 5))
    mu[0] = [0, math.log(3), 0, 0, 0]        # softmax: 1/7, 3/7, 1/7, 1/7, 1/7
    arch = {"mu": {"alpha": mu.tolist()}, "sigma": {"alpha": np.full((6, 5), 0.5).tolist()}}
    paths = P.arch_final_heatmap(arch, arch_axes(space), "t", tmp_path, "h")
    assert [p.suffix for p in paths] == [".png", ".pdf", ".csv"] and all(p.is_file() for p in paths)
    df = pd.read_csv(paths[2], index_col=[0, 1, 2])
    assert list(df.columns) == space.ops()
    sm = df.loc[("softmax(μ)", "alpha")]
    assert list(sm.index) == space.arch_labels()["alpha"]
    assert sm.loc["1<-0"].tolist() == pytest.approx([1 / 7, 3 / 7, 1 / 7, 1 / 7, 1 / 7])
    assert sm.sum(axis=1).tolist() == pytest.approx([1.0] * 6)
    assert df.loc[("σ", "alpha")].to_numpy() == pytest.approx(0.5)


def test_evolution_heatmap_rows_are_edge_and_op(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(P, "_save", lambda fig, out, name: seen.setdefault("fig", fig) and [])
    space = get_space("nb201")
    hist = [(e, {"alpha": {"alpha": np.random.default_rng(e).normal(size=(6, 5)).tolist()}}) for e in range(3)]
    P.arch_heatmap(hist, "t", tmp_path, "x", arch_axes(space))
    ax = seen["fig"].axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    plt.close(seen["fig"])
    assert labels[:6] == ["1<-0 none", "1<-0 skip_connect", "1<-0 nor_conv_1x1",
                          "1<-0 nor_conv_3x3", "1<-0 avg_pool_3x3", "2<-0 none"]
    assert len(labels) == 30 and ax.get_title() == "softmax(α)"


# ---------------------------------------------------------------- published values
def test_published_value_is_a_labelled_line_and_smoke_says_so(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(P, "_save", lambda fig, out, name: seen.setdefault("fig", fig) and [])
    rows = [{"space": "nb201", "method": "darts", "seed": s, "epoch": e,
             "bench.cifar10_test": 80.0 + e + s} for s in range(2) for e in range(3)]
    P.nb201_trajectory(pd.DataFrame(rows), T.load_published(), "nb201", tmp_path,
                       protocol={"darts": 50}, profile_note="runs: smoke profile (2 epochs), NOT the paper protocol")
    fig = seen["fig"]
    ax = fig.axes[0]
    pub = [ln for ln in ax.lines if "published" in ln.get_label()]
    title = fig._suptitle.get_text()
    plt.close(fig)
    assert [ln.get_label() for ln in pub] == ["DARTS-V1 (1st order) published, 50 epochs"]
    xs, ys = pub[0].get_data()
    assert list(ys) == [54.3, 54.3] and list(xs) == [0, 1]        # across the axes, not a point
    assert not any(ln.get_marker() == "*" for ln in ax.lines)      # no marker at the last epoch
    assert "NOT the paper protocol" in title


# ---------------------------------------------------------------- the report
@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, str]:
    """One report (built once for the tests below) over hand-made runs."""
    tmp = tmp_path_factory.mktemp("report")
    r = tmp / "results"
    for seed, (g, acc) in enumerate([(G_WORST, 60.0), (G_BEST, 93.0)]):
        d = write_run(r, "nb201", "darts", seed, nb201(acc))
        _set_genotype(d, g, {"alpha": {"alpha": np.eye(6, 5).tolist()},
                             "weights": {"alpha": np.full((6, 5), 0.2).tolist()}})
    d = write_run(r, "nb201", "balenas", 0, nb201(90.0),
                  arch={"mu": {"alpha": np.zeros((6, 5)).tolist()}, "sigma": {"alpha": np.ones((6, 5)).tolist()}})
    _set_genotype(d, G_BEST)
    d = write_run(r, "nb201", "random-ws", 0, nb201(85.0), arch={"selected": G_BEST})
    _set_genotype(d, G_BEST)
    write_run(r, "nb201", "darts", 7, nb201(10.0), status="partial")
    d = write_run(r, "nb1shot1-s1", "darts", 0, {"test_regret": 0.01, "test_error": 0.06})
    _set_genotype(d, S1, {"alpha": {k: np.zeros(v).tolist() for k, v in
                                    get_space("nb1shot1-s1").arch_shapes().items()}})
    out = tmp / "report"
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # no pandas FutureWarning in the report
        md = build(r, out).read_text()
    return out, md


def _set_genotype(run: Path, genotype: str, arch: dict | None = None) -> None:
    recs = [json.loads(x) for x in (run / "epochs.jsonl").read_text().splitlines() if x.strip()]
    for x in recs:
        x["genotype"] = genotype
        if arch is not None:
            x["arch"] = arch
    (run / "epochs.jsonl").write_text("\n".join(json.dumps(x) for x in recs) + "\n")
    if (run / "done.json").exists():
        (run / "done.json").write_text(json.dumps({"genotype": genotype, "wall_seconds": 1.0}))


@pytest.mark.slow
def test_report_has_a_diagram_and_labelled_heatmap_for_every_finished_run(report):
    out, md = report
    finished = [("nb201", "darts", 0), ("nb201", "darts", 1), ("nb201", "balenas", 0),
                ("nb201", "random-ws", 0), ("nb1shot1-s1", "darts", 0)]
    for space, method, seed in finished:
        stem = f"{space}_{method}_seed{seed}"
        assert (out / "figures/cells" / f"cell_{stem}.png").is_file(), stem
        assert (out / "figures/cells" / f"cell_{stem}.pdf").is_file(), stem
        if method == "random-ws":   # no architecture tensor: no heatmap (and no error)
            assert not (out / "figures/arch" / f"archfinal_{stem}.png").exists()
            continue
        assert (out / "figures/arch" / f"archfinal_{stem}.png").is_file(), stem
        df = pd.read_csv(out / "figures/arch" / f"archfinal_{stem}.csv", index_col=[0, 1, 2])
        space_obj = get_space(space)
        axes = arch_axes(space_obj)
        for (q, t), part in df.groupby(level=[0, 1]):
            rows, cols = axes[t]
            assert list(part.index.get_level_values(2)) == rows
            assert list(part.dropna(axis=1, how="all").columns) == cols  # the space's op names
    assert not (out / "figures/cells/cell_nb201_darts_seed7.png").exists()  # unfinished
    # per method: best and worst seed in one figure, beside the final table
    assert "figures/cells_nb201_darts.png" in md and "figures/cells_nb1shot1-s1_darts.png" in md
    assert "| darts | best seed 1 | 93.00% CIFAR-10 test |" in md and "| darts | worst seed 0 |" in md
    # epoch counts are integers in the unfinished-runs table
    line = next(x for x in md.splitlines() if x.startswith("| nb201 | darts | 7 |"))
    assert "| partial | 1 | 2 |" in line


def test_report_html_is_self_contained(report):
    out, md = report
    page = (out / "report.html").read_text()
    n_images = len(re.findall(r"!\[[^\]]*\]\([^)]+\.png\)", md))
    assert n_images >= 8
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', page)) == n_images
    assert not re.search(r'<(link|script)\b', page)                # no external CSS/JS
    assert not re.search(r'src="(?!data:)', page)                  # every image embedded
    assert "<table>" in page and "<code>|nor_conv_3x3~0|" in page  # tables; pipes unescaped
