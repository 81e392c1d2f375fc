"""Cell diagrams as NAS papers draw them: nodes and op-labelled edges (NB201, DARTS), or ops
on the nodes (NB101 / 1Shot1), from a space's `cell_graph(genotype)`.

Pure Python (matplotlib; networkx only orders the nodes into layers), so no system binary
such as graphviz is needed. Nodes are placed left to right by their topological generation
(networkx.topological_generations); an edge that skips layers is drawn as an arc whose label
sits at the arc's midpoint. Every op has one colour in every diagram of a space (the colour
of its column in the space's op list).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

# Edge labels that carry structure, not an op: drawn as plain grey arrows without text.
STRUCTURAL = {"", "concat", None}
NODE_H = 0.34          # node box height (data units)
LAYER_GAP, ROW_DY = 1.25, 1.2   # free space between generations; between stacked nodes


def op_colors(ops: list[str]) -> dict[str, tuple]:
    cmap = plt.get_cmap("tab10")
    return {op: cmap(i % 10) for i, op in enumerate(ops)}


def layers(graph: dict) -> list[list[str]]:
    """Nodes by layer: the graph's own "layers" where it gives them (NB201: one node per
    layer, in order, even when a `none` edge leaves a node without inputs), else by
    topological generation (networkx), each in the graph's node order."""
    if graph.get("layers"):
        return [list(layer) for layer in graph["layers"]]
    g = nx.DiGraph()
    g.add_nodes_from(graph["nodes"])
    g.add_edges_from((s, d) for s, d, _ in graph["edges"])
    order = {n: i for i, n in enumerate(graph["nodes"])}
    return [sorted(nodes, key=order.get) for nodes in nx.topological_generations(g)]


def layout(graph: dict) -> dict[str, tuple[float, float]]:
    """Node -> (x, y): left to right by generation (gaps wide enough for the widest box of
    each generation), the nodes of one generation stacked around y = 0."""
    pos, x, prev_w = {}, 0.0, None
    for nodes in layers(graph):
        w = max(_box_width(_node_text(graph, n)) for n in nodes)
        # more labelled edges into a layer need more room to keep their labels apart
        n_in = sum(1 for _, d, op in graph["edges"] if d in nodes and op not in STRUCTURAL)
        if prev_w is not None:
            x += prev_w / 2 + w / 2 + LAYER_GAP + 0.3 * max(0, n_in - 2)
        for k, n in enumerate(nodes):
            pos[n] = (x, ((len(nodes) - 1) / 2 - k) * ROW_DY)
        prev_w = w
    return pos


def _node_text(graph: dict, node: str) -> str:
    labels = graph.get("node_labels") or {}
    return labels.get(node, node)


def _box_width(text: str) -> float:
    return max(0.34, 0.075 * len(text) + 0.14)


