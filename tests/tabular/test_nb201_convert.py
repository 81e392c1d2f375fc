"""End-to-end converter test on a tiny file in the official NAS-Bench-201 format.

The file is built with nas_201_api's own classes (ResultsCount, ArchResults) and laid out
like NAS-Bench-201-v1_x-*.pth: {'meta_archs', 'arch2infos': {idx: {'less': hp 12,
'full': hp 200}}, 'evaluated_indexes'}, then saved with torch.save.
"""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
api_utils = pytest.importorskip("nas_201_api.api_utils")

from benchmark.tabular import prepare_cli as prepare  # noqa: E402
from benchmark.tabular.nb201_table import NB201Table  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ARCHS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
]
EVALUATED = [0, 1, 2]  # index 3 is listed in meta_archs but never trained
SEEDS = {0: [777, 888, 999], 1: [777, 888], 2: [777]}
DATASETS = {  # dataset -> (eval sets, classes)
    "cifar10-valid": (["x-valid", "ori-test"], 10),
    "cifar10": (["ori-test"], 10),
    "cifar100": (["x-valid", "x-test", "ori-test"], 100),
    "ImageNet16-120": (["x-valid", "x-test", "ori-test"], 120),
}
DS_CODE = {"cifar10-valid": 1, "cifar10": 2, "cifar100": 3, "ImageNet16-120": 4}
SET_CODE = {"x-valid": 0.1, "x-test": 0.2, "ori-test": 0.3}


def final_acc(idx: int, dataset: str, evalset: str, hp: str, seed: int) -> float:
    """Distinct final accuracy per (cell, dataset, set, hp, seed): wrong column => wrong number."""
    return (10.0 * idx + 5.0 * DS_CODE[dataset] + SET_CODE[evalset]
            + (20.0 if hp == "200" else 0.0) + (seed % 100) / 10.0)


def trained(idx: int, hp: str) -> list[str]:
    """hp 12 of cell 2 only has cifar10-valid (like v1_0's 'less' runs)."""
    return ["cifar10-valid"] if (hp == "12" and idx == 2) else list(DATASETS)


def make_result(idx: int, dataset: str, hp: str, seed: int):
    epochs = int(hp)
    sets, classes = DATASETS[dataset]
    config = {"name": "infer.tiny", "channel": 16, "num_cells": 5, "arch_str": ARCHS[idx],
              "class_num": classes}
    train_acc = {e: 50.0 + e * 0.01 for e in range(epochs)}
    train_loss = {e: 1.0 for e in range(epochs)}
    res = api_utils.ResultsCount(dataset, None, train_acc, train_loss, 0.1 * (idx + 1),
                                 10.0 * (idx + 1), config, seed, epochs,
                                 [0.001 * (idx + 1) + seed * 1e-6])
    res.update_train_info(train_acc, None, train_loss, {e: 2.0 + idx for e in range(epochs)})
    accs, losses, times = {}, {}, {}
    for s in sets:
        for e in range(epochs):  # earlier epochs lower: catches "not the last epoch"
            last = final_acc(idx, dataset, s, hp, seed)
            accs[f"{s}@{e}"] = last if e == epochs - 1 else last - 5.0
            losses[f"{s}@{e}"] = 1.0
            times[f"{s}@{e}"] = 0.5
    res.update_eval(accs, losses, times)
    return res


def build_official_dict() -> dict:
    arch2infos = {}
    for idx in EVALUATED:
        per_hp = {}
        for hp in ("12", "200"):
            arch_res = api_utils.ArchResults(idx, ARCHS[idx])
            for dataset in trained(idx, hp):
                for seed in SEEDS[idx]:
                    arch_res.update(dataset, seed, make_result(idx, dataset, hp, seed))
            per_hp[hp] = arch_res.state_dict()
        arch2infos[idx] = {"less": per_hp["12"], "full": per_hp["200"]}
    return {"meta_archs": list(ARCHS), "arch2infos": arch2infos, "evaluated_indexes": EVALUATED}


def mean_acc(idx: int, dataset: str, evalset: str, hp: str) -> float:
    vals = [final_acc(idx, dataset, evalset, hp, s) for s in SEEDS[idx]]
    return sum(vals) / len(vals)


COLUMN_SOURCES = {  # our column -> official (dataset, eval set)
    "cifar10_valid": ("cifar10-valid", "x-valid"),
    "cifar10_test": ("cifar10", "ori-test"),
    "cifar100_valid": ("cifar100", "x-valid"),
    "cifar100_test": ("cifar100", "x-test"),
    "imagenet16_valid": ("ImageNet16-120", "x-valid"),
    "imagenet16_test": ("ImageNet16-120", "x-test"),
}


