"""NB201Table against the real shared CSV tables (skipped when they are absent)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmark.errors import BenchmarkFileError
from benchmark.tabular.nb201_table import (ACC_COLUMNS, CSV_12, CSV_200, METRICS, N_CELLS, NB201Table,
                                   find_nb201_table)

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("NAS_BENCHMARKS") or REPO.parent / "shared" / "data")
CSV_DIR = next((d for d in (DATA, DATA / "nasbench201") if (d / CSV_200).is_file()), None)
needs_csv = pytest.mark.skipif(
    CSV_DIR is None, reason=f"shared NAS-Bench-201 CSVs ({CSV_200}) not found under {DATA} "
                            "(set NAS_BENCHMARKS)")
ARCH_6111 = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+"
             "|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|")


@pytest.fixture(scope="module")
def table() -> NB201Table:
    if CSV_DIR is None:
        pytest.skip("shared CSVs absent")
    t = NB201Table.from_csv(CSV_DIR / CSV_200, CSV_DIR / CSV_12)
    assert len(t) == N_CELLS
    return t


@needs_csv
@pytest.mark.parametrize("metric,value,index", [
    ("cifar10_test", 94.3733, 6111),
    ("cifar100_test", 73.5133, 9930),
    ("imagenet16_test", 47.3111, 857),
    ("cifar10_valid", 91.6067, 6111),
])
def test_published_optima(table, metric, value, index):
    best_index, best_arch, best_value = table.best(metric, "200")
    assert best_index == index
    assert best_value == pytest.approx(value, abs=1e-9)
    assert table.index_of(best_arch) == index


@needs_csv
def test_arch_string_and_index_agree(table):
    assert table.index_of(ARCH_6111) == 6111
    for idx in (0, 1, 857, 6111, 9930, 15624):
        arch = table.arch_of(idx)
        assert table.scores(arch, "200") == table.scores(idx, "200")
        assert table.scores(arch, "12") == table.scores(idx, "12")


@needs_csv
def test_missing_figures_stay_missing(table):
    # the 200-epoch CSV has no x-valid figures for CIFAR-100 / ImageNet16: never borrowed from hp 12
    assert table.query(6111, "cifar100_valid", "12") is not None
    assert table.query(6111, "cifar100_valid", "200") is None
    assert table.query(6111, "imagenet16_valid", "200") is None
    scores = table.scores(6111, "200")
    assert scores["cifar10_test"] == pytest.approx(94.3733)
    assert scores["cifar100_valid"] is None
    # the two fidelities really are different numbers
    assert table.query(6111, "cifar10_test", "12") != table.query(6111, "cifar10_test", "200")


@needs_csv
def test_hp_required_and_bad_arguments(table):
    with pytest.raises(TypeError):
        table.query(6111, "cifar10_test")  # no default hp
    with pytest.raises(TypeError):
        table.scores(6111)
    with pytest.raises(ValueError, match="cifar10_test"):
        table.query(6111, "cifar10-test", "200")  # names the valid metrics
    with pytest.raises(ValueError, match="12, 200"):
        table.query(6111, "cifar10_test", "100")
    with pytest.raises(KeyError, match="not in the NB201 table"):
        table.query("|nor_conv_3x3~0|+|bogus|", "cifar10_test", "200")
    with pytest.raises(KeyError, match="15624"):
        table.query(N_CELLS, "cifar10_test", "200")


@needs_csv
def test_find_prefers_parquet_and_round_trips(table, tmp_path):
    assert find_nb201_table(tmp_path) is None
    table.save(tmp_path / "nb201.parquet", source="roundtrip-test")
    loaded = find_nb201_table(tmp_path)
    assert loaded is not None and len(loaded) == N_CELLS
    assert loaded.metadata["source"] == "roundtrip-test"
    assert {"converter", "created", "format_version"} <= set(loaded.metadata)
    for col in ACC_COLUMNS:
        metric, hp = col.split("@")
        a, b = table.column(metric, hp), loaded.column(metric, hp)
        assert ((a == b) | ((a != a) & (b != b))).all(), col  # identical, NaN where NaN
    assert list(loaded.indexes) == list(table.indexes)
    assert all(loaded.arch_of(i) == table.arch_of(i) for i in range(0, N_CELLS, 97))


@needs_csv
def test_find_reads_csv_layout_from_subfolder(tmp_path):
    sub = tmp_path / "nasbench201"
    sub.mkdir()
    (sub / CSV_200).write_bytes((CSV_DIR / CSV_200).read_bytes())
    t = find_nb201_table(tmp_path)  # 12-epoch file absent: those columns all missing
    assert t is not None and t.best("cifar10_test", "200")[0] == 6111
    assert all(v is None for v in t.scores(6111, "12").values())


@needs_csv
def test_truncated_csv_raises(tmp_path):
    text = (CSV_DIR / CSV_200).read_text()
    (tmp_path / CSV_200).write_text(text[: len(text) // 2])  # cut mid-line
    with pytest.raises(BenchmarkFileError, match=CSV_200):
        find_nb201_table(tmp_path)
    lines = text.splitlines(keepends=True)
    (tmp_path / CSV_200).write_text("".join(lines[:1000]))  # cut at a line end
    with pytest.raises(BenchmarkFileError, match="expected all 15625"):
        find_nb201_table(tmp_path)


def test_garbage_and_truncated_parquet_raise(tmp_path):
    (tmp_path / "nb201.parquet").write_bytes(b"this is not parquet at all")
    with pytest.raises(BenchmarkFileError, match="nb201.parquet"):
        find_nb201_table(tmp_path)
    assert issubclass(BenchmarkFileError, ValueError)


@needs_csv
def test_truncated_parquet_raises(table, tmp_path):
    path = table.save(tmp_path / "nb201.parquet")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BenchmarkFileError, match="nb201.parquet"):
        NB201Table.load(path)


def test_wrong_columns_raise(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"index": [0], "arch": ["x"]}), tmp_path / "nb201.parquet")
    with pytest.raises(BenchmarkFileError, match="missing columns"):
        find_nb201_table(tmp_path)


def test_metrics_cover_columns():
    assert len(ACC_COLUMNS) == 2 * len(METRICS) == 12


def test_nulls_in_parquet_read_as_missing(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    arch = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    cols = {"index": [7], "arch": [arch], **{c: pa.array([None], pa.float64()) for c in ACC_COLUMNS}}
    cols["cifar10_test@200"] = [10.0]
    table = pa.table(cols).replace_schema_metadata({"partial": "true"})
    pq.write_table(table, tmp_path / "nb201.parquet")
    t = NB201Table.load(tmp_path / "nb201.parquet")
    assert t.query(arch, "cifar10_test", "200") == 10.0
    assert t.query(7, "cifar10_test", "12") is None
    assert t.index_of(arch) == 7


@needs_csv
def test_load_does_not_import_pandas(table, tmp_path):
    # pandas costs ~0.5 s to import, more than the whole load budget (0.2 s)
    import subprocess
    import sys

    path = table.save(tmp_path / "nb201.parquet")
    code = ("import sys; from benchmark.tabular.nb201_table import NB201Table; "
            f"t = NB201Table.load({str(path)!r}); t.query(6111, 'cifar10_test', '200'); "
            "print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
