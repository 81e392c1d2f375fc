"""The report never removes what it did not write, never mixes configurations in one row,
never counts a copied or edited run folder, and escapes names in its HTML (issue 22)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from analysis.report import MARKER, build, main as report_main
from tests.analysis.test_analysis_tables import nb201, write_run


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    r = tmp_path / "results"
    for seed, acc in enumerate([90.0, 92.0]):
        write_run(r, "nb201", "darts", seed, nb201(acc))
    return r


def test_out_equal_to_results_is_refused_and_nothing_is_lost(results, capsys):
    before = sorted(p.relative_to(results) for p in results.rglob("*"))
    assert report_main(["--results", str(results), "--out", str(results)]) == 2
    assert "results folder" in capsys.readouterr().err
    assert sorted(p.relative_to(results) for p in results.rglob("*")) == before
    # a folder holding the results is refused too
    assert report_main(["--results", str(results), "--out", str(results.parent)]) == 2


def test_out_with_a_foreign_file_is_refused(results, tmp_path, capsys):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "thesis.tex").write_text("my thesis")
    assert report_main(["--results", str(results), "--out", str(victim)]) == 2
    err = capsys.readouterr().err
    assert "thesis.tex" in err and "--out" in err
    assert (victim / "thesis.tex").read_text() == "my thesis"
    assert sorted(p.name for p in victim.iterdir()) == ["thesis.tex"]


def test_a_previous_report_is_replaced_but_a_file_added_to_it_is_not_lost(results, tmp_path, capsys):
    out = tmp_path / "rep"
    assert report_main(["--results", str(results), "--out", str(out)]) == 0
    assert (out / MARKER).is_file() and (out / "report.md").is_file()
    assert report_main(["--results", str(results), "--out", str(out)]) == 0   # a report: replaced
    (out / "tables" / "notes.txt").write_text("mine")
    assert report_main(["--results", str(results), "--out", str(out)]) == 2
    assert "tables/notes.txt" in capsys.readouterr().err
    assert (out / "tables" / "notes.txt").read_text() == "mine"
    with pytest.raises(ValueError):
        build(results, out)   # the library call refuses as well
    assert (out / "tables" / "notes.txt").read_text() == "mine"


def test_results_that_is_a_file_says_so(tmp_path, capsys):
    f = tmp_path / "results.txt"
    f.write_text("x")
    assert report_main(["--results", str(f)]) == 2
    assert "is a file" in capsys.readouterr().err


# ---------------------------------------------------------------- one row per configuration
def _config(run: Path, **changes) -> dict:
    cfg = json.loads((run / "config.json").read_text())
    cfg.update(changes)
    (run / "config.json").write_text(json.dumps(cfg))
    return cfg


def _final_rows(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "tables" / "nb201_final.csv").set_index("method")


def test_runs_of_different_settings_are_never_one_row(tmp_path):
    r = tmp_path / "results"
    for seed, acc in enumerate([90.0, 92.0]):
        write_run(r, "nb201", "darts", seed, nb201(acc), epochs=2)
    for seed, acc in zip((2, 3), [10.0, 12.0]):
        write_run(r, "nb201", "darts", seed, nb201(acc), epochs=1)
    d = write_run(r, "nb201", "darts", 4, nb201(50.0), epochs=2)
    _config(d, supernet={"C": 8})
    out = tmp_path / "rep"
    md = build(r, out).read_text()
    rows = _final_rows(out)
    assert len(rows) == 3, rows.index.tolist()
    two = rows.loc["darts (epochs=2, supernet.C=None)"]
    assert two.n_seeds == 2 and two["cifar10_test.mean"] == pytest.approx(91.0)
    one = rows.loc["darts (epochs=1, supernet.C=None)"]
    assert one.n_seeds == 2 and one["cifar10_test.mean"] == pytest.approx(11.0)
    assert rows.loc["darts (epochs=2, supernet.C=8)"].n_seeds == 1
    assert "ONE configuration" in md
    # smoke rows are not set against the published DARTS-V1 row
    assert rows.published_label.isna().all()
    assert "↳ published" not in (out / "tables" / "nb201_final.md").read_text()
    cost = pd.read_csv(out / "tables" / "search_cost.csv")
    assert sorted(cost.runs) == [1, 2, 2]


def test_only_paper_rows_meet_published_rows(tmp_path):
    from benchmark.harness.config import resolve_config
    r = tmp_path / "results"
    paper = resolve_config("nb201", "darts", 0, "paper").to_json()
    for seed, acc in enumerate([54.0, 55.0]):
        d = write_run(r, "nb201", "darts", seed, nb201(acc), epochs=paper["epochs"])
        (d / "config.json").write_text(json.dumps({**paper, "seed": seed, "data_md5": "x"}))
    out = tmp_path / "rep"
    build(r, out)
    rows = _final_rows(out)
    assert list(rows.index) == ["darts"]
    assert rows.loc["darts", "published_label"] == "DARTS-V1 (1st order)"
    # the same runs with one value changed are no longer the paper protocol
    _config(r / "nb201" / "darts" / "seed-0", w_lr=0.1)
    _config(r / "nb201" / "darts" / "seed-1", w_lr=0.1)
    build(r, out)
    assert _final_rows(out).published_label.isna().all()


def _checkpoint(run: Path) -> None:
    """A checkpoint carrying the run's identity, as benchmark/harness/loop.py writes one."""
    import torch
    torch.save({"epoch": 2, "identity": json.loads((run / "config.json").read_text())}, run / "checkpoint.pt")


