"""Turn a results folder into the paper's tables, figures, statistics and report.md.

  python analysis/report.py --results results/ --out results/report/

Reads only run records (results/<space>/<method>/seed-<k>/). Every method and space found
there is reported; none is named in this code. Exit codes: 0 written, 2 bad input.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

if not __package__:  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis import collect as C, darts_space as D, plots as P, stats as S, tables as T  # noqa: E402

# md5 (benchmark/harness/data.py: of the decoded x_train/y_train arrays) of CIFAR-10 copies known to
# equal the official archive's pixels. None is documented yet: the official archive's md5 under
# this definition is unknown here, so every copy counts as non-official until one is added.
OFFICIAL_DATA_MD5: dict[str, str] = {}
# Known non-official copies, for a clearer title.
KNOWN_COPIES = {"2700e052a187fe08aea1c2285b8e2706": "JPEG-derived shared CIFAR-10 copy"}


def data_provenance(runs: pd.DataFrame) -> tuple[bool, str]:
    """(official?, a sentence): official only if every run's data md5 is a documented official one."""
    md5s = sorted({m for m in runs.data_md5.dropna() if m})
    if not md5s:
        return False, "data md5 not recorded"
    bad = [m for m in md5s if m not in OFFICIAL_DATA_MD5]
    if not bad:
        return True, "official CIFAR-10 (md5 " + ", ".join(md5s) + ")"
    return False, "; ".join(f"{m} ({KNOWN_COPIES.get(m, 'not a documented official copy')})" for m in bad)


def _rel(p: Path, root: Path) -> str:
    return p.relative_to(root).as_posix()


def build(results: Path, out: Path, heatmap_runs: int = 1) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    tab_dir, fig_dir = out / "tables", out / "figures"
    epochs, runs = C.collect(results)
    C.save(epochs, runs, out / "data")
    final = C.final_epochs(epochs, runs)
    published = T.load_published()
    official, prov = data_provenance(runs)
    title = "# NAS reproducibility report" + ("" if official else
                                               " — NON-OFFICIAL DATA COPY (trend check, not a reproduction)")
    md = [title, "", f"Data: {prov}. Results: `{results}`. Std = sample std over seeds (ddof=1); "
          "n/a = the benchmark table has no such figure or the run was not scored.", ""]

    md += ["## Runs", "", T.to_markdown(runs.groupby(["space", "method", "status"]).size()
                                        .rename("runs").reset_index())]
    bad = runs[runs.status != "done"]
    if len(bad):
        md += ["Unfinished or failed runs (left out of the final tables):", "",
               T.to_markdown(bad[["space", "method", "seed", "status", "epochs_recorded",
                                  "epochs_planned", "reason"]].fillna(""))]

    md += ["## Final derived cell", ""]
    regret_spaces, darts_spaces = [], []
    for space in sorted(epochs.space.unique()) if len(epochs) else []:
        if D.is_darts_space(space, final):   # scored by retraining, not by a table
            darts_spaces.append(space)
            md += _darts_section(results, space, runs, published, tab_dir)
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
            md += [f"**{space}**: no benchmark figures in the records; score them with "
                   f"`python -m benchmark.score --results {results}`.", ""]
            continue
        md += [f"### {space}", "", cap + ".", "", T.write_table(num, disp, tab_dir, f"{space}_final", cap),
               f"Also as [LaTeX](tables/{space}_final.tex) and [CSV](tables/{space}_final.csv).", ""]
        md += _stats_section(final, space, kind, tab_dir)

    num, disp = T.cost_tables(epochs, runs)
    md += ["## Search cost", "", T.write_table(num, disp, tab_dir, "search_cost",
                                               "Search cost: wall seconds per finished run and per epoch"), ""]

    md += ["## Figures", ""]
    figs: list[tuple[str, list[Path]]] = []
    for space in sorted(epochs.space.unique()) if len(epochs) else []:
        figs.append((f"{space}: derived-cell test accuracy vs epoch",  # [] unless NB201-scored
                     P.nb201_trajectory(epochs, published, space, fig_dir)))
    figs.append(("NAS-Bench-1Shot1 test regret vs epoch",
                 P.regret_trajectory(epochs, sorted(set(regret_spaces)), fig_dir) if regret_spaces else []))
    figs.append(("Collapse diagnostic", P.collapse(epochs, fig_dir)))
    for space in darts_spaces:
        figs.append((f"{space}: skip connections and parameter-free ops in the derived normal cell",
                     D.collapse_figure(epochs, fig_dir, space)))
    figs.append(("Dominant Hessian eigenvalue (runs with hessian_every > 0)", P.hessian(epochs, fig_dir)))
    done = runs[runs.status.isin(["done", "partial"])].sort_values(["space", "method", "seed"])
    for (space, method), grp in done.groupby(["space", "method"]):
        for _, r in grp.head(heatmap_runs).iterrows():
            figs.append((f"Architecture weights per epoch: {space}/{method}/seed-{r.seed}",
                         P.arch_heatmap(C.arch_history(r.path), f"{space} / {method} / seed {r.seed}",
                                        fig_dir, f"arch_{space}_{method}_seed{r.seed}")))
    for caption, paths in figs:
        if paths:
            md += [f"### {caption}", "", f"![{caption}]({_rel(paths[0], out)}) "
                   f"([PDF]({_rel(paths[1], out)}))", ""]
    report = out / "report.md"
    report.write_text("\n".join(md) + "\n")
    return report


