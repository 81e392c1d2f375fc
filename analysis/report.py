"""Turn a results folder into the paper's tables, figures, statistics and report.md.

  python analysis/report.py --results results/ --out results/report/

Reads only run records (results/<space>/<method>/seed-<k>/). Every method and space found
there is reported; none is named in this code. A run whose files are damaged (an unreadable
record, a missing epoch, an unreadable config.json or done.json) is listed with what is wrong
and left out of every table and figure, unless --include-damaged. The report is written into
a temporary folder beside --out and swapped in whole: a killed report leaves the old one.
Exit codes: 0 written; 1 written, but damaged runs were left out (named on stderr and in the
report); 2 bad input or the report folder cannot be written (nothing changed).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

if not __package__:  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis import cells as CD, collect as C, darts_space as D, html_page as H, plots as P, stats as S, tables as T  # noqa: E402
from analysis import verdicts as V  # noqa: E402
from benchmark.paths import folder_problem  # noqa: E402

# md5 (benchmark/harness/data.py: of the decoded x_train/y_train arrays) of CIFAR-10 copies known to
# equal the official archive's pixels. None is documented yet: the official archive's md5 under
# this definition is unknown here, so every copy counts as non-official until one is added.
OFFICIAL_DATA_MD5: dict[str, str] = {}
# Known non-official copies, for a clearer title.
KNOWN_COPIES = {"2700e052a187fe08aea1c2285b8e2706": "JPEG-derived shared CIFAR-10 copy"}


def official_md5s(runs: pd.DataFrame, retrains: pd.DataFrame | None = None) -> set[str]:
    """The data md5s that are the official CIFAR-10's: the documented ones (OFFICIAL_DATA_MD5)
    and that of every search run or retraining that read its arrays from official torchvision
    files, each file's md5 checked against torchvision's list (done.json `data_official`,
    benchmark/harness/data.py `Cifar10.official`). The md5 of the arrays is the data's identity:
    every run with such an md5 trained on the official data, whatever file it read it from; a
    lossy copy (the shared .npz) has another md5 and stays "not the official data"."""
    out = set(OFFICIAL_DATA_MD5)
    if "data_official" in runs and len(runs):
        ok = runs.data_official.fillna(False).astype(bool)
        out |= {str(m) for m in runs.data_md5[ok].dropna() if m}
    if retrains is not None and len(retrains) and "data_official" in retrains:
        for flag, cfg in zip(retrains.data_official, retrains.retrain_config):
            if flag is True and isinstance(cfg, str):
                md5 = json.loads(cfg).get("data_md5")
                if md5:
                    out.add(str(md5))
    return out


def data_provenance(runs: pd.DataFrame, official: set[str] | None = None) -> tuple[bool, str]:
    """(official?, a sentence): official only if every run's data md5 is an official one
    (`official_md5s`; the documented ones when not given)."""
    official = set(OFFICIAL_DATA_MD5) if official is None else official
    md5s = sorted({m for m in runs.data_md5.dropna() if m})
    if not md5s:
        return False, "data md5 not recorded"
    bad = [m for m in md5s if m not in official]
    if not bad:
        verified = ("data_official" in runs and bool(runs.data_official.fillna(False).astype(bool).any()))
        return True, "official CIFAR-10 (md5 " + ", ".join(md5s) + (
            "; read from torchvision's files, every file's md5 checked" if verified else "") + ")"
    return False, "; ".join(f"{m} ({KNOWN_COPIES.get(m, 'not a documented official copy')})" for m in bad)


def _rel(p: Path, root: Path) -> str:
    return p.relative_to(root).as_posix()


MARKER = ".nas-report"   # written into every report folder: the files the report wrote


class UnsafeOut(ValueError):
    """--out holds something the report did not write: refusing to replace it."""


def out_problem(out: Path, results: Path | None = None) -> str:
    """Why `out` must not be (re)placed by a report ('' if it may): it must be missing, empty,
    or a previous report (its MARKER lists every file in it). Never the results folder or a
    folder holding it."""
    out = Path(out)
    if results is not None:
        r, o = Path(results).resolve(), out.resolve()
        if o == r or o in r.parents:
            return (f"is the results folder or holds it ({results}); the report would replace the "
                    "runs. Choose a new folder, e.g. the default <results>/report")
    if out.is_symlink():
        return "is a symbolic link; give a real folder"
    if not out.exists():
        return ""
    if not out.is_dir():
        return "is a file, not a folder; give a folder"
    entries = list(out.iterdir())
    if not entries:
        return ""
    written = _manifest(out)
    if written is None and _legacy_report(out):   # written before reports carried the marker
        written = {q.relative_to(out).as_posix() for q in out.rglob("*") if not q.is_dir()}
    if written is None:
        names = ", ".join(sorted(e.name for e in entries)[:5])
        return (f"is not empty ({names}{', ...' if len(entries) > 5 else ''}) and is not a report "
                f"this tool wrote (no {MARKER} marker); choose a new or empty folder")
    foreign = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                     if not p.is_dir() and p.relative_to(out).as_posix() not in written | {MARKER})
    if foreign:
        return (f"holds files the report did not write ({', '.join(foreign[:5])}"
                f"{', ...' if len(foreign) > 5 else ''}); move them elsewhere or choose another folder")
    return ""


_LEGACY = (r"report\.(md|html)", r"tables/[^/]+\.(csv|md|tex)", r"data/(epochs\.(parquet|csv)|runs\.csv)",
           r"figures/([^/]+/)?[^/]+\.(png|pdf|csv)")


def _legacy_report(folder: Path) -> bool:
    """A report written before reports carried MARKER: report.md, and nothing but the names a
    report writes (report.md/.html, tables/*.csv|md|tex, data/epochs.*, data/runs.csv,
    figures/[sub/]*.png|pdf|csv)."""
    import re
    if not (folder / "report.md").is_file():
        return False
    files = [q.relative_to(folder).as_posix() for q in folder.rglob("*") if not q.is_dir()]
    return all(any(re.fullmatch(pat, f) for pat in _LEGACY) for f in files)


def _manifest(folder: Path) -> set[str] | None:
    """The files a report wrote into `folder` (its MARKER), None if it is not a report."""
    import json
    try:
        files = json.loads((folder / MARKER).read_text()).get("files")
    except (OSError, ValueError, AttributeError):
        return None
    return {str(f) for f in files} if isinstance(files, list) else None


def _write_manifest(folder: Path) -> None:
    import json
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir())
    (folder / MARKER).write_text(json.dumps({"written_by": "analysis/report.py", "files": files}, indent=1))


def _remove_report(folder: Path) -> None:
    """Delete what the report wrote into `folder` (its manifest), then the folders left empty;
    anything else stays (and so does the folder)."""
    written = _manifest(folder) or set()
    for rel in written | {MARKER}:
        p = folder / rel
        if p.is_file() and not p.is_symlink() and folder.resolve() in p.resolve().parents:
            p.unlink()
    for d in sorted((d for d in folder.rglob("*") if d.is_dir() and not d.is_symlink()),
                    key=lambda d: len(d.parts), reverse=True) + [folder]:
        try:
            d.rmdir()
        except OSError:
            pass


def build(results: Path, out: Path, heatmap_runs: int = 1, include_damaged: bool = False,
          seen: list | None = None) -> Path:
    """Write the report into a fresh temporary folder beside `out`, then swap it in; returns
    out/report.md (and appends the runs table to `seen`). Refuses (UnsafeOut) an `out` that is
    neither missing, empty nor a previous report, and removes only what a report wrote.
    Leftovers of a killed earlier report (.<name>.tmp-*, .<name>.old-*) are removed first."""
    out = Path(out)
    problem = out_problem(out, results)
    if problem:
        raise UnsafeOut(f"--out {out}: {problem}; nothing was written")
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in list(out.parent.glob(f".{out.name}.tmp-*")) + list(out.parent.glob(f".{out.name}.old-*")):
        if stale.is_dir() and not stale.is_symlink():
            _remove_report(stale) if _manifest(stale) is not None else shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        runs = _build(results, tmp, heatmap_runs, include_damaged)
        _write_manifest(tmp)
        if seen is not None:
            seen.append(runs)
        old = None
        if out.exists():
            problem = out_problem(out, results)  # once more: a file may have appeared meanwhile
            if problem:
                raise UnsafeOut(f"--out {out}: {problem}; nothing was written")
            old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
            os.replace(out, old)  # onto the empty placeholder: one rename within one folder
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        _remove_report(old)
    return out / "report.md"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _build(results: Path, out: Path, heatmap_runs: int, include_damaged: bool) -> pd.DataFrame:
    tab_dir, fig_dir = out / "tables", out / "figures"
    all_epochs, runs = C.collect(results)
    runs = C.configurations(runs)
    epochs = C.usable(all_epochs, runs, include_damaged)
    C.save(epochs, runs, out / "data")
    # From here on a row is a configuration: `method` names the row (the method, and what
    # differs where it ran under several configurations), `base_method` the method itself.
    row_of, paper_of = dict(zip(runs.path, runs.row)), dict(zip(runs.path, runs.paper))
    if len(epochs):
        epochs = epochs.assign(base_method=epochs.method, method=epochs.path.map(row_of),
                               paper=epochs.path.map(paper_of).fillna(False).astype(bool))
    runs = runs.assign(base_method=runs.method, method=runs.row)
    final = C.final_epochs(epochs, runs, include_damaged)
    published = T.load_published()
    official_set = official_md5s(runs, D.collect_all_retrains(results))
    official, prov = data_provenance(runs, official_set)
    title = "# NAS reproducibility report" + ("" if official else
                                               " — NON-OFFICIAL DATA COPY (trend check, not a reproduction)")
    md = [title, "", f"Data: {prov}. Results: `{results}`. Std = sample std over seeds (ddof=1); "
          "n/a = the benchmark table has no such figure or the run was not scored.", ""]
    md += _verdict_section(results, final, runs, published, tab_dir, official_set)
    md += _profiles_section(runs, tab_dir)

    md += _configuration_note(runs)
    md += ["## Runs", "", T.to_markdown(runs.groupby(["space", "method", "status"]).size()
                                        .rename("runs").reset_index())]
    odd = runs[C.excluded(runs)]
    if len(odd):
        md += ["Runs left out because their files do not hold up as the run their folder names "
               "(a folder copied or linked under another seed's name, a config.json edited by "
               "hand, a second copy of a run): they count nowhere below, not even with "
               "`--include-damaged`. Delete or move them; rerun the seed with benchmark/run.py "
               "if it is wanted.", "",
               T.to_markdown(odd[["space", "base_method", "seed", "status", "identity_problem", "path"]]
                             .rename(columns={"base_method": "method"})), ""]
    hurt = runs[C.damaged(runs)]
    if len(hurt):
        md += [("Damaged runs, INCLUDED at your request (`--include-damaged`): a damaged finished "
                "run counts with its last readable epoch, which may not be its final one:")
               if include_damaged else
               "Damaged runs: their files are incomplete or unreadable, so they are left out of "
               "every table, statistic and figure below (`--include-damaged` counts them anyway):",
               "", T.to_markdown(hurt[["space", "method", "seed", "status", "damage", "path"]].fillna("")),
               "Repair: `python benchmark/run.py` with the same options and `--retry-failed` "
               "recomputes each of them (from its checkpoint only where that matches the intact "
               "records, else from the start); or delete the run folder.", ""]
    bad = runs[(runs.status != "done") & ~(C.damaged(runs) & (runs.status == "damaged"))]
    if len(bad):
        bad = bad[["space", "method", "seed", "status", "epochs_recorded", "epochs_planned", "reason"]]
        md += ["Unfinished or failed runs (left out of the final tables):", "",
               T.to_markdown(bad.assign(**{c: bad[c].map(_count) for c in ("epochs_recorded", "epochs_planned")},
                                        reason=bad.reason.map(lambda v: "" if v is None or v != v else v)))]

    md += ["## Final derived cell", ""]
    regret_spaces, darts_spaces = [], []
    retrained = {f[1] for f in D.retrain_folders(results)}   # e.g. only --genotype retrainings
    for space in sorted(set(epochs.space.unique() if len(epochs) else []) | retrained):
        if D.is_darts_space(space, final):   # scored by retraining, not by a table
            darts_spaces.append(space)
            md += _darts_section(results, space, runs, published, tab_dir)
            md += _cells_section(_with_retrain_error(final, results, runs), runs, space, "retrained",
                                 fig_dir, out)
            continue
        kind = T.space_kind(final, space)
        if kind == "accuracy":
            num, disp = T.nb201_tables(final, published, space)
            cap = f"{space}: accuracy (%) of the final derived cell, valid / test, mean ± std over seeds"
        elif kind == "regret":
            regret_spaces.append(space)
            num, disp = T.regret_tables(final, published, space)
            cap = f"{space}: final test regret and error (NB101, mean of 3 repeats), mean ± std over seeds"
        else:
            md += [f"### {space}", "", f"No benchmark figures in the records; score them with "
                   f"`python -m benchmark.score --results {results}`.", ""]
            md += _cells_section(final, runs, space, kind, fig_dir, out)
            continue
        md += [f"### {space}", "", cap + ".", "", T.write_table(num, disp, tab_dir, f"{space}_final", cap),
               f"Also as [LaTeX](tables/{space}_final.tex) and [CSV](tables/{space}_final.csv).", ""]
        md += _cells_section(final, runs, space, kind, fig_dir, out)
        md += _stats_section(final, space, kind, tab_dir, runs)

    counted = runs.assign(status=runs.status.replace({"damaged": "done"})) if include_damaged else runs
    num, disp = T.cost_tables(epochs, counted)
    md += ["## Search cost", "", T.write_table(num, disp, tab_dir, "search_cost",
                                               "Search cost: wall seconds per finished run and per epoch; cost per search (one search run) in GPU-days where the runs ran on a GPU, else CPU-hours, and the device"), ""]

    md += ["## Figures", ""]
    figs: list[tuple[str, list[Path]]] = []
    prof_of = dict(zip(runs.path, runs.profile.fillna("?")))
    for space in sorted(epochs.space.unique()) if len(epochs) else []:
        # one figure per profile: methods meet only within one profile; published lines
        # (besides the optimum) only beside `paper` runs
        here = epochs[epochs.space == space]
        profiles = sorted({prof_of.get(p, "?") for p in here.path})
        for prof in profiles:
            sub = here[here.path.map(prof_of) == prof]
            pub = published if prof == "paper" else published[published.method == "optimum"]
            figs.append((f"{space}: derived-cell test accuracy vs epoch, profile `{prof}`",  # [] unless NB201-scored
                         P.nb201_trajectory(sub, pub, space, fig_dir,
                                            protocol=paper_epochs(space, sorted(sub.method.unique())),
                                            profile_note=profile_note(runs[(runs.space == space) & (runs.profile == prof)]),
                                            name=None if len(profiles) == 1 else f"{space}_{_slug(prof)}_trajectory_test")))
    if regret_spaces:   # one figure per profile, as above
        reg = epochs[epochs.space.isin(regret_spaces)]
        rprofiles = sorted({prof_of.get(p, "?") for p in reg.path})
        for prof in rprofiles:
            figs.append((f"NAS-Bench-1Shot1 test regret vs epoch, profile `{prof}`",
                         P.regret_trajectory(reg[reg.path.map(prof_of) == prof],
                                             sorted(set(reg[reg.path.map(prof_of) == prof].space)), fig_dir,
                                             name="nb1shot1_regret" if len(rprofiles) == 1
                                             else f"nb1shot1_{_slug(prof)}_regret",
                                             title_note=f"\nprofile {prof}")))
    figs.append(("Collapse diagnostic", P.collapse(epochs, fig_dir)))
    for space in darts_spaces:
        figs.append((f"{space}: skip connections and parameter-free ops in the derived normal cell",
                     D.collapse_figure(epochs, fig_dir, space)))
    figs.append(("Dominant Hessian eigenvalue (runs with hessian_every > 0)", P.hessian(epochs, fig_dir)))
    shown = runs if include_damaged else runs[~C.damaged(runs)]
    done = shown[shown.status.isin(["done", "partial", "damaged"])].sort_values(["space", "method", "seed"])
    for (space, method), grp in done.groupby(["space", "method"]):
        for _, r in grp.head(heatmap_runs).iterrows():
            axes = _arch_axes(space, r.path)   # the run's own op set (DARTS: supernet.op_set)
            figs.append((f"Architecture weights per epoch: {space}/{method}/seed-{r.seed}",
                         P.arch_heatmap(C.arch_history(r.path), f"{space} / {method} / seed {r.seed}: "
                                        "architecture weights per search epoch",
                                        fig_dir, f"arch_{space}_{_slug(method)}_seed{r.seed}", axes)))
    for caption, paths in figs:
        if paths:
            md += [f"### {caption}", "", f"![{caption}]({_rel(paths[0], out)}) "
                   f"([PDF]({_rel(paths[1], out)}))", ""]
    report = out / "report.md"
    report.write_text("\n".join(md) + "\n")
    H.write_html(report, out / "report.html", title=title.lstrip("# "))
    return runs


def _verdict_section(results: Path, final: pd.DataFrame, runs: pd.DataFrame, published: pd.DataFrame,
                     tab_dir: Path, official: set[str] | None = None) -> list[str]:
    """"Published vs reproduced" (analysis/verdicts.py): every published number of the spaces
    in these results beside every matching row of ours, with its verdict or why there is none.
    tables/published_vs_reproduced_all.csv holds every number of published.csv."""
    retrains = D.label_retrains(D.collect_all_retrains(results), runs)
    ours = pd.concat([V.ours_from_final(final, runs), V.ours_from_retrains(retrains, runs)],
                     ignore_index=True)
    table = V.verdicts(ours, published, official_md5s(runs, retrains) if official is None else official)
    tab_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(tab_dir / "published_vs_reproduced_all.csv", index=False)
    spaces = set(runs.space.dropna()) | set(retrains.space.dropna() if len(retrains) else [])
    shown = table[table.space.isin(spaces)].reset_index(drop=True)
    counts = shown.verdict.replace("", "no verdict").map(lambda v: "differs" if v.startswith("differs") else v)
    summary = ", ".join(f"{n} {k}" for k, n in counts.value_counts().items()) or "nothing to compare"
    cap = ("Published vs reproduced: every published number of these spaces (analysis/published.csv), "
           "each beside every matching row of ours (same space, method, metric; on the DARTS space the "
           "same protocol). Verdict: reproduced = the published mean lies in the 95% Student-t interval "
           "of our mean; differs = it does not (direction given); too few seeds = n < 3. Only rows "
           "under the paper profile, unchanged, on the official data get a verdict; `why` says why "
           "not. Welch p: Welch's t-test against the source's mean, std and run count, where it "
           "gives them")
    lines = ["## Published vs reproduced", "", cap + ".", "", f"{len(shown)} lines: {summary}.", "",
             T.write_table(shown, V.display(shown), tab_dir, "published_vs_reproduced", cap),
             "Also as [LaTeX](tables/published_vs_reproduced.tex) and [CSV](tables/published_vs_reproduced.csv); "
             "every number of published.csv, of every space: "
             "[CSV](tables/published_vs_reproduced_all.csv).", ""]
    return lines


def _profiles_section(runs: pd.DataFrame, tab_dir: Path) -> list[str]:
    """Which profiles the runs used, and what each method's `paper` profile changes against
    `fair` on the spaces and methods present (generated from the code: analysis/tables.py
    `paper_vs_fair`)."""
    kept = runs[~C.excluded(runs)]
    used = kept.groupby(kept.profile.fillna("?")).size()
    lines = ["## Profiles", "",
             "Profiles in these results: " + (", ".join(f"`{p}` ({n} runs)" for p, n in used.items()) or "none")
             + ". Methods are compared (ranks, pairwise tests, trajectory figures) only within one "
             "profile, and only where they share one protocol: `fair` gives every method of a space "
             "the same schedule (the space's DARTS protocol) and leaves only its update rule and "
             "options different; `paper` is each method's own protocol, for reproducing its "
             "published numbers, which meet `paper` rows only.", ""]
    base = kept.base_method if "base_method" in kept else kept.method
    pairs = pd.DataFrame({"space": kept.space, "method": base}).dropna().drop_duplicates()
    if pairs.empty:
        return lines
    diff = T.paper_vs_fair(sorted(pairs.space.unique()), sorted(pairs.method.unique()))
    diff = diff.merge(pairs, on=["space", "method"])
    if len(diff):
        cap = "What each method's `paper` profile changes against `fair` (from the code)"
        lines += [cap + ":", "", T.write_table(diff, diff, tab_dir, "paper_vs_fair", cap), ""]
    return lines


def _configuration_note(runs: pd.DataFrame) -> list[str]:
    """What a table row is, said at the top; the rows of a method run under several configurations."""
    lines = ["A row of every table holds the runs of ONE configuration (everything in a run's "
             "config.json except the seed). A method run under several configurations has one row "
             "per configuration, named by what differs. Only rows that follow the paper protocol "
             "(profile `paper`, no value changed) are set against published rows.", ""]
    several = runs[(runs.differs != "") & ~C.excluded(runs)]
    if len(several):
        t = several.groupby(["space", "base_method", "method"]).size().rename("runs").reset_index()
        lines += ["Methods run under several configurations (rows kept apart):", "",
                  T.to_markdown(t.rename(columns={"base_method": "method", "method": "row"})), ""]
    return lines


def _slug(name: str) -> str:
    """A file-name-safe form of a row name (figures are files)."""
    import hashlib
    import re
    slug = re.sub(r"[^A-Za-z0-9_.+-]+", "_", str(name)).strip("_") or "x"
    if len(slug) > 60:   # a file name has a length limit; the hash keeps long names apart
        slug = slug[:48] + "-" + hashlib.sha1(str(name).encode()).hexdigest()[:10]
    return slug


def _count(v) -> str:
    """An epoch count as an integer ('' when unknown): pandas holds them as floats beside NaN."""
    return "" if v is None or v != v else str(int(v))


def _space(name: str):
    """The space object of a recorded space name, or None (a space this code does not know)."""
    from spaces import get_space
    try:
        return get_space(name)
    except (KeyError, ImportError):
        return None


def _arch_axes(space_name: str, run_path=None) -> dict | None:
    """Row and column labels of the space's architecture tensors, for the run at `run_path`
    where given (its config.json's supernet arguments configure the space: the DARTS op set)."""
    from spaces.base import arch_axes
    space = _space(space_name)
    if space is not None and run_path is not None and hasattr(space, "for_supernet"):
        try:
            supernet = json.loads((Path(run_path) / "config.json").read_text()).get("supernet") or {}
            space = space.for_supernet(supernet)
        except (OSError, ValueError, TypeError, AttributeError):
            pass   # no or damaged config: the space's default labels
    try:
        return arch_axes(space) if space is not None else None
    except AttributeError:  # a space without labels: generic ones
        return None


def paper_epochs(space: str, methods: list[str]) -> dict[str, int]:
    """Search epochs of each method's paper protocol on `space` (the space's `paper` profile
    with the method's source overrides): the protocol a published number was obtained under."""
    from benchmark.harness.config import resolve_config
    out = {}
    for m in methods:
        try:
            out[m] = int(resolve_config(space, m, 0, "paper").epochs)
        except (KeyError, ValueError, TypeError, ImportError):
            continue
    return out


def profile_note(runs: pd.DataFrame) -> str | None:
    """A title line when the runs did not follow the paper protocol (e.g. smoke)."""
    profiles = sorted({p for p in runs.profile.dropna()} - {"paper"})
    if not profiles:
        return None
    epochs = sorted({int(e) for e in runs.epochs_planned.dropna()})
    ep = ", ".join(map(str, epochs)) + (" epoch" if epochs == [1] else " epochs")
    return (f"runs: {', '.join(profiles)} profile ({ep}), NOT the paper protocol; "
            "published lines are drawn beside paper runs only")


RETRAIN_ERROR = "retrain.test_error"   # a DARTS-space run's mean CIFAR-10 test error retrained


def _with_retrain_error(final: pd.DataFrame, results: Path, runs: pd.DataFrame) -> pd.DataFrame:
    """`final` with each search run's mean CIFAR-10 test error over its whole, finished
    retrainings (NaN where none): the DARTS space's headline figure for best/worst."""
    if final.empty:
        return final
    r = D.label_retrains(D.collect_all_retrains(results), runs)
    r = r[(r.status == "done") & (r.left_out == "") & (r.dataset == "cifar10") & r.search_path.notna()]
    err = pd.to_numeric(r.test_error, errors="coerce").groupby(r.search_path).mean()
    return final.assign(**{RETRAIN_ERROR: final.path.map(err)})


def _metric(kind: str) -> tuple[str | None, bool]:
    return {"accuracy": ("bench.cifar10_test", True), "regret": ("bench.test_regret", False),
            "retrained": (RETRAIN_ERROR, False)}.get(kind, (None, True))


def _best_worst(sub: pd.DataFrame, kind: str) -> list[tuple[str, pd.Series]]:
    """(caption, final row) of the best and the worst seed by the space's headline figure
    (a DARTS-space run: its retrained test error); every seed when none has the figure,
    the one seed when there is one."""
    metric, higher = _metric(kind)
    sub = sub.sort_values("seed")
    if metric is None or metric not in sub or sub[metric].isna().all() or len(sub) == 1:
        return [(f"seed {r.seed}" + _fig(r, metric), r) for _, r in sub.iterrows()]
    s = sub[sub[metric].notna()].sort_values([metric, "seed"], ascending=[not higher, True])
    best, worst = s.iloc[0], s.iloc[-1]
    return [(f"best seed {best.seed}" + _fig(best, metric), best),
            (f"worst seed {worst.seed}" + _fig(worst, metric), worst)]


def _fig(row: pd.Series, metric: str | None) -> str:
    if metric is None or metric not in row or row[metric] != row[metric]:
        return ""
    v = float(row[metric])
    if metric == RETRAIN_ERROR:
        return f" ({v:.2f}% CIFAR-10 test error, retrained)"
    return f" ({v:.2f}% CIFAR-10 test)" if metric == "bench.cifar10_test" else f" (test regret {v:.4f})"


def _answer(row: pd.Series, runs: pd.DataFrame) -> str | None:
    """The run's final answer: done.json's genotype, else the record's pick or derived cell."""
    r = runs[(runs.space == row.space) & (runs.method == row.method) & (runs.seed == row.seed)]
    g = r.final_genotype.iloc[0] if len(r) else None
    if not isinstance(g, str):
        g = row.get("selected_genotype") if isinstance(row.get("selected_genotype"), str) else row.get("genotype")
    return g if isinstance(g, str) else None


def _cells_section(final: pd.DataFrame, runs: pd.DataFrame, space_name: str, kind: str,
                   fig_dir: Path, out: Path) -> list[str]:
    """Cell diagrams of every finished run's answer (figures/cells/) and final architecture
    weights (figures/arch/); the report shows each method's best and worst seed."""
    space = _space(space_name)
    if space is None or not hasattr(space, "cell_graph"):
        return [f"(no cell diagrams: space {space_name} has no `cell_graph`)", ""]
    axes = _arch_axes(space_name)
    sub = final[final.space == space_name]
    lines = [f"#### {space_name}: the cells found", "",
             "Each method's final answer (its own pick where it makes one, else the derived "
             "cell), best and worst seed; every run's diagram and final architecture weights "
             "are under `figures/cells/` and `figures/arch/`.", ""]
    rows, figures = [], []
    for method, grp in sub.groupby("method"):
        graphs = {}
        for _, r in grp.iterrows():
            g = _answer(r, runs)
            try:
                graphs[r.seed] = space.cell_graph(g) if g else None
            except (ValueError, KeyError, TypeError):
                graphs[r.seed] = None
            if graphs[r.seed]:
                CD.draw_cells([(f"seed {r.seed}" + _fig(r, _metric(kind)[0]),
                                graphs[r.seed])], space.ops(), f"{space_name} / {method}: final answer",
                              fig_dir / "cells", f"cell_{space_name}_{_slug(method)}_seed{r.seed}")
            arch = _final_arch(runs, r)
            match = runs[(runs.space == r.space) & (runs.method == r.method) & (runs.seed == r.seed)]
            if len(match):
                axes = _arch_axes(space_name, match.path.iloc[0])
            if arch:
                P.arch_final_heatmap(arch, axes, f"{space_name} / {method} / seed {r.seed}: "
                                     "final architecture weights", fig_dir / "arch",
                                     f"archfinal_{space_name}_{_slug(method)}_seed{r.seed}")
        picks = _best_worst(grp, kind)
        panels = [(cap, graphs[r.seed]) for cap, r in picks if graphs.get(r.seed)]
        for cap, r in picks:
            rows.append({"method": method, "seed": cap.split(" (")[0],
                         "figure": cap.split(" (", 1)[1].rstrip(")") if " (" in cap else
                         "not retrained yet" if kind == "retrained" else "n/a",
                         "answer": f"`{_answer(r, runs)}`"})
        paths = CD.draw_cells(panels, space.ops(), f"{space_name} / {method}: final answer",
                              fig_dir, f"cells_{space_name}_{_slug(method)}")
        best = picks[0][1]
        heat = fig_dir / "arch" / f"archfinal_{space_name}_{_slug(method)}_seed{best.seed}.png"
        if paths or heat.exists():
            figures += [f"**{method}**", ""]
        if paths:
            figures += [f"![{space_name} / {method}: cells]({_rel(paths[0], out)}) ([PDF]({_rel(paths[1], out)}))", ""]
        if heat.exists():
            figures += [f"![{space_name} / {method} / seed {best.seed}: final architecture weights]"
                        f"({_rel(heat, out)}) ([PDF]({_rel(heat.with_suffix('.pdf'), out)}), "
                        f"[CSV]({_rel(heat.with_suffix('.csv'), out)}))", ""]
    if rows:
        lines += [T.to_markdown(pd.DataFrame(rows)), ""]
    return lines + figures


def _final_arch(runs: pd.DataFrame, row: pd.Series) -> dict | None:
    r = runs[(runs.space == row.space) & (runs.method == row.method) & (runs.seed == row.seed)]
    if not len(r):
        return None
    hist = C.arch_history(r.path.iloc[0])
    return hist[-1][1] if hist else None


def _darts_section(results: Path, space: str, runs: pd.DataFrame, published: pd.DataFrame,
                   tab_dir: Path) -> list[str]:
    """The DARTS-space table(s): retrained test error, parameters, search cost, published rows."""
    retrains = D.label_retrains(D.collect_all_retrains(results), runs)
    every = retrains[retrains.space == space]
    lines = [f"### {space}", ""]
    hurt = every[(every.status != "done") | (every.left_out != "")]
    if len(hurt):
        why = [r.left_out or r.identity_problem or r.damage or
               ("unfinished" if r.status in ("partial", "new") else r.status) for r in hurt.itertuples()]
        lines += ["Retrainings left out of the table below (damaged: `python -m benchmark.retrain` "
                  "with the same options and `--retry-failed` recomputes them; unfinished: rerun it; "
                  "a mismatch: a folder copied or edited by hand, delete it):", "",
                  T.to_markdown(hurt.assign(why=why)[["method", "search_seed", "retrain_seed", "status",
                                                     "why", "path"]].fillna("")), ""]
    retrains = retrains[(retrains.status == "done") & (retrains.left_out == "")]
    mine = retrains[retrains.space == space]
    if mine.empty and len(hurt):
        lines += ["No whole finished retraining yet (see the list above).", ""]
    elif mine.empty:
        lines += [f"No retrained genotypes yet: DARTS-space genotypes are scored by training them "
                  f"from scratch: `python -m benchmark.retrain --results {results} --spaces {space}`.", ""]
    for dataset in sorted(set(mine.dataset.dropna()) | {"cifar10"}):
        num, disp = D.darts_table(retrains, runs, published, space, dataset)
        profiles = sorted({str(p) for p in mine[(mine.dataset == dataset) & ~mine.selecting].profile.dropna()})
        cap = (f"{space}: {dataset} test error (%) of the final genotypes retrained from scratch "
               f"(retraining profile: {', '.join(profiles) or 'none yet'}), mean ± std over every "
               "retraining (search seeds × retraining seeds together, ddof=1), best, parameters "
               "without the auxiliary head, search cost per search run (GPU-days on a GPU, else "
               "CPU-hours; a published cost in that convention where the source's differs), "
               "published rows beside our row of their protocol only (paper-profile rows only); "
               "where the DARTS paper's selection was made "
               "(`python -m benchmark.retrain select`), a second row per method: the one cell chosen "
               "by validation accuracy, mean ± std over its retrainings, beside the published rows "
               "of that protocol (where none was made, a 'selected' line says so)")
        lines += [cap + ".", "", T.write_table(num, disp, tab_dir, f"{space}_{dataset}_retrained", cap),
                  f"Also as [LaTeX](tables/{space}_{dataset}_retrained.tex) and "
                  f"[CSV](tables/{space}_{dataset}_retrained.csv).", ""]
        if "smoke" in profiles:
            lines += ["**Smoke retraining** (a tiny network, a few hundred images, 2 epochs): these errors "
                      "test the pipeline; they are not comparable with the published rows.", ""]
    return lines


# Config fields in which methods may differ and still share one protocol: the method itself,
# its options and its step order (benchmark/harness/config.py FAIR_METHOD_KEYS), the seed.
SHARED_EXCEPT = ("method", "seed", "profile", "method_options", "arch_first")


def schedule_differences(runs: pd.DataFrame) -> list[str]:
    """The config fields (dotted) whose values differ between the rows of `runs` apart from
    SHARED_EXCEPT: [] when the rows share one protocol."""
    import json
    seen: dict[str, set] = {}
    for c in runs.config.dropna().unique():
        flat = C._flat({k: v for k, v in json.loads(c).items() if k not in SHARED_EXCEPT})
        for k, v in flat.items():
            seen.setdefault(k, set()).add(json.dumps(v, sort_keys=True))
    keys = set(seen)
    for c in runs.config.dropna().unique():   # a field missing in one config differs too
        keys_c = set(C._flat({k: v for k, v in json.loads(c).items() if k not in SHARED_EXCEPT}))
        for k in keys - keys_c:
            seen[k].add("<missing>")
    return sorted(k for k, v in seen.items() if len(v) > 1)


def _stats_section(final: pd.DataFrame, space: str, kind: str, tab_dir: Path,
                   runs: pd.DataFrame | None = None) -> list[str]:
    """Ranks and pairwise tests of the final metric, within ONE profile at a time, and only
    between rows that share one protocol (schedule_differences): under `paper` each method
    runs its own protocol, and where those differ the section says so and tests nothing."""
    metric, higher = ("bench.cifar10_test", True) if kind == "accuracy" else ("bench.test_regret", False)
    sub = final[final.space == space]
    if metric not in sub:
        return []
    prof_of = dict(zip(runs.path, runs.profile.fillna("?"))) if runs is not None else {}
    sub = sub.assign(_profile=sub.path.map(prof_of).fillna("?") if prof_of else "?")
    profiles = sorted(sub._profile.unique())
    lines = []
    for prof in profiles:
        grp = sub[sub._profile == prof]
        stem = f"{space}" if len(profiles) == 1 else f"{space}_{_slug(prof)}"
        values = {m: g[metric].astype(float).to_numpy() for m, g in grp.groupby("method")}
        mine = runs[runs.path.isin(grp.path)] if runs is not None else None
        differ = schedule_differences(mine) if mine is not None and "config" in mine else []
        lines += [f"#### {space}: methods compared within profile `{prof}`", ""]
        if differ:
            lines += [f"**The protocols differ** between these rows under profile `{prof}` "
                      f"({', '.join(differ[:8])}{', ...' if len(differ) > 8 else ''}): "
                      + ("each method runs its own paper protocol. " if prof == "paper" else "")
                      + "No ranking and no pairwise test between them; rank methods under the "
                      "`fair` profile (one schedule for all, docs/profiles.md).", ""]
            summ = pd.DataFrame([{"method": m, "n": int(np.isfinite(v).sum()),
                                  "mean": f"{np.nanmean(v):.4g}" if np.isfinite(v).any() else "n/a",
                                  "std": f"{np.nanstd(v, ddof=1):.4g}" if np.isfinite(v).sum() > 1 else "n/a"}
                                 for m, v in values.items()])
            lines += [T.to_markdown(summ), ""]
            continue
        lines += [f"Statistics of the final {metric.split('.', 1)[1]} between methods, all under "
                  f"profile `{prof}` with one shared protocol (Welch t-test, two-sided Mann-Whitney U, "
                  "95% percentile bootstrap CI of the difference of means; 'undefined' rows say why):", ""]
        ranks = S.rank_summary(values, higher_is_better=higher)
        ranks.to_csv(tab_dir / f"{stem}_ranks.csv", index=False)
        rdisp = ranks.assign(**{c: ranks[c].map(lambda v: "n/a" if not np.isfinite(v) else f"{v:.4g}")
                                for c in ("mean", "std", "median")})
        lines += [T.to_markdown(rdisp), ""]
        if len(values) < 2:
            lines += ["(one method only: no pairwise tests)", ""]
            continue
        pw = S.pairwise(values)
        pw.to_csv(tab_dir / f"{stem}_pairwise.csv", index=False)
        disp = S.format_pairwise(pw, digits=2 if kind == "accuracy" else 4)
        lines += [T.to_markdown(disp), ""]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python analysis/report.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="results", help="results folder (default results/)")
    p.add_argument("--out", default=None, help="report folder (default <results>/report/)")
    p.add_argument("--heatmap-runs", type=int, default=1,
                   help="architecture heatmaps per (space, method): the lowest seeds (default 1)")
    p.add_argument("--include-damaged", action="store_true",
                   help="count finished runs whose records are damaged (with their last readable "
                        "epoch) instead of leaving them out; the report still lists them")
    a = p.parse_args(argv)
    results = Path(a.results)
    if not results.is_dir():
        what = "is a file, not a folder" if results.exists() else "does not exist"
        print(f"error: --results {results} {what}; pass the results folder", file=sys.stderr)
        return 2
    if not C.run_folders(results) and not D.retrain_folders(results):
        print(f"error: no run folders (<space>/<method>/seed-<k>/) and no retrainings under "
              f"{results}; run benchmark/run.py (or python -m benchmark.retrain) first", file=sys.stderr)
        return 2
    out = Path(a.out) if a.out else results / "report"
    problem = out_problem(out, results) or _unwritable(out)
    if problem:
        print(f"error: --out {out}: {problem}; nothing was written", file=sys.stderr)
        return 2
    seen: list = []
    try:
        report = build(results, out, a.heatmap_runs, a.include_damaged, seen)
    except UnsafeOut as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: could not write the report to {out}: {e.strerror or e} "
              f"({e.filename or out}); the previous report, if any, is unchanged", file=sys.stderr)
        return 2
    runs = seen[0]
    hurt = runs[C.damaged(runs)]
    for r in hurt.itertuples():
        verb = "included" if a.include_damaged else "left out"
        print(f"{verb} damaged run {r.path}: {r.damage}", file=sys.stderr)
    odd = runs[C.excluded(runs)]
    for r in odd.itertuples():
        print(f"left out run {r.path}: {r.identity_problem}", file=sys.stderr)
    print(f"wrote {report}")
    return 1 if (len(hurt) and not a.include_damaged) or len(odd) else 0


def _unwritable(out: Path) -> str:
    """Why the report cannot be written at `out` ('' if it can, as far as can be told)."""
    if problem := folder_problem(out, parent_only=True):
        return problem
    if out.is_dir() and not os.access(out, os.W_OK | os.X_OK):
        return "the folder is read-only; make it writable (chmod u+w) or choose another folder"
    return ""


if __name__ == "__main__":
    sys.exit(main())