def test_copied_linked_and_edited_run_folders_are_named_and_left_out(tmp_path, capsys):
    import shutil
    r = tmp_path / "results"
    base = r / "nb201" / "darts"
    for seed, acc in enumerate([90.0, 92.0]):
        _checkpoint(write_run(r, "nb201", "darts", seed, nb201(acc)))
    shutil.copytree(base / "seed-1", base / "seed-7")          # copied under another seed
    (base / "seed-5").symlink_to(base / "seed-1")               # linked under another seed
    shutil.copytree(base / "seed-1", base / "seed-01")         # the same run twice
    d = write_run(r, "nb201", "darts", 3, nb201(10.0))
    _checkpoint(d)
    _config(d, profile="paper")                                 # edited by hand
    out = tmp_path / "rep"
    assert report_main(["--results", str(r), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    for name in ("seed-7", "seed-5", "seed-01", "seed-3"):
        assert f"{name}:" in err, (name, err)
    rows = _final_rows(out)
    assert rows.loc["darts"].n_seeds == 2 and rows.loc["darts", "cifar10_test.mean"] == pytest.approx(91.0)
    md = (out / "report.md").read_text()
    assert "seed 1 but the folder is seed-7" in md and "a duplicate of" in md
    assert "checkpoint.pt was made under other settings" in md


# ---------------------------------------------------------------- DARTS space: retrainings
def _darts_results(tmp_path: Path) -> Path:
    from tests.analysis.test_analysis_darts import _retrain, _search
    from spaces.darts import DARTS_V1, DARTS_V2
    r = tmp_path / "results"
    a = _search(r, "darts", 0, [DARTS_V2, DARTS_V1, DARTS_V1], wall=3600.0, device="cpu")       # 2 epochs
    b = _search(r, "darts", 1, [DARTS_V2] * 5, wall=7200.0, device="cpu")                      # 4 epochs
    _retrain(a / "retrain" / "seed-0", 0, 3.0, C=36)
    _retrain(a / "retrain" / "seed-1", 1, 5.0, C=8)
    _retrain(b / "retrain" / "seed-0", 0, 2.0, C=36)
    _retrain(b / "retrain" / "seed-1", 1, 9.0, C=36, epochs=3)
    return r


def test_retrainings_and_searches_of_different_settings_are_separate_rows(tmp_path):
    r = _darts_results(tmp_path)
    out = tmp_path / "rep"
    build(r, out)
    t = pd.read_csv(out / "tables" / "darts_cifar10_retrained.csv").set_index("method")
    assert len(t) == 4, t.index.tolist()
    assert t.loc["darts (epochs=2) [retraining: C=36]", "test_error.mean"] == pytest.approx(3.0)
    assert t.loc["darts (epochs=2) [retraining: C=8]", "test_error.mean"] == pytest.approx(5.0)
    assert t.loc["darts (epochs=4) [retraining: epochs=2]", "test_error.mean"] == pytest.approx(2.0)
    assert t.loc["darts (epochs=4) [retraining: epochs=3]", "test_error.mean"] == pytest.approx(9.0)
    four = t.loc["darts (epochs=4) [retraining: epochs=2]"]
    assert four.search_seconds == pytest.approx(7200.0) and four.n == 1       # its own search cost
    assert t.loc["darts (epochs=2) [retraining: C=36]", "search_seconds"] == pytest.approx(3600.0)


def test_a_smoke_search_retrained_under_paper_meets_no_published_row(tmp_path):
    from tests.analysis.test_analysis_darts import _retrain, _search
    from spaces.darts import DARTS_V2
    r = tmp_path / "results"
    smoke = _search(r, "darts-2nd", 0, [DARTS_V2] * 3, wall=60.0, device="cpu")
    _retrain(smoke / "retrain" / "seed-0", 0, 2.9, epochs=600)
    build(r, tmp_path / "rep")
    assert "↳ published" not in (tmp_path / "rep" / "tables" / "darts_cifar10_retrained.md").read_text()
    paper = _search(r, "darts-2nd", 1, [DARTS_V2] * 3, wall=60.0, device="cpu", paper=True)
    _retrain(paper / "retrain" / "seed-0", 0, 2.9, epochs=600)
    build(r, tmp_path / "rep")
    assert "↳ published: DARTS (2nd order)" in (tmp_path / "rep" / "tables" / "darts_cifar10_retrained.md").read_text()


@pytest.mark.parametrize("damage", ["truncated last line", "no epochs.jsonl", "unreadable done.json"])
def test_a_damaged_retraining_is_named_and_left_out(tmp_path, damage):
    r = _darts_results(tmp_path)
    run = r / "darts" / "darts" / "seed-0" / "retrain" / "seed-0"
    if damage == "truncated last line":
        text = (run / "epochs.jsonl").read_text()
        (run / "epochs.jsonl").write_text(text[:-10])
    elif damage == "no epochs.jsonl":
        (run / "epochs.jsonl").unlink()
    else:
        (run / "done.json").write_text('{"test_error": 3.0, "params')
    out = tmp_path / "rep"
    md = build(r, out).read_text()
    t = pd.read_csv(out / "tables" / "darts_cifar10_retrained.csv").set_index("method")
    row = t.loc["darts (epochs=2)"]   # the C=8 retraining alone is left: nothing to tell apart
    assert row.n == 1 and row["test_error.mean"] == pytest.approx(5.0)
    assert str(run) in md and "--retry-failed" in md


def test_a_report_of_given_genotypes_only(tmp_path):
    from tests.analysis.test_analysis_darts import _retrain
    r = tmp_path / "results"
    _retrain(r / "retrain" / "darts" / "DARTS_V2" / "seed-0", 0, 2.7)
    out = tmp_path / "rep"
    assert report_main(["--results", str(r), "--out", str(out)]) == 0
    t = pd.read_csv(out / "tables" / "darts_cifar10_retrained.csv").set_index("method")
    assert t.loc["DARTS_V2 (given)", "test_error.mean"] == pytest.approx(2.7)


# ---------------------------------------------------------------- HTML
def test_names_from_the_results_tree_are_escaped_in_html(tmp_path):
    r = tmp_path / "results"
    evil = "<img src=x onerror=alert(document.domain)>"
    write_run(r, "nb201", evil, 0, nb201(90.0))
    write_run(r, "nb201", "[click](javascript:alert(1))", 0, nb201(91.0))
    write_run(r, "nb201", "darts", 0, nb201(92.0), status="failed")
    fail = r / "nb201" / "darts" / "seed-0" / "failed.json"
    fail.write_text(json.dumps({"reason": "<script>alert(2)</script>"}))
    out = tmp_path / "rep"
    build(r, out)
    page = (out / "report.html").read_text()
    assert "<img src=x" not in page and "<script>alert" not in page
    assert "&lt;img src=x onerror=alert(document.domain)&gt;" in page
    assert "javascript:" not in page.replace("[click](javascript:alert(1))", "")
    assert 'href="javascript' not in page.lower()


def test_darts_cells_found_are_ranked_by_their_retrained_error(tmp_path):
    from tests.analysis.test_analysis_darts import _retrain, _search
    from spaces.darts import DARTS_V1, DARTS_V2
    r = tmp_path / "results"
    a = _search(r, "darts", 0, [DARTS_V2, DARTS_V1], wall=60.0, device="cpu")
    b = _search(r, "darts", 1, [DARTS_V2, DARTS_V2], wall=60.0, device="cpu")
    md = build(r, tmp_path / "rep").read_text()
    cells = md[md.index("darts: the cells found"):]
    assert "| darts | seed 0 | not retrained yet |" in cells and "| darts | seed 1 | not retrained yet |" in cells
    _retrain(a / "retrain" / "seed-0", 0, 3.0)
    _retrain(b / "retrain" / "seed-0", 0, 2.0)
    _retrain(b / "retrain" / "seed-1", 1, 9.0)
    (b / "retrain" / "seed-1" / "epochs.jsonl").unlink()      # damaged: not counted
    md = build(r, tmp_path / "rep").read_text()
    cells = md[md.index("darts: the cells found"):]
    assert "| darts | best seed 1 | 2.00% CIFAR-10 test error, retrained |" in cells
    assert "| darts | worst seed 0 | 3.00% CIFAR-10 test error, retrained |" in cells


def test_a_report_written_before_the_marker_is_replaced_but_not_one_with_other_files(results, tmp_path):
    out = tmp_path / "rep"
    assert report_main(["--results", str(results), "--out", str(out)]) == 0
    (out / MARKER).unlink()                                   # as an older version wrote it
    assert report_main(["--results", str(results), "--out", str(out)]) == 0
    assert (out / MARKER).is_file()
    (out / MARKER).unlink()
    (out / "thesis.docx").write_text("mine")
    assert report_main(["--results", str(results), "--out", str(out)]) == 2
    assert (out / "thesis.docx").read_text() == "mine"
