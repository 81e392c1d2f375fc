"""Paper tables from the collected records: NB201 accuracies, 1Shot1 regret, search cost.

Each table exists twice: numeric (CSV, one value per cell) and display (Markdown and LaTeX
booktabs, "mean ± std"). Std is the sample std over seeds (ddof=1). A figure that the
records lack (the benchmark table has none, or the run was not scored) shows as n/a: no
lower-fidelity number is ever substituted.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

PUBLISHED = Path(__file__).with_name("published.csv")
NB201_DATASETS = (("cifar10", "CIFAR-10"), ("cifar100", "CIFAR-100"), ("imagenet16", "ImageNet16-120"))
NB201_METRICS = tuple(f"{d}_{s}" for d, _ in NB201_DATASETS for s in ("valid", "test"))
REGRET_METRICS = ("test_regret", "test_error", "valid_regret", "valid_error")
NA = "n/a"


# The protocol a published number (and a row of ours) rests on (published.csv `protocol`):
# tabular spaces: `search-runs` (mean ± std over search runs, each run's final cell looked up
# in the table), `table-optimum` (the best cell of the table); the DARTS space: `selected`
# (the DARTS protocol: best of N searches by a short retraining's validation accuracy, the
# winner retrained R times, mean ± std), `all-searches` (mean over search seeds x retraining
# seeds), `best` (one best single run). Empty: the source states none.
PROTOCOLS = ("search-runs", "table-optimum", "selected", "all-searches", "best")
FLAGS = ("also_reported", "context")


def load_published(path: str | Path = PUBLISHED) -> pd.DataFrame:
    """published.csv with `also_reported` / `context` as booleans (False where a file lacks
    them) and `protocol` as text ('' = not stated). Every row needs a source; a protocol must
    be one of PROTOCOLS or empty."""
    pub = pd.read_csv(path, dtype={"space": str, "method": str, "metric": str, "protocol": str, "mean": str})
    # digits after the point as printed (54.30: 2): the verdicts widen by half that unit
    pub["mean_decimals"] = [len(m.split(".", 1)[1]) if isinstance(m, str) and "." in m else 0 for m in pub["mean"]]
    pub["mean"] = pd.to_numeric(pub["mean"], errors="coerce")
    missing = pub[pub["source"].isna() | (pub["source"].astype(str).str.strip() == "")]
    if len(missing):
        raise ValueError(f"{path}: every published number needs a source; missing in rows "
                         f"{list(missing.index)}")
    for flag in FLAGS:
        if flag not in pub:
            pub[flag] = False
        text = pub[flag].map(lambda v: "" if v is None or v != v else str(v).strip().lower())
        bad = ~text.isin(["true", "false", "1", "0", "1.0", "0.0", ""])   # empty: false
        if bad.any():
            raise ValueError(f"{path}: column {flag} must be true or false; rows {list(pub.index[bad])}")
        pub[flag] = text.isin(["true", "1", "1.0"])
    pub["protocol"] = pub["protocol"].fillna("") if "protocol" in pub else ""
    bad = ~pub.protocol.isin(("",) + PROTOCOLS)
    if bad.any():
        raise ValueError(f"{path}: protocol must be one of {', '.join(PROTOCOLS)} or empty; rows "
                         f"{list(pub.index[bad])}")
    return pub


def headline(published: pd.DataFrame) -> pd.DataFrame:
    """The published rows that meet ours in difference columns: not "also reported", not a
    context row (a method not run here)."""
    keep = pd.Series(True, index=published.index)
    for flag in FLAGS:
        if flag in published:
            keep &= ~published[flag].astype(bool)
    return published[keep]


def space_kind(final: pd.DataFrame, space: str) -> str:
    """'regret' (NB101-scored), 'accuracy' (NB201-scored) or 'unscored', from the records."""
    sub = final[final.space == space]
    def has(keys): return any(f"bench.{k}" in sub and sub[f"bench.{k}"].notna().any() for k in keys)
    if has(REGRET_METRICS):
        return "regret"
    if has(NB201_METRICS):
        return "accuracy"
    return "unscored"


def _stats(values: pd.Series) -> dict:
    v = pd.to_numeric(values, errors="coerce").dropna()
    return {"mean": float(v.mean()) if len(v) else np.nan,
            "std": float(v.std(ddof=1)) if len(v) > 1 else np.nan, "n": int(len(v))}


def numeric_table(final: pd.DataFrame, published: pd.DataFrame, space: str,
                  metrics: tuple[str, ...]) -> pd.DataFrame:
    """One row per method: n_seeds, and per metric mean/std/n, published mean/std, diff."""
    sub = final[final.space == space]
    pub = headline(published[published.space == space])
    rows = []
    for method in sorted(sub.method.unique()):
        runs = sub[sub.method == method]
        row = {"space": space, "method": method, "n_seeds": int(runs.seed.nunique()),
               "base_method": str(runs.base_method.iloc[0]) if "base_method" in runs else method}
        # A row is one configuration (analysis/collect.py `configurations`): it meets the
        # published rows of its method only if it follows the paper protocol.
        base = str(runs.base_method.iloc[0]) if "base_method" in runs else method
        mine = pub[pub.method == base] if "paper" not in runs or bool(runs.paper.all()) else pub.iloc[0:0]
        for m in metrics:
            col = f"bench.{m}"
            s = _stats(runs[col]) if col in runs else {"mean": np.nan, "std": np.nan, "n": 0}
            row.update({f"{m}.mean": s["mean"], f"{m}.std": s["std"], f"{m}.n": s["n"]})
            p = mine[mine.metric == m]
            pm = float(p["mean"].iloc[0]) if len(p) else np.nan
            row.update({f"{m}.published": pm,
                        f"{m}.published_std": float(p["std"].iloc[0]) if len(p) else np.nan,
                        f"{m}.diff": s["mean"] - pm})
        lab = mine
        row["published_label"] = lab["label"].iloc[0] if len(lab) else None
        rows.append(row)
    return pd.DataFrame(rows)


def fmt(mean: float, std: float = np.nan, n: int | None = None, total: int | None = None,
        digits: int = 2, signed: bool = False) -> str:
    if mean is None or (isinstance(mean, float) and np.isnan(mean)):
        return NA
    text = f"{mean:+.{digits}f}" if signed else f"{mean:.{digits}f}"
    if std is not None and not np.isnan(std):
        text += f" ± {std:.{digits}f}"
    if n is not None and total is not None and n < total:
        text += f" (n={n})"
    return text


def display_table(num: pd.DataFrame, published: pd.DataFrame, space: str,
                  metrics: tuple[str, ...], headers: list[str], digits: int = 2) -> pd.DataFrame:
    """Rows: optimum, then per method: ours, the published row (if any), the difference, any
    "also reported" values of the method (no difference: another source's figure); last, the
    context rows (published methods this suite does not run), printed as such."""
    rows = []
    here = published[published.space == space]
    opt = here[(here.method == "optimum")]
    if len(opt):
        rows.append(["optimum (published)", ""] + [
            fmt(*_pub(opt, m), digits=digits) for m in metrics])
    also = here[here.also_reported.astype(bool) & ~here.context.astype(bool)] if "also_reported" in here \
        else here.iloc[0:0]
    for _, r in num.iterrows():
        rows.append([r.method, str(r.n_seeds)] + [
            fmt(r[f"{m}.mean"], r[f"{m}.std"], r[f"{m}.n"], r.n_seeds, digits) for m in metrics])
        if pd.notna(r.published_label) and r.published_label:  # NaN when the method has none
            rows.append([f"↳ published: {r.published_label}", ""] + [
                fmt(r[f"{m}.published"], r[f"{m}.published_std"], digits=digits) for m in metrics])
            rows.append(["↳ ours − published", ""] + [
                fmt(r[f"{m}.diff"], digits=digits, signed=True) for m in metrics])
            base = r.base_method if "base_method" in r and isinstance(r.base_method, str) else r.method
            for label, p in also[also.method == base].groupby("label", sort=False):
                if any(p.metric.isin(metrics)):
                    rows.append([f"↳ also reported: {label}", ""] + [
                        fmt(*_pub(p, m), digits=digits) for m in metrics])
    ctx = here[here.context.astype(bool)] if "context" in here else here.iloc[0:0]
    for label, p in ctx.groupby("label", sort=False):
        if any(p.metric.isin(metrics)):
            rows.append([f"context (not run here), published: {label}", ""] + [
                fmt(*_pub(p, m), digits=digits) for m in metrics])
    return pd.DataFrame(rows, columns=["method", "seeds"] + headers)


def _pub(rows: pd.DataFrame, metric: str) -> tuple[float, float]:
    p = rows[rows.metric == metric]
    return (float(p["mean"].iloc[0]), float(p["std"].iloc[0])) if len(p) else (np.nan, np.nan)


def nb201_tables(final, published, space):
    num = numeric_table(final, published, space, NB201_METRICS)
    headers = [f"{label} {s}" for _, label in NB201_DATASETS for s in ("valid", "test")]
    return num, display_table(num, published, space, NB201_METRICS, headers)


def regret_tables(final, published, space):
    num = numeric_table(final, published, space, REGRET_METRICS)
    headers = ["test regret", "test error", "valid regret", "valid error"]
    return num, display_table(num, published, space, REGRET_METRICS, headers, digits=4)


def cost_tables(epochs: pd.DataFrame, runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Wall time per finished run and per search epoch (epoch 0 excluded), per space and method."""
    rows = []
    done = runs[runs.status == "done"]
    for (space, method), grp in done.groupby(["space", "method"], sort=True):
        ep = epochs[(epochs.space == space) & (epochs.method == method) & (epochs.epoch >= 1)
                    & epochs.seed.isin(grp.seed)]
        wall = grp.wall_seconds
        if wall.isna().any() and "wall_seconds" in ep:  # fall back to the last record's clock
            last = ep.groupby("seed")["wall_seconds"].max()
            wall = grp.seed.map(last).where(wall.isna(), wall)
        w, e = _stats(wall), _stats(ep["epoch_seconds"] if "epoch_seconds" in ep else pd.Series(dtype=float))
        devices = _devices(grp.path) if "path" in grp else []
        gpu = bool(devices) and all(d.startswith("cuda") for d, _ in devices)
        rows.append({"space": space, "method": method, "runs": len(grp),
                     "run_seconds.mean": w["mean"], "run_seconds.std": w["std"],
                     "epoch_seconds.mean": e["mean"], "epoch_seconds.std": e["std"],
                     "epochs": int(e["n"]),
                     "cost_per_run": (w["mean"] / 86400 if gpu else w["mean"] / 3600),
                     "cost_unit": "GPU-days" if gpu else "CPU-hours",
                     "device": "; ".join(sorted({f"{d} on {h}" for d, h in devices})) or "not recorded"})
    num = pd.DataFrame(rows, columns=["space", "method", "runs", "run_seconds.mean", "run_seconds.std",
                                      "epoch_seconds.mean", "epoch_seconds.std", "epochs",
                                      "cost_per_run", "cost_unit", "device"])
    disp = pd.DataFrame({
        "space": num.space, "method": num.method, "runs": num.runs.astype(str),
        "wall s / run": [fmt(m, s, digits=1) for m, s in zip(num["run_seconds.mean"], num["run_seconds.std"])],
        "s / epoch": [fmt(m, s, digits=2) for m, s in zip(num["epoch_seconds.mean"], num["epoch_seconds.std"])],
        "cost / search": [NA if not np.isfinite(c) else f"{c:.3g} {u}" for c, u in zip(num.cost_per_run, num.cost_unit)],
        "device": num.device})
    return num, disp


def _devices(paths) -> list[tuple[str, str]]:
    """(device, host) of each run's last start (its provenance.json), where recorded. Our own
    search cost is per search run: GPU-days where every run ran on a CUDA device, else CPU-hours."""
    import json
    out = []
    for p in paths:
        try:
            prov = json.loads((Path(p) / "provenance.json").read_text())
        except (OSError, ValueError):
            continue
        if isinstance(prov, list) and prov and isinstance(prov[-1], dict):
            last = prov[-1]
            threads = last.get("torch_threads")
            dev = str(last.get("device", "?")) + (f", {threads} threads" if threads and str(last.get("device", "")) == "cpu" else "")
            out.append((dev, str(last.get("host", "?"))))
    return out


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub Markdown table (pandas' to_markdown needs `tabulate`, which we don't require)."""
    def cell(v) -> str:
        text = str(v).replace("|", "\\|").replace("\n", " ")
        if len(text) > 1 and text[0] == text[-1] == "`" and "`" not in text[1:-1]:
            return text   # a code span: nothing in it is a link
        # brackets escaped: a name from the results tree never becomes a link or an image
        return text.replace("[", "\\[").replace("]", "\\]")
    lines = ["| " + " | ".join(cell(c) for c in df.columns) + " |",
             "| " + " | ".join("---" for _ in df.columns) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def to_latex(df: pd.DataFrame, caption: str) -> str:
    """booktabs table; ± and arrows as LaTeX math."""
    tex = df.copy()
    for c in tex.columns:
        tex[c] = tex[c].astype(str).str.replace("±", r"$\pm$", regex=False) \
            .str.replace("↳", r"$\hookrightarrow$", regex=False).str.replace("−", "$-$", regex=False) \
            .str.replace("_", r"\_", regex=False)
    tex.columns = [str(c).replace("_", r"\_") for c in tex.columns]
    return tex.style.hide(axis="index").to_latex(hrules=True, caption=caption.replace("_", r"\_"),
                                                 column_format="l" * len(tex.columns))


def write_table(num: pd.DataFrame, disp: pd.DataFrame, out: str | Path, name: str, caption: str) -> str:
    """name.csv (numbers), name.md, name.tex; returns the Markdown."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    num.to_csv(out / f"{name}.csv", index=False)
    md = to_markdown(disp)
    (out / f"{name}.md").write_text(f"{caption}\n\n{md}")
    (out / f"{name}.tex").write_text(to_latex(disp, caption))
    return md


def paper_vs_fair(spaces: list[str] | None = None, methods: list[str] | None = None) -> pd.DataFrame:
    """What each method's `paper` profile changes against `fair`, per space, from the code
    (benchmark/harness/config.py `paper_vs_fair`): one row per (space, method) with the changed
    fields as `field: paper (fair value)`, or "nothing: paper = fair"."""
    from benchmark.harness.config import paper_vs_fair as diff
    from methods.registry import available as all_methods
    from spaces import available as all_spaces
    rows = []
    for space in spaces or all_spaces():
        for method in methods or all_methods():
            try:
                d = diff(space, method)
            except (KeyError, ValueError):   # a space or method this checkout does not know
                continue
            text = "; ".join(f"{k}: {_short(a)} (fair {'unset: the space default' if b is None else _short(b)})"
                             for k, (a, b) in d.items())
            rows.append({"space": space, "method": method, "paper changes": text or "nothing: paper = fair"})
    return pd.DataFrame(rows, columns=["space", "method", "paper changes"])


def _short(v) -> str:
    import json
    return json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else str(v)
