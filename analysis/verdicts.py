"""A verdict per published number: did we reproduce it?

`verdicts(ours, published, official_md5)` sets every published number (analysis/published.csv)
beside every matching row of ours and says, per pair:

- ours: mean ± std (sample std, ddof=1) over the row's values, n;
- the difference ours − published;
- a 95% interval for OUR mean: Student's t interval, mean ± t(0.975, n−1)·s/√n (`ci_method` =
  "t"); a zero-spread row (every seed found the same cell) has the interval [mean, mean];
- the verdict: "reproduced" when the published mean lies in our interval (widened by half a
  unit of the published value's last printed digit: the sources round, e.g. 54.30 stands for
  [54.295, 54.305]), "differs: ours higher" / "differs: ours lower" when it does not, "too few
  seeds" when n < 3 (MIN_N; the interval is still shown where n >= 2);
- where the source gives its std and its run count (search runs for `search-runs`, evaluation
  seeds for `selected`), Welch's t-test of the difference from the two summaries
  (scipy.stats.ttest_ind_from_stats, equal_var=False); undefined, and said so, when both stds are 0.

A row of ours gets a verdict only when it follows the paper protocol: profile `paper` with no
value changed (analysis/collect.py `is_paper`) and every run on the official data (its data md5
among `official_md5`, the documented official copies: analysis/report.py OFFICIAL_DATA_MD5).
Otherwise the verdict is empty and `why` says why. A match is the same space, method, metric
and, where the published row names a protocol, the same protocol (the DARTS space: `selected`,
`all-searches`, `best`; the tabular spaces: `search-runs`). Published rows that are never
compared say why too: "also reported" values, context rows (methods not run here), the table's
optimum, a best single run, a source that states no protocol (DARTS space).

`ours` is a long frame, one value per row: space, method (the method itself), row (the table
row's name), metric, protocol, value, profile, paper (bool), data_md5, differs (what differs
from the paper profile, '' if nothing).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

MIN_N = 3
CONFIDENCE = 0.95
OURS_COLUMNS = ["space", "method", "row", "metric", "protocol", "value", "profile", "paper",
                "data_md5", "differs"]
COLUMNS = ["space", "method", "published_label", "metric", "protocol", "published", "published_std",
           "published_n", "source", "our_row", "profile", "n", "our_mean", "our_std", "ci_low",
           "ci_high", "ci_method", "difference", "welch_t", "welch_p", "verdict", "why", "cost_convention"]
COST_METRICS = ("params_m", "search_gpu_days", "search_gpu_seconds")   # shown in the space's tables
# Spaces whose published rows are matched by protocol (a retraining protocol decides the number).
PROTOCOL_SPACES = ("darts",)


def _std(v: np.ndarray) -> float:
    """Sample std (ddof=1), 0 where it is float noise (equal values summed in another order)."""
    s = float(v.std(ddof=1))
    return 0.0 if s <= 1e-9 * max(1.0, float(np.abs(v).max())) else s


def t_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Student's t interval for the mean; (nan, nan) below 2 values."""
    v = np.asarray(values, float)
    if len(v) < 2:
        return np.nan, np.nan
    m, s = float(v.mean()), _std(v)
    if s == 0:
        return m, m
    half = float(sps.t.ppf(0.5 + confidence / 2, len(v) - 1)) * s / np.sqrt(len(v))
    return m - half, m + half


