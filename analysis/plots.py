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
    if fig._suptitle is not None:  # above the panel titles, one step per extra line
        fig._suptitle.set_y(1.02 + 0.06 * fig._suptitle.get_text().count("\n"))
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=130, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths


def _palette(methods) -> dict:
    methods = sorted(methods)
    return dict(zip(methods, sns.color_palette("tab10", len(methods))))


def nb201_trajectory(epochs: pd.DataFrame, published: pd.DataFrame, space: str, out: Path,
                     split: str = "test", protocol: dict[str, int] | None = None,
                     profile_note: str | None = None, name: str | None = None) -> list[Path]:
    """Derived-cell accuracy vs epoch, one panel per dataset. The optimum is a dashed black
    line; a method's published final value is a dotted horizontal line in its colour, labelled
    with the protocol it was obtained under (`protocol`: method -> search epochs of the paper
    protocol); it is never drawn as a point at this run's last epoch, which may be a 2-epoch
    smoke run. `profile_note` (e.g. "smoke profile, 2 epochs: not the paper protocol") goes
    into the title. `name`: the file name (default <space>_trajectory_<split>); the report draws
    one figure per profile, and passes published rows only to the `paper` one."""
    sub = epochs[epochs.space == space]
    cols = [(f"bench.{d}_{split}", d, label) for d, label in NB201_DATASETS]
    cols = [c for c in cols if c[0] in sub and sub[c[0]].notna().any()]
    if not cols:
        return []
    pal = _palette(sub.method.unique())
    fig, axes = plt.subplots(1, len(cols), figsize=(4.6 * len(cols), 3.6), squeeze=False)
    pub = published[published.space == space]
    for flag in ("also_reported", "context"):   # the headline rows only
        if flag in pub:
            pub = pub[~pub[flag].astype(bool)]
    protocol = protocol or {}
    for ax, (col, d, label) in zip(axes[0], cols):
        sns.lineplot(data=sub, x="epoch", y=col, hue="method", palette=pal, errorbar=BAND, ax=ax,
                     legend=ax is axes[0][0])
        metric = f"{d}_{split}"
        opt = pub[(pub.method == "optimum") & (pub.metric == metric)]
        if len(opt):
            ax.axhline(float(opt["mean"].iloc[0]), color="black", ls="--", lw=1,
                       label="optimum of the benchmark")
        for m, color in pal.items():
            p = pub[(pub.method == m) & (pub.metric == metric)]
            if len(p):
                ep = protocol.get(m)
                ax.axhline(float(p["mean"].iloc[0]), color=color, ls=":", lw=1.6,
                           label=f"{p['label'].iloc[0]} published"
                                 + (f", {ep} epochs" if ep else ""))
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
    fig.legend(h, lab, loc="upper center", ncol=min(len(lab), 4), bbox_to_anchor=(0.5, -0.02))
    title = (f"{space}: derived cell vs search epoch (mean ± std over seeds; dashed = optimum, "
             "dotted = published final value)")
    if profile_note:
        title += f"\n{profile_note}"
    fig.suptitle(title)
    return _save(fig, out, name or f"{space}_trajectory_{split}")


def regret_trajectory(epochs: pd.DataFrame, spaces: list[str], out: Path, name: str = "nb1shot1_regret",
                      title_note: str = "") -> list[Path]:
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
    fig.suptitle("NAS-Bench-1Shot1: test regret vs epoch (mean ± std over seeds)" + title_note)
    return _save(fig, out, name)


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


def _softmax(a: np.ndarray) -> np.ndarray:
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def arch_views(arch: dict) -> list[tuple[str, dict[str, np.ndarray]]]:
    """What an epoch's `arch` record shows, as (quantity, {tensor: 2-D array}): softmax(mu)
    and sigma for BaLeNAS (a Gaussian q(alpha)); softmax(alpha) for the DARTS family; else the
    method's own mixing `weights` (BayesNAS' switch products). [] when the method keeps no
    architecture tensor (random-ws)."""
    def arrays(d) -> dict[str, np.ndarray]:
        out = {}
        for name, val in d.items():
            a = np.asarray(val, float)
            out[name] = a.reshape(-1, a.shape[-1]) if a.ndim > 1 else a.reshape(1, -1)
        return out
    if isinstance(arch.get("mu"), dict) and arch["mu"]:
        views = [("softmax(μ)", {k: _softmax(v) for k, v in arrays(arch["mu"]).items()})]
        if isinstance(arch.get("sigma"), dict) and arch["sigma"]:
            views.append(("σ", arrays(arch["sigma"])))
        return views
    if isinstance(arch.get("alpha"), dict) and arch["alpha"]:
        return [("softmax(α)", {k: _softmax(v) for k, v in arrays(arch["alpha"]).items()})]
    if isinstance(arch.get("weights"), dict) and arch["weights"]:
        return [("mixing weights", arrays(arch["weights"]))]
    return []


def _axes_for(name: str, shape: tuple[int, int], axes: dict | None) -> tuple[list[str], list[str]]:
    """Row and column labels of one tensor from the space (`spaces.base.arch_axes`); generic
    ones only when the space does not name them or the shapes disagree."""
    rows, cols = (axes or {}).get(name, (None, None))
    if rows is None or len(rows) != shape[0] or len(cols) != shape[1]:
        rows = [f"{name}[{i}]" for i in range(shape[0])]
        cols = [f"op{j}" for j in range(shape[1])]
    return list(rows), list(cols)


