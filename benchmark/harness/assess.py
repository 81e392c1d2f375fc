"""One place that says what a run folder is, and what may be done with it.

Used by the search worker (benchmark/harness/worker.py), the retraining job
(benchmark/retrain/job.py) and the report (analysis/collect.py, analysis/darts_space.py), so
the three give the same answer for the same folder. Two kinds of folder share one layout
(benchmark/harness/rundir.py): a search run (`kind="search"`, records from epoch 0) and a
retraining (`kind="retrain"`, records from epoch 1).

`assess(path, kind, identity=None, retry=False)` reads, and changes nothing. It answers:

- status: new | partial | failed | done | damaged (a finished run whose files are not whole);
- problems: what is wrong with the files (unreadable done.json/config.json, unreadable or
  missing records, epochs missing, ...): the damaged-record rule;
- mismatch: where the folder's own files disagree about whose run it is (the seed of
  config.json against the folder's name, the checkpoint's identity against config.json, the
  records' space/method/seed against the folder): such a folder was copied, linked or edited
  by hand, and its numbers are nobody's;
- with the `identity` a caller wants to run: action = done | run | refused | damaged |
  failed-earlier, the message that goes with it, and the repairs that running will make
  (with `retry`, i.e. --retry-failed: a damaged folder is recomputed; without, it is reported).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.harness.records import DamagedFile, read_json, scan_jsonl
from benchmark.harness.rundir import IdentityMismatch, RunDir, checkpoint_identity, identity_differences, records_problems

FIRST_EPOCH = {"search": 0, "retrain": 1}


@dataclass
class Assessment:
    path: Path
    kind: str
    status: str = "new"
    config: dict | None = None          # config.json (None: missing or unreadable)
    problems: list[str] = field(default_factory=list)
    mismatch: str = ""
    action: str = ""                    # with an identity: done | run | refused | damaged | failed-earlier
    message: str = ""
    repairs: list[str] = field(default_factory=list)
    config_damage: DamagedFile | None = None
    provenance_damage: DamagedFile | None = None
    restore_config: bool = False        # config.json missing, but checkpoint.pt vouches for the identity
    records: list[dict] = field(default_factory=list)
    records_digest: str = ""            # sha1 of epochs.jsonl without timing: equal for a copied folder

    @property
    def rundir(self) -> RunDir:
        return RunDir.folder(self.path, FIRST_EPOCH[self.kind])


def folder_seed(path: Path) -> int | None:
    """The seed a folder's name gives (seed-<k>), None if the name says none."""
    tail = Path(path).name.split("-", 1)
    return int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else None


def assess(path: str | Path, kind: str = "search", identity: dict | None = None,
           retry: bool = False, check_checkpoint: bool = True) -> Assessment:
    """What the folder at `path` is (see the module's docstring); reads only."""
    path = Path(path)
    rd = RunDir.folder(path, FIRST_EPOCH[kind])
    a = Assessment(path, kind)
    try:
        cfg = read_json(rd.config) if rd.config.exists() else None
        if cfg is not None and not isinstance(cfg, dict):
            raise DamagedFile(rd.config, "not a JSON object")
        a.config = cfg
    except DamagedFile as e:
        a.config_damage = e
    except OSError as e:
        a.config_damage = DamagedFile(rd.config, f"unreadable ({e.strerror})")
    try:
        read_json(rd.provenance) if rd.provenance.exists() else None
    except DamagedFile as e:
        a.provenance_damage = e
    except OSError as e:
        a.provenance_damage = DamagedFile(rd.provenance, f"unreadable ({e.strerror})")
    scan = scan_jsonl(rd.epochs)
    a.records = scan.rows
    a.records_digest = _digest(scan.rows)
    status = rd.status()
    if status == "done":
        a.problems = rd.problems(scan)
        a.status = "damaged" if a.problems else "done"
    else:
        a.status = status
        a.problems = records_problems(scan, None, False, FIRST_EPOCH[kind])
        if a.config_damage is not None:
            a.problems.append(f"{rd.config.name}: {a.config_damage.problem}")
    a.mismatch = _own_mismatch(a, rd, kind, check_checkpoint)
    if identity is not None:
        _decide(a, rd, identity, retry)
        if a.mismatch and a.action in ("done", "run"):
            a.action, a.message = "refused", own_mismatch_refusal(a)
    return a