def judge(values, published: float, decimals: int | None = None,
          confidence: float = CONFIDENCE) -> dict:
    """mean/std/n, the t interval, the difference and the verdict of one row against one number."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    out = {"n": len(v), "our_mean": float(v.mean()) if len(v) else np.nan,
           "our_std": _std(v) if len(v) > 1 else np.nan, "ci_method": "t"}
    out["ci_low"], out["ci_high"] = t_interval(v, confidence)
    out["difference"] = out["our_mean"] - published
    if len(v) == 0:
        out["verdict"] = ""
        out["why"] = "no scored value"
    elif len(v) < MIN_N:
        out["verdict"], out["why"] = "too few seeds", f"n = {len(v)} < {MIN_N}"
    else:
        slack = 0.5 * 10.0 ** -decimals if decimals is not None and decimals >= 0 else 0.0
        slack += 1e-9 * max(1.0, abs(published))
        if out["ci_low"] - slack <= published <= out["ci_high"] + slack:
            out["verdict"], out["why"] = "reproduced", "the published mean lies in our 95% t interval"
        else:
            out["verdict"] = "differs: ours " + ("higher" if out["our_mean"] > published else "lower")
            out["why"] = "the published mean lies outside our 95% t interval"
    return out


def welch(values, published: float, published_std: float, published_n: float) -> tuple[float, float, str]:
    """(t, p, note) of Welch's test of ours against the source's summary; nan where undefined."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if not (np.isfinite(published_std) and np.isfinite(published_n)) or published_n < 2:
        return np.nan, np.nan, "no Welch test: the source gives no std or no run count"
    if len(v) < 2:
        return np.nan, np.nan, "no Welch test: fewer than 2 values of ours"
    s = _std(v)
    if s == 0 and published_std == 0:
        return np.nan, np.nan, "Welch t undefined: both stds are 0"
    r = sps.ttest_ind_from_stats(float(v.mean()), s, len(v), published, published_std, int(published_n),
                                 equal_var=False)
    return float(r.statistic), float(r.pvalue), ""


def _no_verdict(r: pd.Series) -> str:
    """Why a published row is never compared ('' if it may be)."""
    if bool(r.get("context", False)):
        return "context: a method this suite does not run"
    if bool(r.get("also_reported", False)):
        return "also reported (another source's figure): shown, not compared"
    if r.method == "optimum":
        return "reference: the benchmark's optimum"
    if r.get("protocol", "") == "best":
        return "a best single run, not a mean: no verdict"
    if r.space in PROTOCOL_SPACES and not r.get("protocol", ""):
        return "the source states no protocol: no verdict"
    if not np.isfinite(float(r["mean"])):
        return "no published value"
    return ""


def _published_n(r: pd.Series) -> float:
    col = "eval_seeds" if r.get("protocol", "") == "selected" else "search_runs"
    v = pd.to_numeric(pd.Series([r.get(col)]), errors="coerce").iloc[0]
    return float(v) if pd.notna(v) else np.nan


def _why_not_paper(grp: pd.DataFrame, official_md5: set[str]) -> str:
    """'' when every value follows the paper protocol on official data, else why not."""
    why = []
    profiles = sorted({str(p) for p in grp.profile.dropna()})
    if profiles != ["paper"]:
        why.append(f"not the paper profile (profile {', '.join(profiles) or 'unknown'})")
    elif not bool(grp.paper.astype(bool).all()):
        changed = sorted({str(d) for d in grp.differs.dropna() if str(d)})
        why.append("the paper profile with values changed" + (f" ({'; '.join(changed)})" if changed else ""))
    md5s = sorted({str(m) for m in grp.data_md5.dropna() if str(m)})
    bad = [m for m in md5s if m not in official_md5]
    if not md5s:
        why.append("data md5 not recorded")
    elif bad:
        why.append(f"not the official data (md5 {', '.join(bad)})")
    return "; ".join(why)


def _why_no_match(ours: pd.DataFrame, p: pd.Series, protocol: str) -> str:
    """Why a comparable published number meets no row of ours: no run of the method, no such
    figure of ours (parameters, search cost: shown in the space's tables, not tested), or rows
    of another protocol only (the selection not made)."""
    same = ours[(ours.space == p.space) & (ours.method == p.method)]
    if same.empty:
        return "no run of ours"
    metric = same[same.metric == p.metric]
    if metric.empty:
        where = "; ours is in the report's tables, not tested" if p.metric in COST_METRICS else ""
        return f"no {p.metric} value of ours{where}"
    have = ", ".join(sorted(set(metric.protocol)))
    why = f"no {protocol} row of ours (ours: {have})"
    if protocol == "selected":
        why += ("; run the selection and the winner's retrainings: python -m benchmark.retrain select "
                "--results <results> --methods " + str(p.method))
    return why