def _darts_section(results: Path, space: str, runs: pd.DataFrame, published: pd.DataFrame,
                   tab_dir: Path) -> list[str]:
    """The DARTS-space table(s): retrained test error, parameters, search cost, published rows."""
    retrains = D.collect_retrains(results)
    mine = retrains[retrains.space == space]
    lines = [f"### {space}", ""]
    if mine.empty:
        lines += [f"No retrained genotypes yet: DARTS-space genotypes are scored by training them "
                  f"from scratch: `python -m benchmark.retrain --results {results} --spaces {space}`.", ""]
    for dataset in sorted(set(mine.dataset.dropna()) | {"cifar10"}):
        num, disp = D.darts_table(retrains, runs, published, space, dataset)
        profiles = sorted({str(p) for p in mine[mine.dataset == dataset].profile.dropna()})
        cap = (f"{space}: {dataset} test error (%) of the final genotypes retrained from scratch "
               f"(retraining profile: {', '.join(profiles) or 'none yet'}), mean ± std over every "
               "retraining (search seeds × retraining seeds together, ddof=1), best, parameters "
               "without the auxiliary head, search cost per search run (GPU-days on a GPU, else "
               "CPU-hours), published rows beside ours")
        lines += [cap + ".", "", T.write_table(num, disp, tab_dir, f"{space}_{dataset}_retrained", cap),
                  f"Also as [LaTeX](tables/{space}_{dataset}_retrained.tex) and "
                  f"[CSV](tables/{space}_{dataset}_retrained.csv).", ""]
        if "smoke" in profiles:
            lines += ["**Smoke retraining** (a tiny network, a few hundred images, 2 epochs): these errors "
                      "test the pipeline; they are not comparable with the published rows.", ""]
    return lines


def _stats_section(final: pd.DataFrame, space: str, kind: str, tab_dir: Path) -> list[str]:
    metric, higher = ("bench.cifar10_test", True) if kind == "accuracy" else ("bench.test_regret", False)
    sub = final[final.space == space]
    if metric not in sub:
        return []
    values = {m: g[metric].astype(float).to_numpy() for m, g in sub.groupby("method")}
    lines = [f"Statistics of the final {metric.split('.', 1)[1]} between methods "
             "(Welch t-test, two-sided Mann-Whitney U, 95% percentile bootstrap CI of the "
             "difference of means; 'undefined' rows say why):", ""]
    ranks = S.rank_summary(values, higher_is_better=higher)
    ranks.to_csv(tab_dir / f"{space}_ranks.csv", index=False)
    rdisp = ranks.assign(**{c: ranks[c].map(lambda v: "n/a" if not np.isfinite(v) else f"{v:.4g}")
                            for c in ("mean", "std", "median")})
    lines += [T.to_markdown(rdisp), ""]
    if len(values) < 2:
        return lines + ["(one method only: no pairwise tests)", ""]
    pw = S.pairwise(values)
    pw.to_csv(tab_dir / f"{space}_pairwise.csv", index=False)
    disp = S.format_pairwise(pw, digits=2 if kind == "accuracy" else 4)
    return lines + [T.to_markdown(disp), ""]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python analysis/report.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="results", help="results folder (default results/)")
    p.add_argument("--out", default=None, help="report folder (default <results>/report/)")
    p.add_argument("--heatmap-runs", type=int, default=1,
                   help="architecture heatmaps per (space, method): the lowest seeds (default 1)")
    a = p.parse_args(argv)
    results = Path(a.results)
    if not results.is_dir():
        print(f"error: results folder {results} does not exist; pass --results", file=sys.stderr)
        return 2
    if not C.run_folders(results):
        print(f"error: no run folders (<space>/<method>/seed-<k>/) under {results}; run "
              "benchmark/run.py first", file=sys.stderr)
        return 2
    report = build(results, Path(a.out) if a.out else results / "report", a.heatmap_runs)
    print(f"wrote {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