def draw_cell(ax, graph: dict, colors: dict[str, tuple], title: str | None = None) -> None:
    """Draw one cell graph on `ax` (equal aspect, no axes)."""
    pos = layout(graph)
    gen = {n: i for i, nodes in enumerate(layers(graph)) for n in nodes}
    labels = graph.get("node_labels") or {}
    boxes = {}
    for n, (x, y) in pos.items():
        text = _node_text(graph, n)
        w = _box_width(text)
        face = colors.get(labels.get(n), (0.93, 0.93, 0.93, 1.0)) if labels else (0.93, 0.93, 0.93, 1.0)
        box = FancyBboxPatch((x - w / 2, y - NODE_H / 2), w, NODE_H, boxstyle="round,pad=0.02",
                             fc=face, ec="black", lw=1.0, zorder=3, alpha=0.85 if labels else 1.0)
        ax.add_patch(box)
        boxes[n] = box
        ax.text(x, y, text, ha="center", va="center", fontsize=8, zorder=4)
    # Arcs: an edge spanning more than one layer bends, alternately above and below the axis.
    spans: dict[int, int] = {}
    ys_extra = []
    for s, d, op in graph["edges"]:
        (x1, y1), (x2, y2) = pos[s], pos[d]
        span = gen[d] - gen[s]
        k = spans.get(span, 0)
        spans[span] = k + 1
        # The arc's height over its chord grows with the layers it skips, never with box widths.
        # ... and clears the nodes of the layers it jumps over (stacked nodes of a DAG).
        between = [abs(pos[n][1] - y1) for n in pos if gen[s] < gen[n] < gen[d]]
        height = 0.0 if span <= 1 or y1 != y2 else (-1) ** (k + span) * max(
            0.3 + 0.22 * (span - 1), max(between, default=0.0) + 0.6)
        chord = max(((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5, 1e-9)
        rad = 2 * height / chord
        ys_extra.append((y1 + y2) / 2 - rad / 2 * (x2 - x1))  # the arc's midpoint
        structural = op in STRUCTURAL
        color = (0.45, 0.45, 0.45, 1.0) if structural else colors.get(op, (0, 0, 0, 1))
        ax.add_patch(FancyArrowPatch((x1, y1), (x2, y2), patchA=boxes[s], patchB=boxes[d],
                                     arrowstyle="-|>", mutation_scale=11, lw=1.6 if not structural else 1.0,
                                     color=color, connectionstyle=f"arc3,rad={rad}", zorder=2))
        if not structural:
            # On matplotlib's arc3 quadratic Bezier (control point: chord midpoint +
            # rad * (dy, -dx)): the middle of a horizontal edge, else past the middle, where
            # edges fanning out of one node have spread apart.
            t = 0.5 if y1 == y2 else 0.64
            cx, cy = (x1 + x2) / 2 + rad * (y2 - y1), (y1 + y2) / 2 - rad * (x2 - x1)
            mx = (1 - t) ** 2 * x1 + 2 * (1 - t) * t * cx + t ** 2 * x2
            my = (1 - t) ** 2 * y1 + 2 * (1 - t) * t * cy + t ** 2 * y2
            ax.text(mx, my, op, ha="center", va="center", fontsize=7, color="black", zorder=5,
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", ec=color, lw=0.8))
    xs = [x for x, _ in pos.values()] or [0]
    ys = [y for _, y in pos.values()] + ys_extra or [0]
    ax.set_xlim(min(xs) - 0.6 - _box_width(_node_text(graph, graph["nodes"][0])) / 2,
                max(xs) + 0.6 + _box_width(_node_text(graph, graph["nodes"][-1])) / 2)
    ax.set_ylim(min(ys) - 0.45, max(ys) + 0.45)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)


def _extent(graph: dict) -> tuple[float, float]:
    """Approximate (width, height) in data units of a drawn cell."""
    fig, ax = plt.subplots()
    draw_cell(ax, graph, {})
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    plt.close(fig)
    return x1 - x0, y1 - y0


def draw_cells(panels: list[tuple[str, list[dict]]], ops: list[str], title: str, out: Path,
               name: str) -> list[Path]:
    """One row per panel (e.g. best seed, worst seed), one column per cell type (normal,
    reduce); writes <name>.png and .pdf under `out` and returns their paths."""
    if not panels:
        return []
    colors = op_colors(ops)
    ncols = max(len(cells) for _, cells in panels)
    w = max(_extent(c)[0] for _, cells in panels for c in cells)
    heights = [max(_extent(c)[1] for c in cells) + 0.6 for _, cells in panels]  # + the caption
    scale = 0.85  # inches per data unit
    fig, axes = plt.subplots(len(panels), ncols, squeeze=False,
                             figsize=(max(3.0, scale * w) * ncols, scale * sum(heights) + 0.4),
                             gridspec_kw={"height_ratios": heights})
    for row, (caption, cells) in enumerate(panels):
        for col in range(ncols):
            ax = axes[row][col]
            if col < len(cells):
                cell = cells[col]
                sub = caption if len(cells) == 1 else f"{caption}: {cell['name']} cell"
                draw_cell(ax, cell, colors, sub)
            else:
                ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=130, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths
