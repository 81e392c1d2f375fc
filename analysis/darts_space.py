"""The DARTS-space results as the papers print them, and the collapse trajectory.

Reads retraining folders (benchmark/retrain/job.py):
  <results>/<space>/<method>/seed-<k>/retrain[-<dataset>]/seed-<r>/   a search run's genotype
  <results>/retrain[-<dataset>]/<space>/<name>/seed-<r>/              a genotype given by name/text
and the search runs' done.json / provenance.json for the search cost.

Table (one row per configuration: a search configuration x a retraining configuration, named
by what differs; published rows beside the rows that follow the paper protocol): test error
(%) mean ± std (ddof=1) over every finished, whole retraining of the row's final genotypes, i.e. over search seeds x
retraining seeds together (n = how many; the seeds columns say how many of each), the best
one, parameters (M, without the auxiliary head), and the search cost per search run (mean
wall time; GPU-days when the runs ran on a GPU, else CPU-hours).

Where a method's DARTS-paper selection was made (`python -m benchmark.retrain select`, its
<results>/<space>/<method>/selection.json), the method has two rows, tagged in the CSV's
`protocol` column with published.csv's identifiers: `all-searches` (as above; the winner's
extra final seeds, those no other search run was retrained with, are left out so every search
run weighs alike) and `selected` (the chosen cell's retrainings only: "1 of S × R"). The
selection trainings themselves (retrain-select/, valid_on set) are candidates: in no row.
"""
from __future__ import annotations

import hashlib
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


RETRAIN_COLUMNS = ["space", "method", "search_seed", "retrain_seed", "source", "dataset", "profile",
                   "epochs", "test_error", "params_m", "wall_seconds", "data_official", "device", "genotype", "path",
                   "status", "damage", "identity_problem", "retrain_config", "search_path"]


def _row(folder: Path, space: str, method: str, search_seed, kind: str, search_path: str | None) -> dict:
    """One retraining folder as benchmark/harness/assess.py sees it (the search worker's rules:
    damaged records, identity against the folder's name and checkpoint)."""
    from benchmark.harness.assess import assess
    a = assess(folder, "retrain")
    cfg = a.config or {}
    done = _read(folder / "done.json") if a.status == "done" else None
    done = done if isinstance(done, dict) else {}
    rc = {k: v for k, v in cfg.items() if k not in ("seed", "genotype")}
    return {"space": space, "method": method, "search_seed": search_seed,
            "retrain_seed": cfg.get("seed"), "source": kind, "dataset": done.get("dataset", cfg.get("dataset")),
            "profile": cfg.get("profile"), "epochs": done.get("epochs"),
            "test_error": done.get("test_error"), "params_m": done.get("params_millions"),
            "wall_seconds": done.get("wall_seconds"), "device": done.get("device"),
            "data_official": done.get("data_official") is True,
            "genotype": done.get("genotype", cfg.get("genotype")), "path": str(folder),
            "status": "mismatch" if a.mismatch else a.status, "damage": "; ".join(a.problems) or None,
            "identity_problem": a.mismatch or None,
            "retrain_config": json.dumps(rc, sort_keys=True) if cfg else None, "search_path": search_path}


def retrain_folders(results: str | Path) -> list[tuple[Path, str, str, object, str, str | None]]:
    """(folder, space, method, search seed, source, search run folder) of every retraining."""
    results = Path(results)
    out = []
    for folder in sorted(results.glob("*/*/seed-*/retrain*/seed-*")):
        if folder.is_dir():
            space, method, seed_dir = folder.parts[-5:-2]
            tail = seed_dir.split("-", 1)[1]
            out.append((folder, space, method, int(tail) if tail.isdigit() else tail, "search",
                        str(folder.parents[1])))
    for folder in sorted(results.glob("retrain*/*/*/seed-*")):
        if folder.is_dir():
            space, name = folder.parts[-3:-1]
            out.append((folder, space, f"{name} (given)", None, "given", None))
    return out


def collect_all_retrains(results: str | Path) -> pd.DataFrame:
    """One row per retraining folder under `results`, finished or not, with its status
    (done | damaged | partial | failed | new | mismatch), damage and identity problem."""
    rows = [_row(f, sp, m, s, k, sr) for f, sp, m, s, k, sr in retrain_folders(results)]
    return pd.DataFrame(rows, columns=RETRAIN_COLUMNS)


def collect_retrains(results: str | Path) -> pd.DataFrame:
    """One row per finished, whole retraining (done.json, records whole, identity consistent)."""
    r = collect_all_retrains(results)
    return r[r.status == "done"].reset_index(drop=True)


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


