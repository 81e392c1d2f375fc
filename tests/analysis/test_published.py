"""analysis/published.csv holds every number of the team's PUBLISHED.md (parsed here, in the
test, never by the product), with its source, protocol and flags.

PUBLISHED.md is found at $NAS_PUBLISHED, else beside the shared data ($NAS_BENCHMARKS/../docs/),
else ../shared/docs/ beside the repo; the tests that need it skip when it is absent.
Sections 3 and 4 of PUBLISHED.md hold no published result (3: SmoothDARTS' 1Shot1 code
defaults, 4: what was not found), so only sections 1 and 2 are read.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
import pytest

from analysis.tables import PROTOCOLS, headline, load_published
from tests.conftest import REPO, benchmarks_path


def _published_md() -> Path:
    for p in (os.environ.get("NAS_PUBLISHED"), benchmarks_path().parent / "docs" / "PUBLISHED.md",
              REPO.parent / "shared" / "docs" / "PUBLISHED.md"):
        if p and Path(p).is_file():
            return Path(p)
    pytest.skip("PUBLISHED.md not found: set NAS_PUBLISHED to the team's PUBLISHED.md")


# Text that holds digits but no published value: references, names, dates, versions.
NOT_VALUES = [r"Table \d+", r"Sec\. [\d.]+", r"sec\. \d+", r"\b(19|20)\d\d-\d\d-\d\d\b",
              r"\b(ICLR|UAI|CVPR|ICML) \d{4}\b", r"v1_[01]-[0-9a-f]+", r"ImageNet16-120", r"CIFAR-100?",
              r"\bC10+\b", r"\bIN16\b", r"\bS\d(-S\d)?\b", r"V[12]\b", r"top-[15]\b", r"NAS-Bench-\d+\w*",
              r"\b[12](st|nd)\b", r"spaces 1-3", r"^## \d\.", r"TE-NAS|EEEA-Net|ReLIZO|MathNAS|DrNAS|ZiCo|NASI|DARTS-PT",
              r"Dong & Yang", r"\d+-epoch"]
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?")


def _sections(text: str) -> str:
    """Sections 1 and 2 (the published results)."""
    return text[text.index("## 1."):text.index("## 3.")]


def _numbers(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        for pat in NOT_VALUES:
            line = re.sub(pat, " ", line)
        out += NUMBER.findall(line)
    return out


@pytest.fixture(scope="module")
def pub() -> pd.DataFrame:
    return load_published()


def _values(pub: pd.DataFrame) -> set[float]:
    return {round(float(v), 6) for c in ("mean", "std") for v in pub[c].dropna()}


def test_every_decimal_of_published_md_is_a_value_in_the_csv(pub):
    """Every decimal number (a measured figure) is a mean or a std of some row."""
    have = _values(pub)
    decimals = [n for n in _numbers(_sections(_published_md().read_text())) if "." in n]
    assert len(decimals) > 150   # the parse found the tables
    missing = sorted({n for n in decimals if round(float(n), 6) not in have}, key=float)
    assert not missing, f"numbers of PUBLISHED.md missing from published.csv: {missing}"


def test_every_number_of_published_md_appears_in_the_csv(pub):
    """Whole numbers too (costs such as 4 and 10 GPU-days, run and seed counts, epochs) appear
    in some cell: a value, a count column or the note."""
    text = pub.astype(str).to_csv(index=False)
    have = {round(float(n), 6) for n in NUMBER.findall(text)}
    missing = sorted({n for n in _numbers(_sections(_published_md().read_text()))
                      if round(float(n), 6) not in have}, key=float)
    assert not missing, f"numbers of PUBLISHED.md missing from published.csv: {missing}"


NB201_NAMES = {"DARTS-V1": ("darts", "DARTS-V1 (1st order)"), "DARTS-V2": ("darts-2nd", "DARTS-V2 (2nd order)"),
               "GDAS": ("gdas", "GDAS"), "SETN": ("setn", "SETN"), "ENAS": ("enas", "ENAS"),
               "RSPS (random search, weight sharing)": ("random-ws", "RSPS (random search, weight sharing)"),
               "optimum of the table": ("optimum", "optimal")}
NB201_COLS = ["cifar10_valid", "cifar10_test", "cifar100_valid", "cifar100_test", "imagenet16_valid",
              "imagenet16_test"]


def test_nb201_table_rows_cell_by_cell(pub):
    """Each row of PUBLISHED.md's NB201 table, each column: the same mean and std (or none)."""
    text = _published_md().read_text()
    rows = [line for line in text[text.index("## 1."):text.index("Also reported")].splitlines()
            if line.startswith("| ") and not line.startswith("| method") and not line.startswith("| ---")]
    assert len(rows) == 7
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        method, label = NB201_NAMES[cells[0]]
        for metric, cell in zip(NB201_COLS, cells[1:]):
            mean, _, std = cell.partition("±")
            got = pub[(pub.space == "nb201") & (pub.method == method) & (pub.label == label) & (pub.metric == metric)]
            assert len(got) == 1, (method, metric)
            assert float(got["mean"].iloc[0]) == float(mean), (method, metric)
            if std:
                assert float(got["std"].iloc[0]) == float(std), (method, metric)
            else:   # a cell the file leaves without std stays without
                assert pd.isna(got["std"].iloc[0]), (method, metric)
            assert got.protocol.iloc[0] == ("table-optimum" if method == "optimum" else "search-runs")


def test_flags_and_context_rows(pub):
    also = pub[pub.also_reported]
    # the "also reported" values of PUBLISHED.md: RSPS and DARTS on NB201 (6 columns each, and
    # RSPS' second cost), GDAS ImageNet16 test on NB201, GDAS' second DARTS-space row
    assert set(zip(also.space, also.method)) == {("nb201", "random-ws"), ("nb201", "darts"),
                                                 ("nb201", "gdas"), ("darts", "gdas")}
    assert set(pub[pub.context].method) == {"gdas", "setn", "enas", "random-baseline"}
    # kept out of the difference columns
    assert not headline(pub).also_reported.any() and not headline(pub).context.any()
    # RSPS sits beside random-ws
    assert (pub[pub.label.str.startswith("RSPS")].method == "random-ws").all()
    # every DARTS-space mean/best of CIFAR-10 names a protocol where the file states one
    assert set(pub.protocol) <= {""} | set(PROTOCOLS)
    darts = pub[(pub.space == "darts") & (pub.metric == "cifar10_test_error")]
    assert set(darts[darts.method.isin(["darts", "darts-2nd"])].protocol) == {"selected"}
    # the quoted rows state no protocol: left empty, never guessed
    assert set(darts[darts.method.isin(["sdarts-rs", "sdarts-adv", "bayesnas"])].protocol) == {""}


def test_search_cost_in_both_conventions(pub):
    cost = pub[(pub.space == "darts") & (pub.metric == "search_gpu_days") & (pub.method == "darts")]
    assert dict(zip(cost.cost_convention, cost["mean"])) == {"4 searches": 1.5, "one search": 0.4}
    cost2 = pub[(pub.space == "darts") & (pub.metric == "search_gpu_days") & (pub.method == "darts-2nd")
                & pub.label.str.contains(r"\+ cutout")]
    assert dict(zip(cost2.cost_convention, cost2["mean"])) == {"4 searches": 4.0, "one search": 1.0}


def test_load_published_refuses_a_bad_protocol_or_flag(tmp_path, pub):
    bad = pub.copy()
    bad.loc[0, "protocol"] = "guessed"
    bad.to_csv(tmp_path / "p.csv", index=False)
    with pytest.raises(ValueError, match="protocol must be one of"):
        load_published(tmp_path / "p.csv")
    bad = pub.copy().astype({"context": object})
    bad.loc[0, "context"] = "maybe"
    bad.to_csv(tmp_path / "q.csv", index=False)
    with pytest.raises(ValueError, match="context must be true or false"):
        load_published(tmp_path / "q.csv")


@pytest.mark.slow
def test_our_search_cost_in_gpu_days_or_cpu_hours_with_the_device(tmp_path):
    import json

    from analysis import collect as C
    from analysis.tables import cost_tables
    from tests.analysis.test_analysis_tables import nb201, write_run
    r = tmp_path / "results"
    for method, device in (("darts", "cuda:0"), ("sdarts-rs", "cpu")):
        d = write_run(r, "nb201", method, 0, nb201(90.0), epochs=2)   # 4 wall seconds
        (d / "provenance.json").write_text(json.dumps([{"device": device, "host": "box", "torch_threads": 2}]))
    epochs, runs = C.collect(r)
    num, disp = cost_tables(epochs, runs)
    rows = disp.set_index("method")
    assert rows.loc["darts", "cost / search"] == f"{4 / 86400:.3g} GPU-days"
    assert rows.loc["darts", "device"] == "cuda:0 on box"
    assert rows.loc["sdarts-rs", "cost / search"] == f"{4 / 3600:.3g} CPU-hours"
    assert rows.loc["sdarts-rs", "device"] == "cpu, 2 threads on box"
