"""Collection, tables and the report on hand-made records with known means and stds."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import collect as C, tables as T
from analysis.report import build, data_provenance, main as report_main

NON_OFFICIAL = "2700e052a187fe08aea1c2285b8e2706"


def write_run(root: Path, space: str, method: str, seed: int, finals: dict | None,
              epochs: int = 2, status: str = "done", md5: str = NON_OFFICIAL,
              diagnostics: dict | None = None, arch: dict | None = None) -> Path:
    """A run folder as the harness writes it; `finals` is the last epoch's benchmark dict."""
    d = root / space / method / f"seed-{seed}"
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"space": space, "method": method, "seed": seed,
                                               "epochs": epochs, "profile": "smoke", "data_md5": md5}))
    lines = []
    for e in range(epochs + 1):
        bench = finals if e == epochs else {k: (None if v is None else v / 2) if not isinstance(v, str)
                                            else v for k, v in (finals or {}).items()}
        lines.append(json.dumps({
            "epoch": e, "space": space, "method": method, "seed": seed, "genotype": f"g{e}",
            "param_free_ops": e, "train_loss": 1.0, "valid_acc": 0.5,
            "arch": arch or {"alpha": {"alpha": [[0.0, 1.0], [1.0, 0.0]]},
                             "weights": {"alpha": [[0.27, 0.73], [0.73, 0.27]]}},
            "benchmark": bench if finals is not None else None,
            "diagnostics": (diagnostics or {}) if e else {},
            "timing": {"epoch_seconds": 0.0 if e == 0 else 2.0 * (seed + 1),
                       "wall_seconds": 2.0 * (seed + 1) * e}}, sort_keys=True))
    if status == "partial":
        lines = lines[:2]
    (d / "epochs.jsonl").write_text("\n".join(lines) + "\n" + ('{"torn' if status == "partial" else ""))
    if status == "done":
        (d / "done.json").write_text(json.dumps({"genotype": f"g{epochs}", "wall_seconds": 2.0 * (seed + 1) * epochs}))
    if status == "failed":
        (d / "failed.json").write_text(json.dumps({"reason": "DivergenceError: loss is nan\ntraceback"}))
    return d


def nb201(c10_test: float, c100_test: float | None = 60.0) -> dict:
    return {"hp": "200", "cifar10_valid": c10_test - 3, "cifar10_test": c10_test,
            "cifar100_valid": None, "cifar100_test": c100_test,
            "imagenet16_valid": None, "imagenet16_test": 40.0}


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    r = tmp_path / "results"
    for seed, acc in enumerate([90.0, 92.0, 94.0]):  # mean 92, sample std 2
        write_run(r, "nb201", "darts", seed, nb201(acc))
    for seed in range(2):                            # the collapse: zero spread
        write_run(r, "nb201", "newmethod", seed, nb201(54.30), diagnostics={
            "hessian_max_eig": 0.5 + seed, "selected_genotype": "|x~0|",
            "selected_benchmark": {"cifar10_test": 93.0}},
            arch={"mu": {"alpha": [[0.1, 0.2, 0.3]]}, "sigma": {"alpha": [[1.0, 1.0, 1.0]]}})
    write_run(r, "nb201", "darts", 3, nb201(10.0), status="partial")
    write_run(r, "nb201", "darts", 4, nb201(10.0), status="failed")
    for seed, reg in enumerate([0.01, 0.03]):        # 1Shot1-style records (NB101 figures)
        write_run(r, "nb1shot1-s9", "darts", seed, {"test_error": 0.05 + reg, "valid_error": 0.05,
                                                    "test_regret": reg, "valid_regret": 0.001})
    return r


def test_collect_is_tidy_and_tolerates_unfinished_runs(results):
    epochs, runs = C.collect(results)
    assert set(runs.status) == {"done", "partial", "failed"}
    failed = runs[runs.status == "failed"].iloc[0]
    assert failed.reason == "DivergenceError: loss is nan"
    partial = runs[runs.status == "partial"].iloc[0]
    assert partial.epochs_recorded == 1  # the torn line is skipped
    assert {"bench.cifar10_test", "bench.test_regret", "diag.hessian_max_eig",
            "diag.selected_benchmark.cifar10_test", "epoch_seconds"} <= set(epochs.columns)
    final = C.final_epochs(epochs, runs)
    assert len(final) == 3 + 2 + 2  # done runs only, one row each
    assert (final.groupby(["space", "method", "seed"]).size() == 1).all()


