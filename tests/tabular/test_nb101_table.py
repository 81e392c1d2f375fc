import argparse
from collections import defaultdict

import numpy as np
import pytest

from benchmark.tabular import nb101_convert
from benchmark.errors import BenchmarkFileError
from benchmark.tabular.nb101_table import NB101_HELP, TABLE_NAME, NB101Table, find_nb101_table
from benchmark.tabular.nb101_synthetic import write_synthetic
from benchmark.tabular.nb101_tfrecord import encode_record, make_metrics, write_frames


def run_main(*argv):
    ap = argparse.ArgumentParser()
    nb101_convert.add_arguments(ap)
    return nb101_convert.main(ap.parse_args(list(argv) + ['--no-progress']))


def test_convert_and_query_means(tmp_path):
    src = tmp_path / 'nb.tfrecord'
    facts = write_synthetic(str(src), 50, seed=3)
    assert run_main('--source', str(src), '--out', str(tmp_path / 'out')) == 0
    table = find_nb101_table(tmp_path / 'out')
    assert table is not None and len(table) == 50
    by_hash = defaultdict(list)
    for f in facts:
        by_hash[f['hash']].append(f)
    for h, fs in by_hash.items():
        q = table.query(h)
        assert q['repeats'] == 3
        assert q['test_accuracies'] == [f['test'] for f in fs]
        assert q['valid_accuracies'] == [f['valid'] for f in fs]
        assert q['test_accuracy'] == pytest.approx(np.mean([f['test'] for f in fs]), abs=1e-15)
        assert q['valid_error'] == pytest.approx(1 - np.mean([f['valid'] for f in fs]), abs=1e-15)
        assert q['trainable_parameters'] == fs[0]['params']
        assert q['training_time'] == pytest.approx(np.mean([f['time'] for f in fs]))
    assert table.query('0' * 32) is None
    assert table.query('not-a-hash') is None
    assert list(by_hash)[0] in table


def test_uneven_repeats_and_other_epochs(tmp_path):
    src = tmp_path / 'nb.tfrecord'
    m = np.eye(2, k=1, dtype=int)

    def rec(h, epochs, test):
        ev = [dict(test_accuracy=0.0)] * 2 + [dict(test_accuracy=test, validation_accuracy=test / 2,
                                                   training_time=10.0)]
        return encode_record(h, epochs, m, ['input', 'output'], make_metrics(ev, 5, 1.0))
    write_frames(str(src), [rec('b' * 32, 108, 0.5), rec('a' * 32, 108, 0.9), rec('a' * 32, 4, 0.1),
                            rec('b' * 32, 108, 0.7)])
    out = tmp_path / 'out'
    assert run_main('--source', str(src), '--out', str(out)) == 0
    t = NB101Table.load(out / TABLE_NAME)
    assert t.query('a' * 32)['test_accuracies'] == [0.9]
    assert t.query('b' * 32)['test_accuracies'] == [0.5, 0.7]
    assert t.query('b' * 32)['test_accuracy'] == pytest.approx(0.6)


def test_corrupt_source_fails_with_offset(tmp_path, capsys):
    src = tmp_path / 'nb.tfrecord'
    write_synthetic(str(src), 3, seed=0)
    buf = bytearray(src.read_bytes())
    buf[100] ^= 0xFF
    src.write_bytes(bytes(buf))
    assert run_main('--source', str(src), '--out', str(tmp_path)) == 1
    assert 'byte offset 0' in capsys.readouterr().err
    assert not (tmp_path / TABLE_NAME).exists()


def test_bad_table_files(tmp_path):
    assert find_nb101_table(tmp_path) is None
    assert 'benchmark.prepare nb101' in NB101_HELP
    (tmp_path / TABLE_NAME).write_bytes(b'PAR1 garbage')
    with pytest.raises(BenchmarkFileError, match='Parquet'):
        find_nb101_table(tmp_path)
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.table({'x': [1]}), tmp_path / TABLE_NAME)
    with pytest.raises(BenchmarkFileError, match='not an NB101 table'):
        find_nb101_table(tmp_path)


def test_default_dir_env(monkeypatch, tmp_path):
    from benchmark.tabular.nb101_table import default_benchmarks_dir
    monkeypatch.setenv('NAS_BENCHMARKS', str(tmp_path / 'a'))
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'b'))
    assert default_benchmarks_dir() == tmp_path / 'a'
    monkeypatch.delenv('NAS_BENCHMARKS')
    assert default_benchmarks_dir() == tmp_path / 'b'


def test_download_failure_exit_2(tmp_path, monkeypatch, capsys):
    import urllib.error

    def fail(*a, **k):
        raise urllib.error.URLError('no network')
    monkeypatch.setattr(nb101_convert.urllib.request, 'urlopen', fail)
    assert run_main('--download', '--out', str(tmp_path)) == 2
    assert 'could not download' in capsys.readouterr().err


def test_missing_args_exit_2(tmp_path):
    assert run_main('--out', str(tmp_path)) == 2
    assert run_main('--source', str(tmp_path / 'nope'), '--out', str(tmp_path)) == 2
