"""Records -> one tidy table. Reads ONLY run folders: results/<space>/<method>/seed-<k>/.

`collect(results)` returns two DataFrames:
- epochs: one row per recorded epoch (space, method, seed, epoch, losses, accuracies,
  `bench.<key>` for every benchmark figure of the method's answer (its `selected_genotype`
  where the record has one, else the derived `genotype`; the derived cell's figures are then
  also under `bench_derived.<key>`), `diag.<key>` for every scalar diagnostic,
  timing), whatever methods, spaces and benchmark keys the records hold;
- runs: one row per run folder with its status (done | damaged | partial | failed | empty),
  the number of recorded epochs, the planned epochs, the data md5, the failure reason and
  `damage`: what is wrong with its files (unreadable lines, missing epochs, an unreadable
  config.json or done.json; empty if nothing). A finished run with damage has status
  `damaged` (benchmark/harness/rundir.py decides, the same rule as run.py and score use).
Unfinished, failed and damaged runs are listed in `runs`, never fatal; `epochs` holds the
readable records of every run (the report leaves damaged runs out unless asked).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.harness.records import DamagedFile, read_json, scan_jsonl
from benchmark.harness.rundir import RunDir, records_problems

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


def _status(folder: Path, n_records: int) -> str:
    if (folder / "done.json").exists():
        return "done"
    if (folder / "failed.json").exists():
        return "failed"
    return "partial" if n_records else "empty"


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
        cfg = _read_json(folder / "config.json")
        cfg = cfg if isinstance(cfg, dict) else {}
        scan = scan_jsonl(folder / "epochs.jsonl")
        recs = scan.rows
        status = _status(folder, len(recs))
        if status == "done":
            problems = RunDir.at(folder).problems(scan)
            status = "damaged" if problems else status
        else:  # unfinished: resuming repairs what it can, but the records are not whole
            problems = records_problems(scan, None, False) + _config_problem(folder)
        done = _read_json(folder / "done.json") if status in ("done", "damaged") else None
        done = done if isinstance(done, dict) else None
        runs.append({
            "space": space, "method": method, "seed": seed, "status": status,
            "epochs_recorded": max((r.get("epoch", 0) for r in recs), default=None),
            "epochs_planned": cfg.get("epochs"), "profile": cfg.get("profile"),
            "data_md5": cfg.get("data_md5"), "split_source": cfg.get("split_source"),
            "wall_seconds": (done or {}).get("wall_seconds"),
            "final_genotype": (done or {}).get("genotype"),
            "reason": _reason(folder / "failed.json") if status == "failed" else None,
            "damage": "; ".join(problems) or None, "path": str(folder)})
        for rec in recs:
            row = flatten_record(rec)
            # The folder is the run's identity; the record's own fields must agree.
            row.update(space=space, method=method, seed=seed)
            rows.append(row)
    epochs = pd.DataFrame(rows)
    if epochs.empty:
        epochs = pd.DataFrame(columns=["space", "method", "seed", "epoch"])
    else:
        epochs = epochs.sort_values(["space", "method", "seed", "epoch"], kind="stable").reset_index(drop=True)
    return epochs, pd.DataFrame(runs, columns=[
        "space", "method", "seed", "status", "epochs_recorded", "epochs_planned", "profile",
        "data_md5", "split_source", "wall_seconds", "final_genotype", "reason", "damage", "path"])


def _config_problem(folder: Path) -> list[str]:
    try:
        if (folder / "config.json").exists() and not isinstance(read_json(folder / "config.json"), dict):
            return ["config.json: not a JSON object"]
    except DamagedFile as e:
        return [f"config.json: {e.problem}"]
    return []


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
    """True for the runs whose files are damaged (any status)."""
    return runs.damage.notna() & (runs.damage != "")


def usable(epochs: pd.DataFrame, runs: pd.DataFrame, include_damaged: bool = False) -> pd.DataFrame:
    """The epoch rows of every run but the damaged ones (all rows with include_damaged)."""
    if include_damaged or epochs.empty:
        return epochs
    bad = runs[damaged(runs)][["space", "method", "seed"]]
    keys = set(map(tuple, bad.astype(str).to_numpy()))
    mask = [k not in keys for k in map(tuple, epochs[["space", "method", "seed"]].astype(str).to_numpy())]
    return epochs[mask].reset_index(drop=True)


def final_epochs(epochs: pd.DataFrame, runs: pd.DataFrame, include_damaged: bool = False) -> pd.DataFrame:
    """The last recorded epoch of each finished (done) run: the final derived cell. With
    include_damaged, also of each finished run whose records are damaged (its last READABLE
    epoch, which may not be the final one: the report says so)."""
    if epochs.empty:
        return epochs
    ok = ["done", "damaged"] if include_damaged else ["done"]
    done = runs[runs.status.isin(ok)][["space", "method", "seed"]]
    last = epochs.loc[epochs.groupby(["space", "method", "seed"])["epoch"].idxmax()]
    return last.merge(done, on=["space", "method", "seed"]).reset_index(drop=True)


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
