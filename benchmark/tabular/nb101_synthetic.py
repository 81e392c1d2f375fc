"""Synthetic NB101 tfrecord files in the official format (tests and benchmarks).

Records mimic the real ones (3 evaluations each, ~390 bytes per record like the real
499 MB / 1.27M records, 3 repeats per hash, written adjacent here; the converter does not rely on the order).
"""
from __future__ import annotations

import hashlib
from typing import Iterator

import numpy as np

from benchmark.tabular.nb101_tfrecord import encode_record, make_metrics, write_frames

_OPS = ['conv3x3-bn-relu', 'conv1x1-bn-relu', 'maxpool3x3']


def _random_spec(rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    n = 7
    m = np.triu(rng.integers(0, 2, (n, n)), 1)
    m[0, 1] = m[n - 2, n - 1] = 1
    return m, ['input'] + [_OPS[i] for i in rng.integers(0, 3, n - 2)] + ['output']


def synthetic_records(num_hashes: int, seed: int = 0, repeats: int = 3,
                      true_hashes: bool = False) -> Iterator[tuple[bytes, dict]]:
    """Yield (record bytes, facts) with facts = hash, valid/test accuracy, params, time.

    true_hashes computes real module hashes (slow); otherwise md5 of the index stands in.
    """
    rng = np.random.default_rng(seed)
    for i in range(num_hashes):
        m, ops = _random_spec(rng)
        if true_hashes:
            from spaces.nb1shot1.nb101 import module_hash
            h = module_hash(m, ops)
        else:
            h = hashlib.md5(str(i).encode()).hexdigest()
        params = int(rng.integers(200_000, 40_000_000))
        for r in range(repeats):
            valid, test = rng.uniform(0.1, 0.95, 2)
            t = float(rng.uniform(1000, 5000))
            evals = [dict(current_epoch=float(e), training_time=t * e / 108,
                          train_accuracy=float(rng.uniform()), validation_accuracy=float(valid) if e == 108 else 0.1,
                          test_accuracy=float(test) if e == 108 else 0.1)
                     for e in (0, 54, 108)]
            metrics = make_metrics(evals, params, t * 1.05)
            facts = dict(hash=h, valid=float(valid), test=float(test), params=params, time=t)
            yield encode_record(h, 108, m, ops, metrics), facts


def write_synthetic(path: str, num_hashes: int, seed: int = 0, keep_facts: bool = True,
                    **kw) -> list[dict]:
    """Write a synthetic file; return the facts of every record (in file order) if kept."""
    facts: list[dict] = []

    def gen():
        for data, f in synthetic_records(num_hashes, seed, **kw):
            if keep_facts:
                facts.append(f)
            yield data
    write_frames(path, gen())
    return facts