def verdicts(ours: pd.DataFrame, published: pd.DataFrame, official_md5=()) -> pd.DataFrame:
    """One row per (published number, matching row of ours); one row per published number
    without a match (why: no run of ours). See the module docstring."""
    official = set(official_md5)
    ours = ours if len(ours) else pd.DataFrame(columns=OURS_COLUMNS)
    rows = []
    for _, p in published.iterrows():
        base = {"space": p.space, "method": p.method, "published_label": p.label, "metric": p.metric,
                "protocol": p.get("protocol", "") or "", "published": float(p["mean"]),
                "published_std": float(p["std"]) if pd.notna(p.get("std")) else np.nan,
                "published_n": _published_n(p), "source": p.source,
                "cost_convention": str(p.get("cost_convention", "") or "") if pd.notna(p.get("cost_convention"))
                else ""}
        skip = _no_verdict(p)
        if skip:
            rows.append({**base, "verdict": "", "why": skip})
            continue
        mine = ours[(ours.space == p.space) & (ours.method == p.method) & (ours.metric == p.metric)]
        if p.space in PROTOCOL_SPACES:
            mine = mine[mine.protocol == base["protocol"]]
        if mine.empty:
            rows.append({**base, "verdict": "", "why": _why_no_match(ours, p, base["protocol"])})
            continue
        for row, grp in mine.groupby("row", sort=True):
            values = pd.to_numeric(grp.value, errors="coerce").to_numpy(float)
            j = judge(values, base["published"], p.get("mean_decimals"))
            out = {**base, "our_row": row, "profile": ", ".join(sorted({str(x) for x in grp.profile.dropna()})),
                   **j}
            t, pv, note = welch(values, base["published"], base["published_std"], base["published_n"])
            out.update(welch_t=t, welch_p=pv)
            why_not = _why_not_paper(grp, official)
            if why_not:
                out.update(verdict="", why=f"no verdict: {why_not}", welch_t=np.nan, welch_p=np.nan)
            elif note and j["verdict"] not in ("", "too few seeds"):
                out["why"] = f"{j['why']}; {note}"
            rows.append(out)
    return pd.DataFrame(rows, columns=COLUMNS)


def _fmt(v, d: int = 2, signed: bool = False) -> str:
    if v is None or not np.isfinite(v):
        return ""
    v = 0.0 if abs(v) < 0.5 * 10.0 ** -d else v   # no "-0.00"
    return f"{v:+.{d}f}" if signed else f"{v:.{d}f}"