@pytest.fixture(scope="module")
def tiny_pth(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("nb201src") / "NAS-Bench-201-v1_1-tiny.pth"
    torch.save(build_official_dict(), path)
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmark.prepare", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_cli_end_to_end_official_format(tiny_pth, tmp_path):
    proc = run_cli("nb201", "--source", str(tiny_pth), "--out", str(tmp_path),
                   "--allow-partial", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    table = NB201Table.load(tmp_path / "nb201.parquet")
    assert len(table) == 3
    assert list(table.indexes) == EVALUATED
    with pytest.raises(KeyError):
        table.query(ARCHS[3], "cifar10_test", "200")  # listed but never evaluated
    for idx in EVALUATED:
        assert table.index_of(ARCHS[idx]) == idx
        for hp in ("12", "200"):
            for col, (dataset, evalset) in COLUMN_SOURCES.items():
                got = table.query(idx, col, hp)
                if dataset in trained(idx, hp):
                    assert got == pytest.approx(mean_acc(idx, dataset, evalset, hp), abs=1e-9), \
                        (idx, col, hp)
                else:  # missing stays missing: not borrowed from hp 200
                    assert got is None, (idx, col, hp)
    # costs: cifar10-valid, hp 200, means over seeds
    assert table.cost(1, "params_mb") == pytest.approx(0.2)
    assert table.cost(1, "flops_m") == pytest.approx(20.0)
    assert table.cost(1, "latency_s") == pytest.approx(0.002 + (777 + 888) / 2 * 1e-6)
    assert table.cost(0, "train_time_s@200") == pytest.approx(2.0 * 200)
    assert table.cost(0, "train_time_s@12") == pytest.approx(2.0 * 12)
    assert table.metadata["source"] == tiny_pth.name
    assert table.metadata["source_kind"] == "nb201_pth"
    assert "nb201_convert" in table.metadata["converter"]
    assert table.metadata["partial"] == "true"


@pytest.mark.slow
def test_cli_refuses_partial_without_flag(tiny_pth, tmp_path):
    proc = run_cli("nb201", "--source", str(tiny_pth), "--out", str(tmp_path), "--no-progress")
    assert proc.returncode == 2
    assert "--allow-partial" in proc.stderr
    assert not (tmp_path / "nb201.parquet").exists()


def test_bad_inputs_exit_2(tmp_path, capsys):
    assert prepare.main(["nb201", "--source", str(tmp_path / "nope.pth"),
                         "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00not a torch file" * 10)
    assert prepare.main(["nb201", "--source", str(garbage), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "garbage.pth" in err and "torch.load failed" in err
    wrong = tmp_path / "wrong.pth"
    torch.save({"something": 1}, wrong)
    assert prepare.main(["nb201", "--source", str(wrong), "--out", str(tmp_path)]) == 2
    assert "meta_archs" in capsys.readouterr().err


def test_help_and_missing_nb101(monkeypatch, capsys):
    proc = run_cli("--help")
    assert proc.returncode == 0 and "nb201" in proc.stdout and "nb101" in proc.stdout
    proc = run_cli("nb201", "--help")
    assert proc.returncode == 0 and "--source" in proc.stdout
    # a converter module that is not installed: the subcommand says so
    monkeypatch.setitem(prepare.SUBCOMMANDS, "nb101", ("benchmark._no_such_converter", "x"))
    assert prepare.main(["nb101", "--source", "x"]) == 2
    assert "not available" in capsys.readouterr().err


def test_csv_source_through_cli(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "nb201_acc_200ep.csv").write_text(
        "index,arch,cifar10_valid,cifar10_test,cifar100_test,imagenet16_test\n"
        f"0,{ARCHS[0]},91.5,94.25,73.0,46.5\n1,{ARCHS[1]},80.0,85.0,50.0,25.0\n")
    out = tmp_path / "out"
    assert prepare.main(["nb201", "--source", str(src), "--out", str(out),
                         "--allow-partial", "--no-progress"]) == 0
    table = NB201Table.load(out / "nb201.parquet")
    assert table.query(0, "cifar10_test", "200") == 94.25
    assert table.query(0, "cifar10_test", "12") is None
    assert math.isnan(table.column("cifar100_valid", "200")[1])


def test_nats_tss_archive_dir(tmp_path):
    """NATS-Bench tss 'simple' archive layout: meta.pickle.pbz2 + one {:06d}.pickle.pbz2 per cell
    holding {hp: ArchResults state}; read through nats_bench.create(..., fast_mode=True)."""
    nats_utils = pytest.importorskip("nats_bench.api_utils")
    archive = tmp_path / "NATS-tss-v1_0-tiny-simple"
    archive.mkdir()
    official = build_official_dict()
    nats_utils.pickle_save({"meta_archs": list(ARCHS)}, str(archive / "meta.pickle"))
    for idx, per_hp in official["arch2infos"].items():
        nats_utils.pickle_save({"12": per_hp["less"], "200": per_hp["full"]},
                               str(archive / f"{idx:06d}.pickle"))
    out = tmp_path / "out"
    assert prepare.main(["nb201", "--source", str(archive), "--out", str(out),
                         "--allow-partial", "--no-progress"]) == 0
    table = NB201Table.load(out / "nb201.parquet")
    assert list(table.indexes) == EVALUATED
    assert table.metadata["source_kind"] == "nats_dir"
    for idx in EVALUATED:
        for col, (dataset, evalset) in COLUMN_SOURCES.items():
            assert table.query(idx, col, "200") == pytest.approx(
                mean_acc(idx, dataset, evalset, "200"), abs=1e-9)
    assert table.query(2, "cifar100_test", "12") is None
