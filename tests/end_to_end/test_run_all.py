"""./run_all.sh end to end on the smoke profile with tiny overrides (real CIFAR-10 + NB201 table)."""
from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("NAS_DATA") or ROOT.parent / "shared/data/cifar10/cifar10.npz")
BENCH = Path(os.environ.get("NAS_BENCHMARKS") or ROOT.parent / "shared/data")


def _run(args, env_extra=None, timeout=600):
    env = {**os.environ, "NAS_DATA": str(DATA), "NAS_BENCHMARKS": str(BENCH), **(env_extra or {})}
    return subprocess.run([str(ROOT / "run_all.sh"), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_help_and_bad_profile():
    if not (ROOT / ".venv/bin/python").exists():
        pytest.skip("no .venv in the repository root (run ./run_all.sh --tests to create it)")
    r = _run(["--help"])
    assert r.returncode == 0 and "--profile" in r.stdout
    r = _run(["--profile", "fast"])
    assert r.returncode == 2 and "valid: paper, fair, smoke" in r.stderr


@pytest.mark.slow
def test_run_all_smoke_end_to_end(tmp_path):
    if not (ROOT / ".venv/bin/python").exists():
        pytest.skip("no .venv in the repository root (run ./run_all.sh --tests to create it)")
    if not DATA.is_file():
        pytest.skip(f"CIFAR-10 not found at {DATA}; set NAS_DATA")
    if not any(BENCH.glob("**/nb201_acc_200ep.csv")) and not any(BENCH.glob("**/*nb201*")):
        pytest.skip(f"no NB201 table under {BENCH}; set NAS_BENCHMARKS")
    out = tmp_path / "results"
    r = _run(["--profile", "smoke", "--methods", "darts", "--spaces", "nb201", "--seeds", "0-1",
              "--epochs", "1", "--set", "train_subset=64", "--set", "hessian_every=1",
              "--threads", "1", "--no-progress", "--out", str(out)])
    assert r.returncode == 0, r.stderr[-3000:]
    rep = out / "report"
    md = (rep / "report.md").read_text()
    assert "NON-OFFICIAL DATA COPY" in md.splitlines()[0]  # the shared copy is JPEG-derived
    for f in ["tables/nb201_final.md", "tables/nb201_final.tex", "tables/search_cost.csv",
              "data/epochs.parquet", "figures/nb201_trajectory_test.png",
              "figures/collapse_param_free_ops.pdf", "figures/hessian_max_eig.png",
              "figures/arch_nb201_darts_seed0.png", "figures/cells_nb201_darts.pdf",
              "report.html"] + [f"figures/{kind}_nb201_darts_seed{s}.png" for s in (0, 1)
                                for kind in ("cells/cell", "arch/archfinal")]:
        assert (rep / f).is_file(), f
    final = csv.reader(open(rep / "figures/arch/archfinal_nb201_darts_seed0.csv"))
    assert next(final)[3:] == ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
    assert [row[2] for row in final] == ["1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2"]
    rows = list(csv.DictReader(open(rep / "tables/nb201_final.csv")))
    assert [row["method"] for row in rows] == ["darts"]
    assert rows[0]["n_seeds"] == "2" and rows[0]["cifar10_test.n"] == "2"
    assert 0 < float(rows[0]["cifar10_test.mean"]) <= 94.38  # a real NB201 figure
    assert rows[0]["cifar100_valid.n"] == "0"                  # not in the shared table: n/a
    assert "| darts | 2 |" in md
    recs = [json.loads(line) for line in open(out / "nb201/darts/seed-0/epochs.jsonl")]
    assert [r_["epoch"] for r_ in recs] == [0, 1]
    assert isinstance(recs[1]["diagnostics"]["hessian_max_eig"], float)

    # A damaged finished run: every step names it and goes on; the report is still written
    # (without it) and the exit code says so.
    lines = (out / "nb201/darts/seed-0/epochs.jsonl").read_text().splitlines(keepends=True)
    (out / "nb201/darts/seed-0/epochs.jsonl").write_text(lines[0] + "garbage\n")
    (rep / "report.md").unlink()
    r = _run(["--profile", "smoke", "--methods", "darts", "--spaces", "nb201", "--seeds", "0-1",
              "--epochs", "1", "--set", "train_subset=64", "--set", "hessian_every=1",
              "--threads", "1", "--no-progress", "--out", str(out)])
    assert r.returncode == 1, r.stderr[-3000:]
    assert "seed-0: damaged" in r.stderr and "skipped" in r.stderr and "left out damaged run" in r.stderr
    rows = list(csv.DictReader(open(rep / "tables/nb201_final.csv")))
    assert rows[0]["n_seeds"] == "1" and "Damaged runs" in (rep / "report.md").read_text()


@pytest.mark.slow
def test_run_all_darts_space_ends_with_the_retrained_table(tmp_path):
    """--spaces darts: searches, then retraining of their genotypes, then the DARTS-space
    table and collapse figure in the report."""
    import sys
    sys.path.insert(0, str(ROOT))
    from spaces import available
    if "darts" not in available():
        pytest.skip("the darts space is not registered in this checkout")
    if not (ROOT / ".venv/bin/python").exists():
        pytest.skip("no .venv in the repository root (run ./run_all.sh --tests to create it)")
    if not DATA.is_file():
        pytest.skip(f"CIFAR-10 not found at {DATA}; set NAS_DATA")
    out = tmp_path / "results"
    r = _run(["--profile", "smoke", "--methods", "darts", "--spaces", "darts", "--seeds", "0",
              "--epochs", "1", "--set", "train_subset=64", "--threads", "1", "--no-progress",
              "--out", str(out)])
    assert r.returncode == 0, r.stderr[-3000:]
    assert (out / "darts" / "darts" / "seed-0" / "retrain" / "seed-0" / "done.json").exists()
    md = (out / "report" / "report.md").read_text()
    assert "tables/darts_cifar10_retrained.tex" in md and "figures/darts_collapse.png" in md
    # the DARTS paper's selection protocol ran too: the winner, its final retrainings, both rows
    sel = json.loads((out / "darts" / "darts" / "selection.json").read_text())
    assert sel["winner"]["run"] == "seed-0" and len(sel["candidates"]) == 1
    assert (out / "darts" / "darts" / "seed-0" / "retrain" / "seed-1" / "done.json").exists()
    assert "| all searches |" in md and "| selected (DARTS protocol) |" in md
    # the verdict table sets the DARTS paper's selected number against our selected row, and
    # says why there is no verdict (smoke retraining, select-smoke selection)
    line = next(x for x in md.splitlines()
                if x.startswith("| darts | DARTS (1st order) + cutout | cifar10_test_error |"))
    assert "| selected |" in line and "darts: " in line and "(n=2)" in line   # seed-0 x final seeds 0, 1
    assert "not the paper profile (profile smoke, selection select-smoke)" in line