def arch_frames(arch: dict, axes: dict | None) -> list[tuple[str, str, pd.DataFrame]]:
    """(quantity, tensor, DataFrame edges x ops) for one epoch's `arch`, labelled by the space."""
    out = []
    for quantity, tensors in arch_views(arch):
        for name in sorted(tensors):
            a = tensors[name]
            rows, cols = _axes_for(name, a.shape, axes)
            out.append((quantity, name, pd.DataFrame(a, index=rows, columns=cols)))
    return out


def arch_final_heatmap(arch: dict, axes: dict | None, title: str, out: Path, name: str) -> list[Path]:
    """One epoch's architecture as the DARTS-family papers show it: rows = edges ('1<-0'),
    columns = ops, the value in each cell; one panel per architecture tensor (cell type), and
    per quantity side by side (BaLeNAS: softmax(mu) | sigma). Also writes <name>.csv with the
    labelled values."""
    frames = arch_frames(arch, axes)
    if not frames:
        return []
    quantities = list(dict.fromkeys(q for q, _, _ in frames))
    tensors = list(dict.fromkeys(t for _, t, _ in frames))
    by = {(q, t): df for q, t, df in frames}
    nrows = [max(by[(q, t)].shape[0] for q in quantities if (q, t) in by) for t in tensors]
    ncols = max(df.shape[1] for df in by.values())
    width = max(3.2, 0.8 * ncols + 2.2)
    fig, axs = plt.subplots(len(tensors), len(quantities), squeeze=False,
                            figsize=(width * len(quantities), sum(0.42 * r + 1.1 for r in nrows)),
                            gridspec_kw={"height_ratios": [r + 2.5 for r in nrows]})
    for i, t in enumerate(tensors):
        for j, q in enumerate(quantities):
            ax = axs[i][j]
            df = by.get((q, t))
            if df is None:
                ax.axis("off")
                continue
            spread = float(np.nanmax(df.to_numpy()) - np.nanmin(df.to_numpy()))
            sns.heatmap(df, ax=ax, cmap="viridis" if q != "σ" else "magma", annot=df.size <= 120,
                        fmt=".2f" if spread >= 0.05 else ".4f",  # enough digits to show the spread
                        annot_kws={"fontsize": 7},
                        cbar_kws={"label": q, "format": matplotlib.ticker.ScalarFormatter(useOffset=False)},
                        vmin=0 if q != "σ" else None, vmax=1 if q.startswith("softmax") else None)
            ax.set_title(f"{t}: {q}" if len(tensors) > 1 else q, fontsize=9)
            ax.tick_params(axis="x", labelrotation=35, labelsize=7)
            ax.tick_params(axis="y", labelrotation=0, labelsize=7)
            for lab in ax.get_xticklabels():
                lab.set_horizontalalignment("right")
    fig.suptitle(title)
    fig.tight_layout()
    paths = _save(fig, out, name)
    table = pd.concat({(q, t): df for q, t, df in frames}, names=["quantity", "tensor", "row"])
    table.to_csv(out / f"{name}.csv")
    return paths + [out / f"{name}.csv"]


def arch_heatmap(history: list[tuple[int, dict]], title: str, out: Path, name: str,
                 axes: dict | None = None) -> list[Path]:
    """One run's architecture per epoch: rows = (edge, op) labelled by the space
    ('1<-0 nor_conv_3x3'), columns = epochs; one panel per architecture tensor, quantities
    side by side (BaLeNAS: softmax(mu) | sigma)."""
    series: dict[tuple[str, str], list[np.ndarray]] = {}
    labels: dict[tuple[str, str], list[str]] = {}
    epochs_: list[int] = []
    for epoch, arch in history:
        frames = arch_frames(arch, axes)
        if not frames:
            continue
        epochs_.append(int(epoch))
        for q, t, df in frames:
            series.setdefault((q, t), []).append(df.to_numpy().reshape(-1))
            labels[(q, t)] = [f"{r}{c}" if str(r).endswith("<-") else f"{r} {c}"  # '2<-0', '1<-0 none'
                              for r in df.index for c in df.columns]
    if not epochs_:
        return []
    keys = [k for k, v in series.items() if len(v) == len(epochs_)]
    quantities = list(dict.fromkeys(q for q, _ in keys))
    tensors = list(dict.fromkeys(t for _, t in keys))
    nrows = [max(len(labels[(q, t)]) for q in quantities if (q, t) in labels) for t in tensors]
    step = max(1, len(epochs_) // 12)
    fig, axs = plt.subplots(len(tensors), len(quantities), squeeze=False,
                            figsize=(min(3 + 0.3 * len(epochs_), 9) * len(quantities),
                                     sum(0.17 * r + 0.9 for r in nrows)),
                            gridspec_kw={"height_ratios": [r + 4 for r in nrows]})
    for i, t in enumerate(tensors):
        for j, q in enumerate(quantities):
            ax = axs[i][j]
            if (q, t) not in series or len(series[(q, t)]) != len(epochs_):
                ax.axis("off")
                continue
            mat = pd.DataFrame(np.stack(series[(q, t)], axis=1), index=labels[(q, t)], columns=epochs_)
            sns.heatmap(mat, ax=ax, cmap="viridis" if q != "σ" else "magma", xticklabels=step,
                        yticklabels=True,
                        cbar_kws={"label": q, "format": matplotlib.ticker.ScalarFormatter(useOffset=False)})
            ax.set(xlabel="search epoch", ylabel="")
            ax.set_title(f"{t}: {q}" if len(tensors) > 1 else q, fontsize=9)
            ax.tick_params(axis="y", labelsize=6 if len(mat) > 40 else 7, labelrotation=0)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, out, name)
