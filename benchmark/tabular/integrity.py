"""Checksums of the official benchmark files: verified where a published one is known.

Known (refused on mismatch): NAS-Bench-101's `nasbench_only108.tfrecord` (sha256 published
with its download). Not known: NAS-Bench-201 v1_0/v1_1 `.pth` and NATS-Bench tss archives
have no published checksum that we could find, so their sha256 is only *recorded* in the
compact table's metadata (`source_sha256`) for provenance; it is not verified.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from benchmark.errors import BenchmarkFileError

# official file name -> (published sha256, how to get the file again)
KNOWN_SHA256: dict[str, tuple[str, str]] = {
    "nasbench_only108.tfrecord": (
        "4c39c3936e36a85269881d659e44e61a245babcb72cb374eacacf75d0e5f4fd1",
        "python -m benchmark.prepare nb101 --download"),
}


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_official(path: str | os.PathLike) -> str | None:
    """sha256 of `path` if its name is an official file's with a published checksum (None if
    no checksum is known); raises BenchmarkFileError if the contents differ from it."""
    path = Path(path)
    known = KNOWN_SHA256.get(path.name)
    if known is None:
        return None
    digest = sha256_file(path)
    if digest != known[0]:
        raise BenchmarkFileError(path, f"sha256 {digest} differs from the published {known[0]}: "
                                       f"a truncated or altered copy; fetch it again ({known[1]})")
    return digest
