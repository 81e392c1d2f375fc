"""Records -> one tidy table. Reads ONLY run folders: results/<space>/<method>/seed-<k>/.

`collect(results)` returns two DataFrames:
- epochs: one row per recorded epoch (space, method, seed, epoch, losses, accuracies,
  `bench.<key>` for every benchmark figure of the method's answer (its `selected_genotype`
  where the record has one, else the derived `genotype`; the derived cell's figures are then
  also under `bench_derived.<key>`), `diag.<key>` for every scalar diagnostic,
  timing), whatever methods, spaces and benchmark keys the records hold;
- runs: one row per run folder with its status (done | damaged | partial | failed | empty |
  mismatch | duplicate),
  the number of recorded epochs, the planned epochs, the data md5, the failure reason and
  `damage`: what is wrong with its files (unreadable lines, missing epochs, an unreadable
  config.json or done.json; empty if nothing). A finished run with damage has status
  `damaged` (benchmark/harness/assess.py decides, the same rule as run.py and retraining use).
  `config` is the run's configuration (config.json without the seed): a table row holds runs
  of one configuration (`configurations`). A run whose own files disagree about whose run it
  is (config.json's seed against the folder's name, checkpoint.pt's settings against
  config.json, the records against the folder) has status `mismatch`; a second folder of the
  same run (a symbolic link, or a copy: the same identity and the same records) `duplicate`;
  `identity_problem` says which. Both are left out of everything, even with --include-damaged.
Unfinished, failed and damaged runs are listed in `runs`, never fatal; `epochs` holds the
readable records of every run (the report leaves damaged runs out unless asked).
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.harness.assess import assess
from benchmark.harness.records import DamagedFile, read_json, scan_jsonl

SCALAR_FIELDS = ("train_loss", "train_acc", "valid_loss", "valid_acc", "w_lr", "a_lr",
                 "param_free_ops", "genotype")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None


def read_records(path: Path) -> list[dict]:
    """The readable records; unreadable lines are left out (`collect` reports them as damage)."""
    return scan_jsonl(path).rows


def _flatten(prefix: str, obj: Any, out: dict) -> None:
    """Scalars (numbers, strings, bools, None) under dotted keys; lists are left out."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(f"{prefix}.{k}", v, out)
    elif obj is None or isinstance(obj, (bool, int, float, str)):
        if isinstance(obj, float) and not math.isfinite(obj):
            obj = None
        out[prefix] = obj


def run_folders(results: Path) -> list[Path]:
    return sorted(p for p in results.glob("*/*/seed-*") if p.is_dir())


def flatten_record(rec: dict) -> dict:
    row: dict[str, Any] = {k: rec.get(k) for k in ("space", "method", "seed", "epoch")}
    for k in SCALAR_FIELDS:
        if k in rec:
            row[k] = rec[k]
    # The method's answer at this epoch: its own pick where it makes one (BaLeNAS-TF's proxy
    # selection, random-ws), else the derived cell. `bench.*` always describes the answer.
    selected = rec.get("selected_genotype")
    row["answer"] = "selected" if selected else "derived"
    if selected:
        row["selected_genotype"] = selected
        _flatten("bench_derived", rec.get("benchmark") or {}, row)
    _flatten("bench", (rec.get("selected_benchmark") if selected else rec.get("benchmark")) or {}, row)
    _flatten("diag", rec.get("diagnostics") or {}, row)
    timing = rec.get("timing") or {}
    row["epoch_seconds"] = timing.get("epoch_seconds")
    row["wall_seconds"] = timing.get("wall_seconds")
    return row


