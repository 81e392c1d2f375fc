"""Digest of a small smoke grid of every method on NB201, to show that a change which should
not change results (a refactor) leaves the records bit-identical.

    python tests/grid_digest.py --write    # after an INTENDED change of results: record anew

The digest covers every record field but `timing`, the final answer (done.json without its wall
time) and config.json. It is recorded with the torch version and the CPU's vector capability
(`torch.backends.cpu.get_cpu_capability()`: AVX2 and AVX512 kernels round differently in the
last bit, so a digest made on one does not hold on the other); tests/harness/test_grid_digest.py
skips, saying so, where either differs.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "nb201_smoke_grid_digest.json"
GRID_ARGS = ["--spaces", "nb201", "--seeds", "0", "--profile", "smoke", "--epochs", "1",
             "--set", "train_subset=64", "--threads", "1", "--no-progress"]


def run_grid(out: Path, methods: list[str], data: str | None = None,
             benchmarks: str | None = None) -> subprocess.CompletedProcess:
    where = [*(["--data", str(data)] if data else []), *(["--benchmarks", str(benchmarks)] if benchmarks else [])]
    return subprocess.run([sys.executable, "benchmark/run.py", "--methods", ",".join(methods),
                           *GRID_ARGS, *where, "--out", str(out)], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONHASHSEED="0"))


def cpu_capability() -> str:
    import torch
    return torch.backends.cpu.get_cpu_capability()


def digests(out: Path) -> dict[str, str]:
    result = {}
    for run in sorted(out.glob("*/*/seed-*")):
        rows = [json.loads(line) for line in (run / "epochs.jsonl").read_text().splitlines() if line.strip()]
        for r in rows:
            r.pop("timing", None)
        done = json.loads((run / "done.json").read_text())
        done.pop("wall_seconds", None)
        blob = json.dumps({"records": rows, "done": done,
                           "config": json.loads((run / "config.json").read_text())}, sort_keys=True)
        result[str(run.relative_to(out))] = hashlib.sha256(blob.encode()).hexdigest()
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--write", action="store_true", help=f"record the digests into {FIXTURE.name}")
    a = p.parse_args()
    import torch
    sys.path.insert(0, str(REPO))
    from methods.registry import available
    with tempfile.TemporaryDirectory() as tmp:
        r = run_grid(Path(tmp), available())
        if r.returncode != 0:
            print(r.stderr, file=sys.stderr)
            return 1
        d = {"torch": torch.__version__, "cpu_capability": cpu_capability(), "grid": GRID_ARGS,
             "runs": digests(Path(tmp))}
    print(json.dumps(d, indent=1))
    if a.write:
        FIXTURE.write_text(json.dumps(d, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