def display(table: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """The compact "published vs reproduced" table: one line per row of `verdicts`."""
    def ours(r):
        if not r.our_row or not np.isfinite(r.our_mean):
            return ""
        return (f"{_fmt(r.our_mean, digits)}" + (f" ± {_fmt(r.our_std, digits)}" if np.isfinite(r.our_std) else "")
                + f" (n={int(r.n)})")

    def pub(r):
        conv = getattr(r, "cost_convention", "")
        return _fmt(r.published, max(digits, 2)) + (f" ± {_fmt(r.published_std, digits)}"
                                                    if np.isfinite(r.published_std) else "") \
            + (f" (n={int(r.published_n)})" if np.isfinite(r.published_n) else "") \
            + (f" ({conv})" if isinstance(conv, str) and conv else "")
    t = table.assign(our_row=table.our_row.astype(object).where(table.our_row.notna(), ""),
                     protocol=table.protocol.astype(object).where(table.protocol.notna(), ""))
    return pd.DataFrame({
        "space": t.space, "published": t.published_label, "metric": t.metric,
        "protocol": t.protocol.replace("", "–"),
        "published value": [pub(r) for r in t.itertuples()],
        "ours": [(f"{r.our_row}: " if r.our_row else "") + ours(r) for r in t.itertuples()],
        "95% t interval": [f"[{_fmt(lo, digits)}, {_fmt(hi, digits)}]" if np.isfinite(lo) else ""
                           for lo, hi in zip(t.ci_low, t.ci_high)],
        "ours − published": [_fmt(d, digits, signed=True) for d in t.difference],
        "Welch p": [f"{p:.3g}" if np.isfinite(p) else "" for p in t.welch_p],
        "verdict": [v or "—" for v in t.verdict], "why": t.why})


def ours_from_final(final: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The long frame of the tabular spaces: one value per finished run and `bench.<metric>`
    (protocol `search-runs`: each run's final answer looked up in the table). `final` carries
    the report's row names (`method` = row, `base_method`), `runs` the runs' profile, data md5
    and what differs (analysis/collect.py `configurations`)."""
    if final.empty:
        return pd.DataFrame(columns=OURS_COLUMNS)
    info = runs.set_index("path")
    base = final.base_method if "base_method" in final else final.method
    parts = []
    for col in [c for c in final.columns if c.startswith("bench.")]:
        vals = pd.to_numeric(final[col], errors="coerce")
        ok = vals.notna()
        if not ok.any():
            continue
        sub = final[ok]
        parts.append(pd.DataFrame({
            "space": sub.space.values, "method": base[ok].values, "row": sub.method.values,
            "metric": col[len("bench."):], "protocol": "search-runs", "value": vals[ok].values,
            "profile": sub.path.map(info.profile).values,
            "paper": sub.path.map(info.paper).fillna(False).astype(bool).values if "paper" in info
            else False,
            "data_md5": sub.path.map(info.data_md5).values,
            "differs": [_changed(info, path) for path in sub.path]}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=OURS_COLUMNS)


_PAPER: dict = {}   # (space, method) -> its paper config, resolved once


def _changed(info: pd.DataFrame, path: str) -> str:
    """What a `paper`-profile run changed against its paper protocol ('' if nothing or unknown)."""
    import json

    from analysis.collect import IGNORED_FOR_PAPER, _flat, _paper_config
    if path not in info.index or info.profile.get(path) != "paper" or not isinstance(info.config.get(path), str):
        return ""
    cfg = json.loads(info.config[path])
    key = (cfg.get("space", ""), cfg.get("method", ""))
    if key not in _PAPER:
        _PAPER[key] = _paper_config(*key)
    want = _PAPER[key]
    if want is None:
        return ""
    have, want = _flat(cfg), _flat(want)
    return ", ".join(f"{k}={have.get(k)}" for k in sorted(want)
                     if k not in IGNORED_FOR_PAPER and have.get(k) != want[k])


def ours_from_retrains(retrains: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The DARTS space's rows, metric `<dataset>_test_error`, counted as the DARTS-space table
    counts them (analysis/darts_space.py `counted_retrains`, `protocol_parts`; `label_retrains`
    gives `row`, `base_method`, `paper`, `left_out`): `all-searches`, every search run's cell
    (the selection trainings, valid_on set, are candidates and count nowhere; the winner's extra
    final seeds count only in `selected`, so every search run weighs alike), and, where the
    method's selection was made (`python -m benchmark.retrain select`), `selected`: the winner's
    final retrainings. A selection not made under the `select` profile unchanged
    (`selection_follows_paper`) makes its `selected` row not the paper protocol: its profile
    names the selection's."""
    import json

    from analysis import darts_space as D
    need = {"status", "left_out", "search_path", "row", "base_method", "paper", "test_error", "dataset"}
    if retrains.empty or not need <= set(retrains.columns):
        return pd.DataFrame(columns=OURS_COLUMNS)
    counted = D.counted_retrains(retrains)
    counted = counted[counted.search_path.notna()]
    if counted.empty:
        return pd.DataFrame(columns=OURS_COLUMNS)
    info = runs.set_index("path")

    def md5(row) -> str:
        try:
            own = json.loads(row.retrain_config or "{}").get("data_md5", "")
        except (TypeError, ValueError):
            own = ""
        return own or str(info.data_md5.get(row.search_path, "") or "")

    def profile(row, sel: dict | None) -> str:
        search = str(info.profile.get(row.search_path, "") or "?")
        text = search if search == row.profile else f"search {search}, retraining {row.profile}"
        if sel is not None and not D.selection_follows_paper(sel):
            text += f", selection {(sel.get('settings') or {}).get('profile') or '?'}"
        return text

    parts = []
    for (_, _, dataset), m in counted.groupby(["space", "row", "dataset"], sort=True):
        for protocol, r, sel in D.protocol_parts(m, str(dataset)):
            if r.empty:
                continue
            follows = sel is None or D.selection_follows_paper(sel)
            parts.append(pd.DataFrame({
                "space": r.space.values, "method": r.base_method.values, "row": r.row.values,
                "metric": (r.dataset.astype(str) + "_test_error").values, "protocol": protocol,
                "value": pd.to_numeric(r.test_error, errors="coerce").values,
                "profile": [profile(x, sel) for x in r.itertuples()],
                "paper": (r.paper.astype(bool) & follows).values,
                "data_md5": [md5(x) for x in r.itertuples()],
                "differs": "" if follows else "the selection's settings differ from the select profile"}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=OURS_COLUMNS)