def _digest(rows: list[dict]) -> str:
    h = hashlib.sha1()
    for r in rows:
        h.update(json.dumps({k: v for k, v in r.items() if k != "timing"}, sort_keys=True).encode())
    return h.hexdigest() if rows else ""


def _own_mismatch(a: Assessment, rd: RunDir, kind: str, check_checkpoint: bool) -> str:
    """Where the folder's own files disagree about whose run it is ('' if they agree)."""
    out = []
    named = folder_seed(rd.path)
    cfg = a.config or {}
    if "seed" in cfg and named is not None and cfg.get("seed") != named:
        out.append(f"config.json says seed {cfg.get('seed')} but the folder is {rd.path.name}")
    if kind == "search" and cfg:
        space, method = rd.path.parts[-3], rd.path.parts[-2]
        for key, want in (("space", space), ("method", method)):
            if key in cfg and cfg[key] != want:
                out.append(f"config.json says {key} {cfg[key]!r} but the folder is under {want!r}")
    if kind == "search":
        want = {"seed": cfg.get("seed", named), "space": rd.path.parts[-3], "method": rd.path.parts[-2]}
        for key, value in want.items():
            seen = {r.get(key) for r in a.records if key in r}
            if value is not None and seen and seen != {value}:
                out.append(f"the records say {key} {', '.join(map(str, sorted(seen, key=str)))} "
                           f"but the run is {key} {value}")
    if check_checkpoint and a.config and rd.checkpoint.exists():
        try:
            ck = checkpoint_identity(rd.checkpoint)
        except DamagedFile:
            ck = None  # an unreadable checkpoint is never resumed; no identity to compare
        if ck is not None:
            details = identity_differences(ck, a.config)
            if details:
                out.append(f"checkpoint.pt was made under other settings than config.json says ({details})")
    return "; ".join(out)


def _decide(a: Assessment, rd: RunDir, identity: dict, retry: bool) -> None:
    """What a worker that wants to run `identity` in this folder may do (sets action, message,
    repairs, restore_config). The search worker's rules; retraining follows the same."""
    fix = (f"rerun with --retry-failed to recompute it (from checkpoint.pt only where it "
           f"matches the intact records, else afresh), or delete {rd.path}")
    if a.config is not None:
        details = identity_differences(a.config, identity)
        if details:
            a.action, a.message = "refused", (
                f"{rd.path} holds a run with a different identity ({details}). Use another "
                "--out folder, or delete that run folder to start it afresh.")
            return
    if a.config is None:  # missing or unreadable: the checkpoint must vouch for the settings
        try:
            rd.check_checkpoint_identity(identity)
        except IdentityMismatch as e:
            a.action, a.message = "refused", str(e)
            return
    if a.config_damage is not None:
        if not retry:
            a.action, a.message = "damaged", f"{a.config_damage}; {fix}"
            return
        a.repairs.append(f"{rd.config.name} was unreadable ({a.config_damage.problem}): rewritten")
    if rd.done.exists():
        if a.config_damage is None and a.config is None and rd.checkpoint.exists():
            a.restore_config = True  # checkpoint.pt vouches for these settings
        problems = [] if a.config_damage is not None else [
            p for p in a.problems if not (a.restore_config and p.startswith(f"{rd.config.name} missing"))]
        if a.config_damage is None and not problems:
            a.action = "done"
            return
        if not retry:
            a.action, a.message = "damaged", f"{rd.path}: {'; '.join(problems)}; {fix}"
            return
        if problems:
            a.repairs.append(f"finished run with damaged files ({'; '.join(problems)})")
    elif rd.failed.exists() and not retry:
        a.action, a.message = "failed-earlier", f"see {rd.failed}; rerun with --retry-failed"
        return
    if a.provenance_damage is not None and not retry:
        a.action, a.message = "damaged", (
            f"{a.provenance_damage}; rerun with --retry-failed to keep it as provenance.json.damaged "
            f"and start a new one, or delete {rd.path}")
        return
    a.action = "run"


def own_mismatch_refusal(a: Assessment) -> str:
    """The refusal message for a folder whose own files disagree ('' if they agree)."""
    if not a.mismatch:
        return ""
    return (f"{a.path}: its files disagree about whose run it is ({a.mismatch}); it was copied, "
            "linked or edited by hand, so its results are not this run's. Delete the folder to "
            "start the run afresh, or use another --out folder")
