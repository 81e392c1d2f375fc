"""Records -> one tidy table. Reads ONLY run folders: results/<space>/<method>/seed-<k>/.

`collect(results)` returns two DataFrames:
- epochs: one row per recorded epoch (space, method, seed, epoch, losses, accuracies,
  `bench.<key>` for every benchmark figure of the method's answer (its `selected_genotype`
  where the record has one, else the derived `genotype`; the derived cell's figures are then
  also under `bench_derived.<key>`), `diag.<key>` for every scalar diagnostic,
  timing), whatever methods, spaces and benchmark keys the records hold;
- runs: one row per run folder with its status (done | partial | failed | empty), the
  number of recorded epochs, the planned epochs, the data md5 and the failure reason.
Unfinished and failed runs are listed in `runs`, never fatal.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

SCALAR_FIELDS = ("train_loss", "train_acc", "valid_loss", "valid_acc", "w_lr", "a_lr",
                 "param_free_ops", "genotype")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def read_records(path: Path) -> list[dict]:
    """All complete JSONL lines; a torn or unparsable line is skipped (a crashed writer)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


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
        cfg = _read_json(folder / "config.json") or {}
        recs = read_records(folder / "epochs.jsonl")
        status = _status(folder, len(recs))
        failed = _read_json(folder / "failed.json") if status == "failed" else None
        done = _read_json(folder / "done.json") if status == "done" else None
        runs.append({
            "space": space, "method": method, "seed": seed, "status": status,
            "epochs_recorded": max((r.get("epoch", 0) for r in recs), default=None),
            "epochs_planned": cfg.get("epochs"), "profile": cfg.get("profile"),
            "data_md5": cfg.get("data_md5"), "split_source": cfg.get("split_source"),
            "wall_seconds": (done or {}).get("wall_seconds"),
            "final_genotype": (done or {}).get("genotype"),
            "reason": _reason(failed), "path": str(folder)})
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
        "data_md5", "split_source", "wall_seconds", "final_genotype", "reason", "path"])


def _reason(failed: Any) -> str | None:
    if not isinstance(failed, dict):
        return None
    for k in ("reason", "message", "error"):
        if failed.get(k):
            return str(failed[k]).splitlines()[0][:200]
    return "failed (no reason recorded)"


def final_epochs(epochs: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The last recorded epoch of each finished (done) run: the final derived cell."""
    if epochs.empty:
        return epochs
    done = runs[runs.status == "done"][["space", "method", "seed"]]
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