def test_nb201_table_numbers(results):
    epochs, runs = C.collect(results)
    final = C.final_epochs(epochs, runs)
    pub = T.load_published()
    num, disp = T.nb201_tables(final, pub, "nb201")
    d = num.set_index("method").loc["darts"]
    assert d.n_seeds == 3
    assert d["cifar10_test.mean"] == pytest.approx(92.0)
    assert d["cifar10_test.std"] == pytest.approx(2.0)          # sample std, ddof=1
    assert d["cifar10_test.published"] == pytest.approx(54.30)  # DARTS-V1 row
    assert d["cifar10_test.diff"] == pytest.approx(92.0 - 54.30)
    assert np.isnan(d["cifar100_valid.mean"]) and d["cifar100_valid.n"] == 0
    rows = disp.set_index("method")
    assert rows.loc["darts", "CIFAR-10 test"] == "92.00 ± 2.00"
    assert rows.loc["darts", "CIFAR-100 valid"] == "n/a"         # never a stand-in
    assert rows.loc["optimum (published)", "CIFAR-10 test"] == "94.37"
    assert rows.loc["newmethod", "CIFAR-10 test"] == "54.30 ± 0.00"
    assert rows.loc["newmethod", "seeds"] == "2"
    assert "↳ published: DARTS-V1 (1st order)" in rows.index
    # a method without a published row gets none (not a row of n/a under "published: nan")
    assert list(rows.index).count("↳ ours − published") == 1
    assert not any("nan" in str(i) for i in rows.index)


def test_regret_table_and_cost(results):
    epochs, runs = C.collect(results)
    final = C.final_epochs(epochs, runs)
    assert T.space_kind(final, "nb1shot1-s9") == "regret"
    assert T.space_kind(final, "nb201") == "accuracy"
    num, disp = T.regret_tables(final, T.load_published(), "nb1shot1-s9")
    r = num.iloc[0]
    assert r["test_regret.mean"] == pytest.approx(0.02)
    assert r["test_regret.std"] == pytest.approx(np.std([0.01, 0.03], ddof=1))
    assert r["test_error.mean"] == pytest.approx(0.07)
    assert disp.iloc[0]["test regret"] == "0.0200 ± 0.0141"
    cnum, _ = T.cost_tables(epochs, runs)
    c = cnum.set_index(["space", "method"]).loc[("nb201", "darts")]
    assert c.runs == 3                                 # partial and failed left out
    assert c["run_seconds.mean"] == pytest.approx(np.mean([4.0, 8.0, 12.0]))
    assert c["epoch_seconds.mean"] == pytest.approx(4.0)  # 2,4,6 s per epoch; epoch 0 excluded


def test_published_csv_has_a_source_for_every_number():
    pub = T.load_published()
    assert pub["source"].str.len().gt(10).all()
    opt = pub[(pub.space == "nb201") & (pub.method == "optimum")].set_index("metric")["mean"]
    assert opt["cifar10_test"] == pytest.approx(94.37) and opt["imagenet16_test"] == pytest.approx(47.31)
    assert set(pub[pub.method == "optimum"].space) >= {"nb201", "nb1shot1-s1", "nb1shot1-s2", "nb1shot1-s3"}


def test_published_csv_without_source_is_refused(tmp_path):
    bad = tmp_path / "p.csv"
    bad.write_text("space,method,label,metric,mean,std,source,note\nnb201,x,X,cifar10_test,1,,,\n")
    with pytest.raises(ValueError, match="source"):
        T.load_published(bad)