def label_retrains(retrains: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """`retrains` with `row` (the table row: one search configuration x one retraining
    configuration, named by what differs), `search_row`, `base_method`, `paper` (search and
    retraining both under the paper protocol) and `left_out` (why a retraining counts nowhere:
    its search run is damaged, unfinished or not the run its folder names; '' if it counts).
    `runs` may carry the search rows (analysis/collect.py `configurations`)."""
    from analysis.collect import MAX_NAMED, _flat
    from benchmark.retrain.profiles import PAPER
    r = retrains.copy()
    by_path = runs.set_index("path") if len(runs) else None

    def look(path, col, default):
        if by_path is None or not isinstance(path, str) or path not in by_path.index or col not in by_path:
            return default
        return by_path.at[path, col]

    r["search_row"] = [look(p, "method", m) for p, m in zip(r.search_path, r.method)]
    r["base_method"] = [look(p, "base_method", m) for p, m in zip(r.search_path, r.method)]
    status = [look(p, "status", None) for p in r.search_path]
    r["left_out"] = ["" if s in (None, "done") else f"its search run {p} is {s}"
                     for s, p in zip(status, r.search_path)]
    search_paper = [bool(look(p, "paper", True)) if isinstance(p, str) else True for p in r.search_path]
    r["selecting"] = pd.Series([bool(isinstance(c, str) and json.loads(c).get("valid_on"))
                                for c in r.retrain_config], index=r.index, dtype=bool)
    rpaper = []
    for c in r.retrain_config:
        cfg = json.loads(c) if isinstance(c, str) else {}
        rpaper.append(cfg.get("profile") == "paper" and all(cfg.get(k, v) == v for k, v in PAPER.items()))
    r["paper"] = [a and b for a, b in zip(search_paper, rpaper)]

    r["row"] = r.search_row
    counted = r[(r.status == "done") & (r.left_out == "") & ~r.selecting]   # selection runs name no row
    for _, grp in counted.groupby(["space", "search_row", "dataset"], dropna=False):
        cfgs = {c: _flat(json.loads(c)) for c in grp.retrain_config.dropna().unique()}
        keys = sorted({k for f in cfgs.values() for k in f
                       if len({json.dumps(g.get(k), sort_keys=True) for g in cfgs.values()}) > 1})
        for i in grp.index:
            c = r.at[i, "retrain_config"]
            if keys and isinstance(c, str):
                what = ", ".join(f"{k}={cfgs[c].get(k)}" for k in keys[:MAX_NAMED])
                if len(keys) > MAX_NAMED:
                    what += f", +{len(keys) - MAX_NAMED} more (config {hashlib.sha1(c.encode()).hexdigest()[:8]})"
                r.at[i, "row"] = f"{r.at[i, 'search_row']} [retraining: {what}]"
    return r


# The identifiers of published.csv's `protocol` column (a row without one counts as all-searches).
PROTOCOLS = {"all-searches": "all searches", "selected": "selected (DARTS protocol)", "best": "best"}


def selection_of(search_paths, dataset: str) -> tuple[dict, Path] | None:
    """(the selection file's content, its method folder) of these search runs
    (benchmark/retrain/select.py writes <results>/<space>/<method>/selection[-<dataset>].json);
    None where there is none or it does not parse (a damaged one is named by the selection
    command, which refuses it)."""
    from benchmark.retrain.select import selection_name
    for folder in sorted({Path(p).parent for p in search_paths if isinstance(p, str)}):
        d = _read(folder / selection_name(dataset))
        if isinstance(d, dict) and isinstance(d.get("winner"), dict) and isinstance(d.get("candidates"), list):
            return d, folder
    return None


def selection_follows_paper(sel: dict) -> bool:
    """The selection trained its candidates under the `select` profile unchanged."""
    from benchmark.retrain.profiles import SELECT
    st = sel.get("settings") or {}
    return st.get("profile") == "select" and all(st.get(k) == v for k, v in SELECT.items())


def _split_for_selection(m: pd.DataFrame, sel: tuple[dict, Path] | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the all-searches retrainings, the selected cell's): the winner's retrainings whose seed
    no other search run of the row was retrained with (the selection's extra final seeds) count
    only in the selected row, so that every search run weighs alike in "all searches"."""
    if sel is None:
        return m, m.iloc[0:0]
    win = str(sel[1] / str(sel[0]["winner"].get("run")))
    is_win = m.search_path.astype(str) == win
    others = set(m[~is_win].retrain_seed)
    extra = is_win & ~m.retrain_seed.isin(others) if len(others) else is_win & False
    return m[~extra], m[is_win]


def counted_retrains(retrains: pd.DataFrame, space: str | None = None,
                     dataset: str | None = None) -> pd.DataFrame:
    """The retrainings that may count in a row (`label_retrains` labelled): finished, whole,
    their search run counted, and not a selection training (valid_on set: a candidate)."""
    if "row" not in retrains:
        raise ValueError("label the retrainings first (label_retrains)")
    keep = (retrains.status == "done") & (retrains.left_out == "")
    if space is not None:
        keep &= retrains.space == space
    if dataset is not None:
        keep &= retrains.dataset == dataset
    if "selecting" in retrains:
        keep &= ~retrains.selecting.astype(bool)
    return retrains[keep]


def protocol_parts(m: pd.DataFrame, dataset: str) -> list[tuple[str, pd.DataFrame, dict | None]]:
    """One table row's retrainings (`counted_retrains`, one `row`) split by protocol:
    [("all-searches", every search run's cell, None)] and, where the method's selection was made,
    ("selected", the winner's retrainings, the selection). The one rule both the DARTS-space
    table and the verdicts (analysis/verdicts.py `ours_from_retrains`) count by."""
    sel = selection_of(m.search_path, dataset) if len(m) else None
    every, chosen = _split_for_selection(m, sel)
    return [("all-searches", every, None)] + ([("selected", chosen, sel[0])] if sel is not None else [])


def _published_protocol(p: pd.DataFrame) -> str:
    """The protocol of our row a published row group (one label) stands beside: `selected` when
    any of its numbers is (its best single run is the best of the picked cell's trainings),
    else `all-searches` (an all-searches mean, a best architecture, a protocol not stated)."""
    prot = p["protocol"].fillna("").astype(str).str.strip() if "protocol" in p else pd.Series("", index=p.index)
    return "selected" if (prot == "selected").any() else "all-searches"


def _published_cost(cost: pd.DataFrame) -> str:
    """The published search cost in the convention of our column (one search run), with the
    source's own figure for its N searches beside it where it gives one (published.csv
    `cost_convention`: "one search", "<N> searches"; none: as printed)."""
    if cost.empty:
        return NA
    conv = (cost["cost_convention"].fillna("").astype(str).str.strip() if "cost_convention" in cost
            else pd.Series("", index=cost.index))
    one = cost[conv == "one search"]
    many = cost[(conv != "one search") & (conv != "")]
    others = [(float(v), c) for v, c in zip(many["mean"], conv[many.index])]
    if len(one):
        return f"{float(one['mean'].iloc[0]):g} GPU-days per search" + "".join(f" ({v:g} for {c})" for v, c in others)
    if others:
        return "; ".join(f"{v:g} GPU-days for {c}" for v, c in others)
    return f"{float(cost['mean'].iloc[0]):g} GPU-days"


def darts_table(retrains: pd.DataFrame, runs: pd.DataFrame, published: pd.DataFrame,
                space: str = "darts", dataset: str = "cifar10") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(numeric, display): ours per row (one search configuration x one retraining
    configuration; see `label_retrains`), as two rows where the method's DARTS-paper selection
    was made (`python -m benchmark.retrain select`): "all searches" (every search run's cell,
    search seeds x retraining seeds) and "selected (DARTS protocol)" (the one cell chosen by
    validation accuracy, its retrainings); `protocol_parts` splits them. Published rows stand
    only beside our row of their own protocol (`_published_protocol`), and only beside rows
    that follow the paper protocol; a `selected` published row of a method whose selection was
    not made stands beside a "selected" line saying so (no number of ours). Selection trainings
    (valid_on set) are candidates, not results: they count in no row. Search cost: ours per
    search run; published in that convention where published.csv gives it (`cost_convention`)."""
    if "row" not in retrains:
        retrains = label_retrains(retrains, runs)
    sub = counted_retrains(retrains, space, dataset)
    costs = search_costs(runs[runs.space == space]) if len(runs) else search_costs(runs)
    pub = published[published.space == space] if "space" in published else published.iloc[0:0]
    pairs = {(r, s) for r, s in zip(sub.row, sub.search_row)}
    pairs |= {(m, m) for m in costs.method if m not in set(sub.search_row)}
    num_rows, disp = [], []
    for row_name, search_row in sorted(pairs):
        m = sub[sub.row == row_name]
        c = costs[costs.method == search_row]
        secs = float(c.search_seconds.iloc[0]) if len(c) else np.nan
        gpu = bool(c.gpu.iloc[0]) if len(c) else False
        runs_found = int(c.search_runs.iloc[0]) if len(c) else 0
        parts = protocol_parts(m, dataset)
        mine = pub.iloc[0:0]
        if len(m) and bool(m.paper.all()):   # only paper rows meet published rows
            base = str(m.base_method.iloc[0])
            mine = pub[(pub.method == base) & pub.metric.isin(darts_metrics(dataset))]
        groups = [(label, p, _published_protocol(p)) for label, p in mine.groupby("label", sort=False)]
        for protocol, rows, sel in parts:
            if protocol == "selected" and not selection_follows_paper(sel):
                pubs = []   # a selection under other settings meets no published row
            else:
                pubs = [(label, p) for label, p, prot in groups if prot == protocol]
            row, line = _our_row(space, row_name, dataset, protocol, rows, secs, gpu, runs_found, sel)
            num_rows.append(row)
            disp.append(line)
            disp += [_published_line(label, p, dataset) for label, p in pubs]
        if len(parts) == 1 and any(prot == "selected" for _, _, prot in groups):
            disp.append([row_name, PROTOCOLS["selected"], "–", NA, NA, NA, NA,
                         "no selection made: python -m benchmark.retrain select --results <results> "
                         f"--methods {search_row} (docs/results-and-records.md)"])
            disp += [_published_line(label, p, dataset) for label, p, prot in groups if prot == "selected"]
    num = pd.DataFrame(num_rows)
    return num, pd.DataFrame(disp, columns=["method", "protocol", "search × retrain seeds", "test error (%)",
                                            "best (%)", "params (M)", "search cost", "source"])


def _published_line(label: str, p: pd.DataFrame, dataset: str) -> list:
    """One published row group (one label) as a display line."""
    get = lambda k: p[p.metric == k]  # noqa: E731
    err_p, best, par, cost = (get(k) for k in darts_metrics(dataset))
    pp = sorted({str(x) for x in p.get("protocol", pd.Series(dtype=str)).dropna() if str(x).strip()})
    return [f"↳ published: {label}", ", ".join(PROTOCOLS.get(x, x) for x in pp) or "not stated", "",
            fmt(float(err_p["mean"].iloc[0]), float(err_p["std"].iloc[0])) if len(err_p) else NA,
            fmt(float(best["mean"].iloc[0])) if len(best) else NA,
            fmt(float(par["mean"].iloc[0]), digits=1) if len(par) else NA,
            _published_cost(cost), "; ".join(sorted(set(p.source))) + _notes(p)]


def _our_row(space: str, row_name: str, dataset: str, protocol: str, m: pd.DataFrame, secs: float,
             gpu: bool, runs_found: int, sel: dict | None) -> tuple[dict, list]:
    """One row of ours: (numeric, display)."""
    err = pd.to_numeric(m.test_error, errors="coerce").dropna()
    row = {"space": space, "method": row_name, "protocol": protocol, "dataset": dataset,
           "search_seeds": int(m.search_seed.nunique()), "retrain_seeds": int(m.retrain_seed.nunique()),
           "n": int(len(err)), "test_error.mean": float(err.mean()) if len(err) else np.nan,
           "test_error.std": float(err.std(ddof=1)) if len(err) > 1 else np.nan,
           "test_error.best": float(err.min()) if len(err) else np.nan,
           "params_m.mean": float(pd.to_numeric(m.params_m, errors="coerce").mean()) if len(m) else np.nan,
           "search_seconds": secs, "search_on_gpu": gpu,
           "profiles": ",".join(sorted({str(p) for p in m.profile.dropna()}))}
    source = f"ours ({row['profiles'] or 'not retrained'})"
    if sel is not None:
        w = sel["winner"]
        row.update(selected_run=w.get("run"), selection_acc=w.get("selection_acc"),
                   candidates=len(sel["candidates"]))
        seeds = f"1 of {len(sel['candidates'])} × {row['retrain_seeds']}"
        source += (f"; cell of {w.get('run')}, chosen among {len(sel['candidates'])} by "
                   f"{float(w.get('selection_acc', np.nan)):.2f}% accuracy on {w.get('selected_on')}")
        if not len(m):
            source += "; its final retrainings are not finished"
    elif row["search_seeds"] or runs_found:
        seeds = f"{row['search_seeds'] or runs_found} × {row['retrain_seeds']}"
        if row["n"] and row["n"] != row["search_seeds"] * row["retrain_seeds"]:
            seeds += f" (n={row['n']})"   # not every search run retrained with every seed
    else:
        seeds = f"– × {row['retrain_seeds']}"
    return row, [row_name, PROTOCOLS[protocol], seeds, fmt(row["test_error.mean"], row["test_error.std"]),
                 fmt(row["test_error.best"]), fmt(row["params_m.mean"], digits=2) if len(m) else NA,
                 _cost_text(secs, gpu), source]


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
