"""The DARTS-space results as the papers print them, and the collapse trajectory.

Reads retraining folders (benchmark/retrain/job.py):
  <results>/<space>/<method>/seed-<k>/retrain[-<dataset>]/seed-<r>/   a search run's genotype
  <results>/retrain[-<dataset>]/<space>/<name>/seed-<r>/              a genotype given by name/text
and the search runs' done.json / provenance.json for the search cost.

Table (one row per method, published rows beside): test error (%) mean ± std (ddof=1) over
every finished retraining of the method's final genotypes, i.e. over search seeds x
retraining seeds together (n = how many; the seeds columns say how many of each), the best
one, parameters (M, without the auxiliary head), and the search cost per search run (mean
wall time; GPU-days when the runs ran on a GPU, else CPU-hours).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.tables import NA, fmt

def darts_metrics(dataset: str) -> tuple[str, str, str, str]:
    """published.csv metric names of the table's columns."""
    return f"{dataset}_test_error", f"{dataset}_test_error_best", "params_m", "search_gpu_days"


def _read(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _row(folder: Path, space: str, method: str, search_seed, kind: str) -> dict | None:
    done = _read(folder / "done.json")
    cfg = _read(folder / "config.json") or {}
    if not isinstance(done, dict):
        return None
    return {"space": space, "method": method, "search_seed": search_seed,
            "retrain_seed": cfg.get("seed"), "source": kind, "dataset": done.get("dataset", cfg.get("dataset")),
            "profile": cfg.get("profile"), "epochs": done.get("epochs"),
            "test_error": done.get("test_error"), "params_m": done.get("params_millions"),
            "wall_seconds": done.get("wall_seconds"), "device": done.get("device"),
            "genotype": done.get("genotype"), "path": str(folder)}


def collect_retrains(results: str | Path) -> pd.DataFrame:
    """One row per finished retraining (done.json) under `results`."""
    results = Path(results)
    rows = []
    for folder in sorted(results.glob("*/*/seed-*/retrain*/seed-*")):
        space, method, seed_dir = folder.parts[-5:-2]
        r = _row(folder, space, method, int(seed_dir.split("-", 1)[1]), "search")
        rows.append(r)
    for folder in sorted(results.glob("retrain*/*/*/seed-*")):
        space, name = folder.parts[-3:-1]
        rows.append(_row(folder, space, f"{name} (given)", None, "given"))
    cols = ["space", "method", "search_seed", "retrain_seed", "source", "dataset", "profile", "epochs",
            "test_error", "params_m", "wall_seconds", "device", "genotype", "path"]
    return pd.DataFrame([r for r in rows if r], columns=cols)


def search_costs(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (space, method): mean wall seconds of the finished search runs and where they ran
    (the device of their last provenance entry)."""
    rows = []
    for (space, method), grp in runs[runs.status == "done"].groupby(["space", "method"]):
        devices = []
        for p in grp.path:
            prov = _read(Path(p) / "provenance.json")
            if isinstance(prov, list) and prov:
                devices.append(str(prov[-1].get("device", "")))
        gpu = bool(devices) and all(d.startswith("cuda") for d in devices)
        wall = pd.to_numeric(grp.wall_seconds, errors="coerce").dropna()
        rows.append({"space": space, "method": method, "search_runs": len(grp),
                     "search_seconds": float(wall.mean()) if len(wall) else np.nan, "gpu": gpu})
    return pd.DataFrame(rows, columns=["space", "method", "search_runs", "search_seconds", "gpu"])


def _cost_text(seconds: float, gpu: bool) -> str:
    if seconds is None or not np.isfinite(seconds):
        return NA
    return f"{seconds / 86400:.3g} GPU-days" if gpu else f"{seconds / 3600:.3g} CPU-hours"


def darts_table(retrains: pd.DataFrame, runs: pd.DataFrame, published: pd.DataFrame,
                space: str = "darts", dataset: str = "cifar10") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(numeric, display): ours per method, each followed by its published rows."""
    sub = retrains[(retrains.space == space) & (retrains.dataset == dataset)]
    costs = search_costs(runs[runs.space == space]) if len(runs) else search_costs(runs)
    pub = published[published.space == space] if "space" in published else published.iloc[0:0]
    methods = sorted(set(sub.method) | set(costs.method))
    num_rows, disp = [], []
    for method in methods:
        m = sub[sub.method == method]
        err = pd.to_numeric(m.test_error, errors="coerce").dropna()
        c = costs[costs.method == method]
        secs = float(c.search_seconds.iloc[0]) if len(c) else np.nan
        gpu = bool(c.gpu.iloc[0]) if len(c) else False
        row = {"space": space, "method": method, "dataset": dataset,
               "search_seeds": int(m.search_seed.nunique()), "retrain_seeds": int(m.retrain_seed.nunique()),
               "n": int(len(err)), "test_error.mean": float(err.mean()) if len(err) else np.nan,
               "test_error.std": float(err.std(ddof=1)) if len(err) > 1 else np.nan,
               "test_error.best": float(err.min()) if len(err) else np.nan,
               "params_m.mean": float(pd.to_numeric(m.params_m, errors="coerce").mean()) if len(m) else np.nan,
               "search_seconds": secs, "search_on_gpu": gpu,
               "profiles": ",".join(sorted({str(p) for p in m.profile.dropna()}))}
        num_rows.append(row)
        runs_found = int(c.search_runs.iloc[0]) if len(c) else 0
        seeds = (f"{row['search_seeds'] or runs_found} × {row['retrain_seeds']}"
                 if row["search_seeds"] or runs_found else f"– × {row['retrain_seeds']}")
        disp.append([method, seeds, fmt(row["test_error.mean"], row["test_error.std"]),
                     fmt(row["test_error.best"]), fmt(row["params_m.mean"], digits=2) if len(m) else NA,
                     _cost_text(secs, gpu), f"ours ({row['profiles'] or 'not retrained'})"])
        mine = pub[(pub.method == method) & pub.metric.isin(darts_metrics(dataset))]
        for label, p in mine.groupby("label", sort=False):
            get = lambda k: p[p.metric == k]  # noqa: E731
            err_p, best, par, cost = (get(k) for k in darts_metrics(dataset))
            disp.append([f"↳ published: {label}", "",
                         fmt(float(err_p["mean"].iloc[0]), float(err_p["std"].iloc[0])) if len(err_p) else NA,
                         fmt(float(best["mean"].iloc[0])) if len(best) else NA,
                         fmt(float(par["mean"].iloc[0]), digits=1) if len(par) else NA,
                         f"{float(cost['mean'].iloc[0]):g} GPU-days" if len(cost) else NA,
                         "; ".join(sorted(set(p.source))) + _notes(p)])
    num = pd.DataFrame(num_rows)
    return num, pd.DataFrame(disp, columns=["method", "search × retrain seeds", "test error (%)",
                                            "best (%)", "params (M)", "search cost", "source"])


def _notes(p: pd.DataFrame) -> str:
    notes = sorted({str(n) for n in p.note.dropna() if str(n).strip()}) if "note" in p else []
    return f" ({'; '.join(notes)})" if notes else ""


def normal_cell_counts(genotype: str) -> tuple[int, int] | None:
    """(skip connections, parameter-free ops) among the normal cell's 8 ops; None if the text
    is not a DARTS genotype."""
    from spaces.darts import PARAM_FREE_OPS, GenotypeError, parse_genotype
    try:
        g = parse_genotype(genotype)
    except (GenotypeError, TypeError):
        return None
    ops = [op for op, _ in g.normal]
    return sum(op == "skip_connect" for op in ops), sum(op in PARAM_FREE_OPS for op in ops)


def collapse_frame(epochs: pd.DataFrame, space: str = "darts") -> pd.DataFrame:
    """space, method, seed, epoch, skip_connect, param_free: the collapse signal per record."""
    sub = epochs[(epochs.space == space)] if len(epochs) else epochs
    rows = []
    for r in sub.itertuples(index=False):
        c = normal_cell_counts(getattr(r, "genotype", None))
        if c is not None:
            rows.append({"space": r.space, "method": r.method, "seed": r.seed, "epoch": r.epoch,
                         "skip_connect": c[0], "param_free": c[1]})
    return pd.DataFrame(rows, columns=["space", "method", "seed", "epoch", "skip_connect", "param_free"])


def collapse_figure(epochs: pd.DataFrame, out: Path, space: str = "darts") -> list[Path]:
    """Skip connections and parameter-free ops in the derived normal cell vs search epoch,
    per method (mean ± std over search seeds)."""
    from analysis import plots as P
    frame = collapse_frame(epochs, space)
    if frame.empty:
        return []
    import matplotlib.pyplot as plt
    import seaborn as sns
    pal = P._palette(frame.method.unique())
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, col, label in ((axes[0], "skip_connect", "skip connections"),
                           (axes[1], "param_free", "parameter-free ops")):
        sns.lineplot(data=frame, x="epoch", y=col, hue="method", palette=pal, errorbar=P.BAND,
                     marker="o", ax=ax, legend=ax is axes[1])
        ax.set(xlabel="search epoch", ylabel=f"{label} in normal cell (of 8)", ylim=(-0.3, 8.3))
    if axes[1].get_legend():
        sns.move_legend(axes[1], "upper left", bbox_to_anchor=(1.02, 1))
    fig.suptitle(f"{space}: collapse signal of the derived normal cell (mean ± std over seeds)")
    return P._save(fig, out, f"{space}_collapse")


def is_darts_space(space: str, final: pd.DataFrame) -> bool:
    """The space is scored by retraining: its registry entry says so, or (not registered in
    this checkout) its genotypes are DARTS genotypes."""
    try:
        from spaces import get_space
        return get_space(space).benchmark == "darts-train"
    except KeyError:
        g = final[final.space == space].genotype.dropna() if "genotype" in final else []
        return len(g) > 0 and all(normal_cell_counts(x) is not None for x in g)
