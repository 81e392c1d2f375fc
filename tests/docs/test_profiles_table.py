"""docs/profiles.md's table of what each method's `paper` profile changes against `fair` is
the code's (`python analysis/grid_defaults.py paper-vs-fair`), not a hand-written copy."""
from __future__ import annotations

from pathlib import Path

from analysis.tables import paper_vs_fair, to_markdown

PAGE = Path(__file__).resolve().parents[2] / "docs" / "profiles.md"
BEGIN, END = "<!-- paper-vs-fair: begin (python analysis/grid_defaults.py paper-vs-fair) -->", \
    "<!-- paper-vs-fair: end -->"


def test_the_paper_vs_fair_table_of_the_docs_is_the_codes():
    text = PAGE.read_text()
    assert BEGIN in text and END in text
    block = text[text.index(BEGIN) + len(BEGIN):text.index(END)].strip()
    assert block == to_markdown(paper_vs_fair()).strip(), \
        "docs/profiles.md is stale: paste the output of python analysis/grid_defaults.py paper-vs-fair"