def collect(results: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    results = Path(results)
    rows, runs = [], []
    for folder in run_folders(results):
        space, method, seed_dir = folder.parts[-3:]
        seed = int(seed_dir.split("-", 1)[1]) if seed_dir.split("-", 1)[1].isdigit() else seed_dir
        a = assess(folder, "search")   # benchmark/harness/assess.py: the worker's rules
        cfg = a.config or {}
        recs = a.records
        status = {"new": "empty"}.get(a.status, a.status)
        done = _read_json(folder / "done.json") if status in ("done", "damaged") else None
        done = done if isinstance(done, dict) else None
        runs.append({
            "space": space, "method": method, "seed": seed, "status": status,
            "epochs_recorded": max((r.get("epoch", 0) for r in recs), default=None),
            "epochs_planned": cfg.get("epochs"), "profile": cfg.get("profile"),
            "data_md5": cfg.get("data_md5"), "split_source": cfg.get("split_source"),
            "wall_seconds": (done or {}).get("wall_seconds"),
            "data_official": (done or {}).get("data_official") is True,
            "final_genotype": (done or {}).get("genotype"),
            "reason": _reason(folder / "failed.json") if status == "failed" else None,
            "damage": "; ".join(a.problems) or None, "path": str(folder),
            "config": config_key(cfg) if cfg else None, "identity_problem": a.mismatch or None,
            "_digest": a.records_digest, "_identity": json.dumps(cfg, sort_keys=True) if cfg else None})
        for rec in recs:
            row = flatten_record(rec)
            # The folder is the run's identity; the record's own fields must agree (assess).
            row.update(space=space, method=method, seed=seed, path=str(folder))
            rows.append(row)
    runs = _mark_duplicates(pd.DataFrame(runs, columns=RUN_COLUMNS + ["_digest", "_identity"]))
    epochs = pd.DataFrame(rows)
    if epochs.empty:
        epochs = pd.DataFrame(columns=["space", "method", "seed", "epoch", "path"])
    else:
        epochs = epochs.sort_values(["space", "method", "seed", "path", "epoch"], kind="stable").reset_index(drop=True)
    return epochs, runs[RUN_COLUMNS]


RUN_COLUMNS = ["space", "method", "seed", "status", "epochs_recorded", "epochs_planned", "profile",
               "data_md5", "split_source", "data_official", "wall_seconds", "final_genotype", "reason", "damage", "path",
               "config", "identity_problem"]
EXCLUDED = ("mismatch", "duplicate")   # statuses of runs whose identity does not hold up


def config_key(cfg: dict) -> str:
    """A run's configuration: its config.json without the seed (canonical JSON)."""
    return json.dumps({k: v for k, v in cfg.items() if k != "seed"}, sort_keys=True)


def _mark_duplicates(runs: pd.DataFrame) -> pd.DataFrame:
    """Status `mismatch` for a run whose own files disagree about its identity (assess), and
    `duplicate` for a second folder of the same run: the same folder reached twice (a symbolic
    link), or the same identity and the same records (a copy). The folder named as the run writes it is kept."""
    runs = runs.copy()
    mism = runs.identity_problem.notna()
    runs.loc[mism, "status"] = "mismatch"
    seen_path: dict[str, str] = {}
    seen_run: dict[tuple, str] = {}
    # the folder named as the run writes it (seed-<k>, not a link) is the one kept
    order = sorted(runs.index, key=lambda i: (Path(runs.at[i, "path"]).is_symlink(),
                                              Path(runs.at[i, "path"]).name != f"seed-{runs.at[i, 'seed']}",
                                              runs.at[i, "path"]))
    for i in order:
        r = runs.loc[i]
        if r.status == "mismatch":
            continue
        real = str(Path(r.path).resolve())
        key = (r._identity, r._digest)
        first = seen_path.get(real) or (seen_run.get(key) if r._identity and r._digest else None)
        if first is not None:
            runs.at[i, "status"] = "duplicate"
            runs.at[i, "identity_problem"] = f"a duplicate of {first} (the same run and the same records)"
            continue
        seen_path[real] = r.path
        if r._identity and r._digest:
            seen_run[key] = r.path
    return runs


def excluded(runs: pd.DataFrame) -> pd.Series:
    """True for the runs left out because their identity does not hold up."""
    return runs.status.isin(EXCLUDED)


def _reason(path: Path) -> str:
    try:
        failed = read_json(path)
    except DamagedFile:
        failed = None
    except OSError as e:
        return f"failed.json unreadable ({e.strerror})"
    if not isinstance(failed, dict):
        return "failed.json is damaged (not a JSON object), so the reason is lost; see the run's folder"
    for k in ("reason", "message", "error"):
        if failed.get(k):
            return str(failed[k]).splitlines()[0][:200]
    return "failed (no reason recorded)"


def damaged(runs: pd.DataFrame) -> pd.Series:
    """True for the runs whose files are damaged (any status but the excluded ones)."""
    return runs.damage.notna() & (runs.damage != "") & ~excluded(runs)


def usable(epochs: pd.DataFrame, runs: pd.DataFrame, include_damaged: bool = False) -> pd.DataFrame:
    """The epoch rows of every run but the damaged ones (all rows with include_damaged)."""
    if epochs.empty:
        return epochs
    bad = set(runs[excluded(runs) | (damaged(runs) & (not include_damaged))].path)
    return epochs[~epochs.path.isin(bad)].reset_index(drop=True)


def final_epochs(epochs: pd.DataFrame, runs: pd.DataFrame, include_damaged: bool = False) -> pd.DataFrame:
    """The last recorded epoch of each finished (done) run: the final derived cell. With
    include_damaged, also of each finished run whose records are damaged (its last READABLE
    epoch, which may not be the final one: the report says so)."""
    if epochs.empty:
        return epochs
    ok = ["done", "damaged"] if include_damaged else ["done"]
    done = runs[runs.status.isin(ok)][["path"]]
    last = epochs.loc[epochs.groupby("path")["epoch"].idxmax()]
    return last.merge(done, on="path").sort_values(["space", "method", "seed"]).reset_index(drop=True)


def arch_history(run_path: str | Path) -> list[tuple[int, dict]]:
    """(epoch, arch) of every record of one run, for the architecture-weight heatmap."""
    return [(r.get("epoch"), r.get("arch") or {}) for r in read_records(Path(run_path) / "epochs.jsonl")]


def save(epochs: pd.DataFrame, runs: pd.DataFrame, out: str | Path) -> list[Path]:
    """epochs.parquet/.csv and runs.csv under `out`; returns the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "epochs.parquet", out / "epochs.csv", out / "runs.csv"]
    # Mixed-type object columns (e.g. a diagnostic that is sometimes a string) -> text for Parquet.
    pq = epochs.copy()
    for c in pq.columns:
        if pq[c].dtype == object and c not in ("space", "method", "genotype"):
            kinds = {type(v) for v in pq[c].dropna()}
            if len(kinds) > 1:
                pq[c] = pq[c].map(lambda v: None if v is None else str(v))
    pq.to_parquet(paths[0], index=False)
    epochs.to_csv(paths[1], index=False)
    runs.to_csv(paths[2], index=False)
    return paths


IGNORED_FOR_PAPER = ("seed", "data_md5", "split_source")
MAX_NAMED = 4   # differing values a row's name lists


def _flat(cfg: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in cfg.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v
    return out


def is_paper(cfg: dict, paper: dict | None) -> bool:
    """The run followed the paper protocol: profile `paper` and, where the protocol is known
    here (`paper`: the space's paper profile with the method's overrides), no value changed."""
    if cfg.get("profile") != "paper":
        return False
    if paper is None:
        return True
    want, have = _flat(paper), _flat(cfg)
    return all(have.get(k) == v for k, v in want.items() if k not in IGNORED_FOR_PAPER)


def _paper_config(space: str, method: str) -> dict | None:
    from benchmark.harness.config import resolve_config
    try:
        return resolve_config(space, method, 0, "paper").to_json()
    except Exception:  # a space or method this checkout does not know: trust the profile field
        return None


def configurations(runs: pd.DataFrame) -> pd.DataFrame:
    """`runs` with `row` (the table row's name: the method, and where a method has runs of
    several configurations, what differs: `darts (epochs=1, profile=smoke)`), `paper` (the row
    follows the paper protocol: only such rows meet published rows) and `differs`."""
    runs = runs.copy()
    runs["row"], runs["paper"], runs["differs"] = runs.method, False, ""
    papers: dict = {}
    for (space, method), grp in runs.groupby(["space", "method"]):
        cfgs = {c: _flat(json.loads(c)) for c in grp.config.dropna().unique()}
        kept = grp[~excluded(grp)].config.dropna().unique()   # a left-out run names no row
        keys = sorted({k for c in kept for k in cfgs[c]
                       if len({json.dumps(cfgs[g].get(k), sort_keys=True) for g in kept}) > 1})
        if (space, method) not in papers:
            papers[(space, method)] = _paper_config(space, method)
        for i, r in grp.iterrows():
            if not isinstance(r.config, str):
                continue
            flat = cfgs[r.config]
            runs.at[i, "paper"] = is_paper(json.loads(r.config), papers[(space, method)])
            if keys:
                what = ", ".join(f"{k}={flat.get(k)}" for k in keys[:MAX_NAMED])
                if len(keys) > MAX_NAMED:   # the rest by a short digest, so rows stay apart
                    what += (f", +{len(keys) - MAX_NAMED} more (config "
                             f"{hashlib.sha1(r.config.encode()).hexdigest()[:8]}: data/runs.csv)")
                runs.at[i, "row"], runs.at[i, "differs"] = f"{method} ({what})", what
    return runs
