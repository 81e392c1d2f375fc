"""CIFAR-10 sources, the search splits and the batch stream."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from benchmark.harness.data import (MEAN, STD, BatchStream, DataError, find_split_file, load_cifar10,
                            make_split, read_split_file)
from benchmark.errors import BenchmarkFileError


def test_official_split_file(benchmarks):
    f = find_split_file(benchmarks)
    train, valid = read_split_file(f)
    assert len(train) == len(valid) == 25000
    assert len(np.intersect1d(train, valid)) == 0
    assert sorted(np.concatenate([train, valid]).tolist()) == list(range(50000))
    assert train[:5].tolist() == [0, 5, 7, 11, 13]  # the benchmark's own file, as shipped
    t2, v2, desc = make_split("official", 50000, 3, f)
    assert desc.startswith("official") and np.array_equal(t2, train)


def test_seeded_and_contiguous_splits():
    a = make_split("random-half", 1000, 7, None)
    b = make_split("random-half", 1000, 7, None)
    c = make_split("random-half", 1000, 8, None)
    assert np.array_equal(a[0], b[0]) and not np.array_equal(a[0], c[0])
    assert len(np.intersect1d(a[0], a[1])) == 0 and len(a[0]) == 500
    t, v, _ = make_split("contiguous", 50000, 0, None)
    assert t[0] == 0 and t[-1] == 24999 and v[0] == 25000
    with pytest.raises(DataError, match="cifar-split.txt"):
        make_split("official", 50000, 0, None)
    with pytest.raises(DataError, match="valid: official"):
        make_split("thirds", 50000, 0, None)


@pytest.mark.parametrize("content", ["", "{not json", json.dumps({"train": ["int", [1, 2]]}),
                                     json.dumps({"train": ["int", ["1", "x"]], "valid": ["int", ["3"]]}),
                                     json.dumps({"train": ["int", ["1", "2"]], "valid": ["int", ["2"]]})])
def test_bad_split_files_are_refused(tmp_path, content):
    p = tmp_path / "cifar-split.txt"
    p.write_text(content)
    with pytest.raises(BenchmarkFileError):
        read_split_file(p)


@pytest.mark.slow
def test_npz_source_and_errors(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (50000, 32, 32, 3), dtype=np.uint8)
    y = np.arange(50000) % 10
    np.savez(tmp_path / "c.npz", x_train=x, y_train=y, x_test=x[:10], y_test=y[:10])
    d = load_cifar10(tmp_path / "c.npz")
    assert d.x_train.shape == (50000, 32, 32, 3) and len(d.md5) == 32
    np.savez(tmp_path / "bad.npz", x_train=x[:10], y_train=y[:10])
    with pytest.raises(DataError, match="expected x_train"):
        load_cifar10(tmp_path / "bad.npz")
    with pytest.raises(DataError, match="NAS_DATA"):
        load_cifar10(tmp_path / "missing.npz")
    with pytest.raises(DataError, match="--download"):
        load_cifar10(tmp_path / "no-such-folder")


@pytest.mark.slow
def test_real_archive_md5(cifar):
    d = load_cifar10(cifar)
    assert d.y_train[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]  # official order


def test_batch_stream_is_reproducible_and_augments_correctly():
    x = np.random.default_rng(0).integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    y = np.arange(10)
    s1 = BatchStream(x, y, 4, True, torch.Generator().manual_seed(5))
    s2 = BatchStream(x, y, 4, True, torch.Generator().manual_seed(5))
    b1, b2 = list(s1), list(s2)
    assert [len(b[1]) for b in b1] == [4, 4, 2]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(b1, b2))
    # every augmented image is a (possibly flipped) 32x32 window of the zero-padded original
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    for xb, yb in b1:
        for img, label in zip(xb, yb):
            raw = img * std + mean
            orig = torch.nn.functional.pad(torch.from_numpy(x[label]).permute(2, 0, 1).float() / 255, (4, 4, 4, 4))
            found = any(torch.allclose(raw, cand, atol=1e-5)
                        for dy in range(9) for dx in range(9)
                        for cand in (orig[:, dy:dy + 32, dx:dx + 32], orig[:, dy:dy + 32, dx:dx + 32].flip(-1)))
            assert found
    plain = list(BatchStream(x, y, 10, False, torch.Generator().manual_seed(0)))[0]
    img = plain[0][0] * std + mean
    torch.testing.assert_close(img, torch.from_numpy(x[int(plain[1][0])]).permute(2, 0, 1).float() / 255)
