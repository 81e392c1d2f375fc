"""The DARTS-space table and collapse figure on synthetic records (analysis/darts_space.py)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analysis import collect as C, darts_space as D, tables as T
from spaces.darts import DARTS_V1, DARTS_V2


def _write(p: Path, obj) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(obj))


def _search(root: Path, method: str, seed: int, genotypes: list[str], wall: float, device: str,
            paper: bool = False) -> Path:
    run = root / "darts" / method / f"seed-{seed}"
    if paper:   # the paper protocol's config (only such rows meet published rows)
        from benchmark.harness.config import resolve_config
        cfg = {**resolve_config("darts", method, seed, "paper").to_json(), "data_md5": "x"}
        genotypes = genotypes + [genotypes[-1]] * (cfg["epochs"] + 1 - len(genotypes))
    else:
        cfg = {"space": "darts", "method": method, "seed": seed, "epochs": len(genotypes) - 1, "profile": "smoke"}
    _write(run / "config.json", cfg)
    _write(run / "provenance.json", [{"device": device}])
    _write(run / "done.json", {"genotype": genotypes[-1], "wall_seconds": wall})
    (run / "epochs.jsonl").write_text("".join(
        json.dumps({"space": "darts", "method": method, "seed": seed, "epoch": e, "genotype": g,
                    "timing": {"epoch_seconds": 1.0, "wall_seconds": e}}) + "\n"
        for e, g in enumerate(genotypes)))
    return run


def _retrain(folder: Path, seed: int, err: float, params: float = 3.3, dataset: str = "cifar10",
             epochs: int = 2, **changes) -> None:
    _write(folder / "config.json", {"seed": seed, "profile": "paper", "dataset": dataset, "kind": "retrain",
                                    "epochs": epochs, **changes})
    _write(folder / "done.json", {"test_error": err, "params_millions": params, "dataset": dataset,
                                  "epochs": epochs, "wall_seconds": 1.0, "device": "cuda:0"})
    (folder / "epochs.jsonl").write_text("".join(json.dumps({"epoch": e, "test_acc": 100 - err}) + "\n"
                                                 for e in range(1, epochs + 1)))


@pytest.fixture
def results(tmp_path):
    r0 = _search(tmp_path, "darts", 0, [DARTS_V2, DARTS_V1, DARTS_V1], wall=7200.0, device="cpu")
    r1 = _search(tmp_path, "darts", 1, [DARTS_V2, DARTS_V2, DARTS_V1], wall=3600.0, device="cpu")
    _retrain(r0 / "retrain" / "seed-0", 0, 3.0)
    _retrain(r0 / "retrain" / "seed-1", 1, 3.2)
    _retrain(r1 / "retrain" / "seed-0", 0, 2.8)
    _retrain(r1 / "retrain-cifar100" / "seed-0", 0, 17.0, dataset="cifar100")
    g = _search(tmp_path, "darts-2nd", 0, [DARTS_V2, DARTS_V2], wall=86400.0, device="cuda:0", paper=True)
    _retrain(g / "retrain" / "seed-0", 0, 2.5, params=3.35, epochs=600)   # the paper protocol throughout
    _retrain(tmp_path / "retrain" / "darts" / "DARTS_V2" / "seed-0", 0, 2.7)   # a given genotype
    return tmp_path


def test_collapse_counts_of_the_published_cells():
    assert D.normal_cell_counts(DARTS_V2) == (2, 2)   # two skip_connect, no pooling
    assert D.normal_cell_counts(DARTS_V1) == (3, 3)
    assert D.normal_cell_counts("not a genotype") is None


def test_darts_table_statistics_and_published_rows(results):
    _, runs = C.collect(results)
    retrains = D.collect_retrains(results)
    assert len(retrains) == 6 and set(retrains.source) == {"search", "given"}
    num, disp = D.darts_table(retrains, runs, T.load_published(), "darts", "cifar10")
    d = num.set_index("method").loc["darts"]
    # over search seeds x retraining seeds together: errors 3.0, 3.2, 2.8
    assert d["n"] == 3 and d["search_seeds"] == 2 and d["retrain_seeds"] == 2
    assert d["test_error.mean"] == pytest.approx(3.0)
    assert d["test_error.std"] == pytest.approx(np.std([3.0, 3.2, 2.8], ddof=1))
    assert d["test_error.best"] == pytest.approx(2.8) and d["params_m.mean"] == pytest.approx(3.3)
    assert d["search_seconds"] == pytest.approx(5400.0) and not d["search_on_gpu"]
    second = num.set_index("method").loc["darts-2nd"]
    assert second["search_on_gpu"] and second["n"] == 1
    rows = disp[disp.protocol != "selected (DARTS protocol)"].set_index("method")
    assert rows.loc["darts", "test error (%)"] == "3.00 ± 0.20"
    assert rows.loc["darts", "search cost"] == "1.5 CPU-hours"
    assert rows.loc["darts-2nd", "search cost"] == "1 GPU-days"
    pub = disp.set_index("method").loc["↳ published: DARTS (2nd order) + cutout"]
    assert pub["test error (%)"] == "2.76 ± 0.09" and "1806.09055" in pub["source"]
    # the paper's number is a selected cell's: beside our "selected" line (no selection made
    # here, it says so), not beside "all searches"
    methods, prots = list(disp.method), list(disp.protocol)
    i = methods.index("↳ published: DARTS (2nd order) + cutout")
    assert (methods[i - 1], prots[i - 1]) == ("darts-2nd", "selected (DARTS protocol)")
    assert disp["source"][i - 1].startswith("no selection made") and disp["test error (%)"][i - 1] == "n/a"
    assert (methods[i - 2], prots[i - 2]) == ("darts-2nd", "all searches")
    # the paper's 4 GPU-days count its 4 searches: shown per search, as our column
    assert pub["search cost"] == "1 GPU-days per search (4 for 4 searches)"
    assert rows.loc["DARTS_V2 (given)", "test error (%)"] == "2.70"
    num100, _ = D.darts_table(retrains, runs, T.load_published(), "darts", "cifar100")
    assert num100.set_index("method").loc["darts", "test_error.mean"] == pytest.approx(17.0)


@pytest.mark.slow
def test_report_has_the_darts_table_and_collapse_figure(results, tmp_path):
    from analysis.report import build
    report = build(results, tmp_path / "report")
    md = report.read_text()
    assert "tables/darts_cifar10_retrained.tex" in md and "tables/darts_cifar100_retrained.tex" in md
    assert "2.76 ± 0.09" in md
    assert "figures/darts_collapse.png" in md and (tmp_path / "report" / "figures" / "darts_collapse.png").exists()
    frame = D.collapse_frame(C.collect(results)[0])
    run0 = frame[(frame.method == "darts") & (frame.seed == 0)]
    assert run0.skip_connect.tolist() == [2, 3, 3] and run0.param_free.tolist() == [2, 3, 3]
