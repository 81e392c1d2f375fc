"""The report never removes what it did not write, never mixes configurations in one row,
never counts a copied or edited run folder, and escapes names in its HTML (issue 22)."""
from __future__ import annotations

import json
from pathlib import Path

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