@pytest.mark.slow
def test_report_files_title_and_new_names(results, tmp_path):
    out = tmp_path / "report"
    assert report_main(["--results", str(results), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "NON-OFFICIAL DATA COPY" in md.splitlines()[0]
    assert "newmethod" in md and "nb1shot1-s9" in md          # no names hard-coded
    assert "Welch t undefined: both methods have zero spread" not in md  # darts has spread
    for f in ["tables/nb201_final.md", "tables/nb201_final.tex", "tables/nb201_final.csv",
              "tables/nb1shot1-s9_final.md", "tables/search_cost.tex", "data/epochs.parquet",
              "data/epochs.csv", "figures/nb201_trajectory_test.png",
              "figures/nb1shot1_regret.pdf", "figures/collapse_param_free_ops.png",
              "figures/hessian_max_eig.png", "figures/arch_nb201_darts_seed0.png",
              "figures/arch_nb201_newmethod_seed0.png"]:
        assert (out / f).is_file(), f
    assert r"\toprule" in (out / "tables/nb201_final.tex").read_text()
    back = pd.read_parquet(out / "data/epochs.parquet")
    assert len(back) == len(C.collect(results)[0])
    assert "partial" in md and "failed" in md


def test_report_bad_input_exit_2(tmp_path, capsys):
    assert report_main(["--results", str(tmp_path / "nope")]) == 2
    assert report_main(["--results", str(tmp_path)]) == 2
    assert "benchmark/run.py" in capsys.readouterr().err


def test_provenance_only_documented_md5_is_official():
    runs = pd.DataFrame({"data_md5": [NON_OFFICIAL]})
    official, text = data_provenance(runs)
    assert not official and "JPEG" in text
    official, text = data_provenance(pd.DataFrame({"data_md5": ["0" * 32]}))
    assert not official and "not a documented official copy" in text


def test_unscored_space_is_reported_not_fatal(tmp_path):
    r = tmp_path / "results"
    write_run(r, "nb201", "darts", 0, None)
    md = build(r, tmp_path / "rep").read_text()
    assert "python -m benchmark.score" in md


def test_the_methods_own_pick_is_what_the_tables_score(tmp_path):
    """A record with a top-level selected_genotype (BaLeNAS-TF, random-ws) is scored by it."""
    r = tmp_path / "results"
    d = write_run(r, "nb201", "picker", 0, nb201(50.0), epochs=1)
    recs = [json.loads(line) for line in (d / "epochs.jsonl").read_text().splitlines()]
    recs[-1]["selected_genotype"] = "|picked~0|"
    recs[-1]["selected_benchmark"] = nb201(93.0)
    (d / "epochs.jsonl").write_text("\n".join(json.dumps(x) for x in recs) + "\n")
    epochs, runs = C.collect(r)
    last = C.final_epochs(epochs, runs).iloc[0]
    assert last["bench.cifar10_test"] == 93.0 and last["bench_derived.cifar10_test"] == 50.0
    assert last["answer"] == "selected" and last["selected_genotype"] == "|picked~0|"
    first = epochs[epochs.epoch == 0].iloc[0]
    assert first["answer"] == "derived" and first["bench.cifar10_test"] == 25.0


def test_negative_regret_survives_scoring_tables_and_plot(tmp_path):
    """The 1Shot1 optimum is a minimum over the reference code's enumeration only, so a cell
    can beat it: a negative regret must reach the table unclipped."""
    from benchmark.tabular.nb101_scorer import score_nb101
    from spaces import get_space
    space = get_space("nb1shot1-s1")

    class Table:
        def query(self, h):
            return {"repeats": 3, "test_accuracy": 0.95, "valid_accuracy": 0.96,
                    "test_error": space.test_min_error - 0.002, "valid_error": space.valid_min_error - 0.001,
                    "trainable_parameters": 1}
    s = score_nb101(Table(), {"module_hash": "h", "space": "nb1shot1-s1"})
    assert s["test_regret"] == pytest.approx(-0.002) and s["valid_regret"] == pytest.approx(-0.001)

    r = tmp_path / "results"
    for seed, reg in enumerate([-0.002, -0.004]):
        write_run(r, "nb1shot1-s1", "darts", seed, {"test_error": 0.05 + reg, "valid_error": 0.05,
                                                    "test_regret": reg, "valid_regret": -0.001})
    epochs, runs = C.collect(r)
    final = C.final_epochs(epochs, runs)
    num, disp = T.regret_tables(final, T.load_published(), "nb1shot1-s1")
    row = num[num.method == "darts"].iloc[0]
    assert row["test_regret.mean"] == pytest.approx(-0.003)
    assert disp[disp.method == "darts"].iloc[0]["test regret"].startswith("-0.0030")
    from analysis import plots as P
    files = P.regret_trajectory(epochs, ["nb1shot1-s1"], tmp_path / "figs")
    assert files  # drawn, negative values included


def test_every_published_row_names_a_paper_and_where_in_it():
    """Each number names the place it was read from: a table, a section, the abstract, the
    text, a README, the reference code's constant, or (where the paper's own tables could not
    be read) the Papers with Code listing of its results, or a quoting table. A venue year only
    where PUBLISHED.md gives one (nothing from memory); a number read in the original paper
    (not "as quoted in") names its year."""
    import re
    pub = T.load_published()
    for _, row in pub.iterrows():
        src = str(row["source"])
        if "quot" not in src and "EEEA-Net" not in src:
            assert re.search(r"(19|20)\d\d", src), row.to_dict()
        assert re.search(r"Table \d|sec\. \d|abstract|reference code|Papers with Code|text|README|quoting table|quoted in",
                         src, re.IGNORECASE), row.to_dict()
