"""Official benchmark files: a known checksum is verified, an unknown one is recorded."""
from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.errors import BenchmarkFileError
from benchmark.tabular.integrity import KNOWN_SHA256, sha256_file, verify_official
from benchmark.tabular.nb101_convert import OFFICIAL_SHA256
from benchmark.tabular.nb201_table import NB201Table

REPO = Path(__file__).resolve().parents[2]


def test_sha256_file_matches_hashlib(tmp_path):
    p = tmp_path / "x.bin"
    p.write_bytes(bytes(range(256)) * 40000)  # several read chunks
    assert sha256_file(p) == hashlib.sha256(p.read_bytes()).hexdigest()
    assert sha256_file(p, chunk=1000) == sha256_file(p)


def test_known_checksum_is_the_converter_s_and_a_corrupt_copy_is_refused(tmp_path):
    assert KNOWN_SHA256["nasbench_only108.tfrecord"][0] == OFFICIAL_SHA256
    fake = tmp_path / "nasbench_only108.tfrecord"
    fake.write_bytes(b"truncated")
    with pytest.raises(BenchmarkFileError, match="differs from the published"):
        verify_official(fake)
    other = tmp_path / "my_nb101_subset.tfrecord"
    other.write_bytes(b"anything")
    assert verify_official(other) is None  # no published checksum: nothing to verify
    r = subprocess.run([sys.executable, "-m", "benchmark.prepare", "nb101", "--source", str(fake),
                        "--out", str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 2 and "sha256" in r.stderr and "--download" in r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_nb201_source_checksum_is_recorded(tmp_path):
    from tests.tabular.test_nb201_convert import build_official_dict
    import torch
    src = tmp_path / "NAS-Bench-201-v1_1-tiny.pth"
    torch.save(build_official_dict(), src)
    r = subprocess.run([sys.executable, "-m", "benchmark.prepare", "nb201", "--source", str(src),
                        "--out", str(tmp_path), "--allow-partial", "--no-progress"], cwd=REPO,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    meta = NB201Table.load(tmp_path / "nb201.parquet").metadata
    assert meta["source_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
