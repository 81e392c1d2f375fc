"""Figures from the tidy epochs table (PNG and PDF). Each function returns the paths it wrote,
or [] when the records hold nothing to plot (e.g. no run recorded the Hessian diagnostic).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from analysis.tables import NB201_DATASETS  # noqa: E402

BAND = ("sd", 1)  # mean ± 1 std over seeds


def _save(fig, out: Path, name: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    for ax in fig.axes:
        if ax.get_xlabel() == "search epoch" and ax.lines:
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    if fig._suptitle is not None:
        fig._suptitle.set_y(1.02)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=130, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths


def _palette(methods) -> dict:
    methods = sorted(methods)
    return dict(zip(methods, sns.color_palette("tab10", len(methods))))


def nb201_trajectory(epochs: pd.DataFrame, published: pd.DataFrame, space: str, out: Path,
                     split: str = "test") -> list[Path]:
    """Derived-cell accuracy vs epoch, one panel per dataset; optimum dashed, published final
    values as markers at the last epoch."""
    sub = epochs[epochs.space == space]
    cols = [(f"bench.{d}_{split}", d, label) for d, label in NB201_DATASETS]
    cols = [c for c in cols if c[0] in sub and sub[c[0]].notna().any()]
    if not cols:
        return []
    pal = _palette(sub.method.unique())
    fig, axes = plt.subplots(1, len(cols), figsize=(4.6 * len(cols), 3.6), squeeze=False)
    last = sub.epoch.max()
    pub = published[published.space == space]
    for ax, (col, d, label) in zip(axes[0], cols):
        sns.lineplot(data=sub, x="epoch", y=col, hue="method", palette=pal, errorbar=BAND, ax=ax,
                     legend=ax is axes[0][0])
        metric = f"{d}_{split}"
        opt = pub[(pub.method == "optimum") & (pub.metric == metric)]
        if len(opt):
            ax.axhline(float(opt["mean"].iloc[0]), color="black", ls="--", lw=1, label="optimum")
        for m, color in pal.items():
            p = pub[(pub.method == m) & (pub.metric == metric)]
            if len(p):
                ax.plot([last], [float(p["mean"].iloc[0])], marker="*", ms=12, color=color,
                        ls="none", markeredgecolor="black", label=f"{m} published")
        ax.set(title=label, xlabel="search epoch", ylabel=f"{split} accuracy of derived cell (%)")
    h, lab = [], []
    for ax in axes[0]:
        for hh, ll in zip(*ax.get_legend_handles_labels()):
            if ll not in lab:
                h.append(hh)
                lab.append(ll)
    if axes[0][0].get_legend():
        axes[0][0].get_legend().remove()
    # below the axes labels: the legend grows with the number of methods
    fig.legend(h, lab, loc="upper center", ncol=min(len(lab), 5), bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(f"{space}: derived cell vs search epoch (mean ± std over seeds; "
                 "dashed = optimum, ★ = published final)")
    return _save(fig, out, f"{space}_trajectory_{split}")


def regret_trajectory(epochs: pd.DataFrame, spaces: list[str], out: Path) -> list[Path]:
    """Test regret vs epoch, one panel per (NB101-scored) search space.

    Symmetric-log scale (linear within +-1e-3): regret can be negative (the benchmark's
    optimum misses some cells the spaces reach, benchmark/tabular/nb101_scorer.py), so it is never clipped."""
    sub = epochs[epochs.space.isin(spaces)]
    if "bench.test_regret" not in sub or not sub["bench.test_regret"].notna().any():
        return []
    pal = _palette(sub.method.unique())
    fig, axes = plt.subplots(1, len(spaces), figsize=(4.6 * len(spaces), 3.6), squeeze=False)
    for ax, space in zip(axes[0], spaces):
        s = sub[(sub.space == space) & sub["bench.test_regret"].notna()]
        sns.lineplot(data=s, x="epoch", y="bench.test_regret", hue="method", palette=pal,
                     errorbar=BAND, ax=ax)
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.set(title=space, xlabel="search epoch", ylabel="test regret")
    fig.suptitle("NAS-Bench-1Shot1: test regret vs epoch (mean ± std over seeds)")
    return _save(fig, out, "nb1shot1_regret")


def collapse(epochs: pd.DataFrame, out: Path) -> list[Path]:
    """Parameter-free ops (skip, pooling, none) in the derived cell vs epoch, per space."""
    if "param_free_ops" not in epochs or not epochs.param_free_ops.notna().any():
        return []
    spaces = sorted(epochs.space.unique())
    pal = _palette(epochs.method.unique())
    fig, axes = plt.subplots(1, len(spaces), figsize=(4.6 * len(spaces), 3.4), squeeze=False)
    for ax, space in zip(axes[0], spaces):
        sns.lineplot(data=epochs[epochs.space == space], x="epoch", y="param_free_ops",
                     hue="method", palette=pal, errorbar=BAND, ax=ax)
        ax.set(title=space, xlabel="search epoch", ylabel="parameter-free ops in derived cell")
    fig.suptitle("Collapse diagnostic (mean ± std over seeds)")
    return _save(fig, out, "collapse_param_free_ops")


def hessian(epochs: pd.DataFrame, out: Path) -> list[Path]:
    col = "diag.hessian_max_eig"
    if col not in epochs or not epochs[col].notna().any():
        return []
    sub = epochs[epochs[col].notna()]
    spaces = sorted(sub.space.unique())
    pal = _palette(sub.method.unique())
    fig, axes = plt.subplots(1, len(spaces), figsize=(4.6 * len(spaces), 3.4), squeeze=False)
    for ax, space in zip(axes[0], spaces):
        sns.lineplot(data=sub[sub.space == space], x="epoch", y=col, hue="method", palette=pal,
                     errorbar=BAND, marker="o", ax=ax)
        ax.set(title=space, xlabel="search epoch", ylabel="dominant eigenvalue of ∇²_α L_val")
    fig.suptitle("Stability: dominant Hessian eigenvalue (mean ± std over seeds)")
    return _save(fig, out, "hessian_max_eig")


def arch_matrix(arch: dict) -> tuple[np.ndarray, list[str]] | None:
    """Rows = choices (edge/op pairs), from `mu` (BaLeNAS), else `weights` (softmax), else `alpha`."""
    for key in ("mu", "weights", "alpha"):
        val = arch.get(key)
        if isinstance(val, dict) and val:
            rows, labels = [], []
            for name in sorted(val):
                a = np.asarray(val[name], float)
                a = a.reshape(-1, a.shape[-1]) if a.ndim > 1 else a.reshape(1, -1)
                for i, r in enumerate(a):
                    for j, x in enumerate(r):
                        rows.append(x)
                        labels.append(f"{name}[{i}] op{j}")
            return np.asarray(rows), [key] + labels
    return None


def arch_heatmap(history: list[tuple[int, dict]], title: str, out: Path, name: str,
                 op_names: list[str] | None = None) -> list[Path]:
    """One run's architecture weights per epoch (rows: edge x op, columns: epochs)."""
    cols, epochs_, labels, kind = [], [], None, None
    for epoch, arch in history:
        m = arch_matrix(arch)
        if m is None:
            continue
        vec, lab = m
        if labels is None:
            kind, labels = lab[0], lab[1:]
        if len(vec) == len(labels):
            cols.append(vec)
            epochs_.append(epoch)
    if not cols:
        return []
    if op_names:
        labels = [l.rsplit(" op", 1)[0] + " " + op_names[int(l.rsplit("op", 1)[1])]
                  if int(l.rsplit("op", 1)[1]) < len(op_names) else l for l in labels]
    mat = np.stack(cols, axis=1)
    fig, ax = plt.subplots(figsize=(min(2 + 0.35 * len(epochs_), 16), 1.5 + 0.22 * len(labels)))
    sns.heatmap(mat, ax=ax, cmap="viridis", xticklabels=epochs_, yticklabels=labels,
                cbar_kws={"label": "softmax(α)" if kind == "weights" else kind})
    ax.set(xlabel="search epoch", title=title)
    ax.tick_params(axis="y", labelsize=7)
    return _save(fig, out, name)
