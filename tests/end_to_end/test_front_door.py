"""The front door on a fresh machine: no NAS_DATA, no NAS_BENCHMARKS.

CIFAR-10 comes from the default folder (benchmark/paths.py DEFAULT_DATA_DIR under a temporary
HOME) as torchvision's archive; the archives here are written by the tests (the network is
off: the `no_network` fixture fails any attempt). Torchvision's CIFAR10 class knows the
official archive's md5 and every extracted file's; a test archive is described by a subclass
put in place of `benchmark.harness.data.official_cifar10` (in this process only: nothing a user
can set changes which archive is accepted).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from benchmark.harness import data as data_mod
from benchmark.harness.data import DataError, _md5, fetch_cifar10
from benchmark.paths import DEFAULT_DATA_DIR, default_data_dir

REPO = Path(__file__).resolve().parents[2]
OFFICIAL_MD5 = "c58f30108f718f92721af3b95e74349a"
FILES = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"]


def write_cifar10_archive(path: Path, per_batch: int = 10000) -> dict:
    """torchvision's cifar-10-python.tar.gz layout (cifar-10-batches-py/ with data_batch_1..5,
    test_batch, batches.meta) at `path`, holding `per_batch` images per batch: 8 random images
    repeated, so that the archive is small. Returns {"md5": archive md5, "files": {name: md5},
    "x_train", "y_train"}."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (8, 3072), dtype=np.uint8)
    files, xs, ys = {}, [], []
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name in FILES:
            if name == "batches.meta":
                obj = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                       "horse", "ship", "truck"], "num_cases_per_batch": per_batch,
                       "num_vis": 3072}
            else:
                x = np.tile(base, (per_batch // 8 + 1, 1))[:per_batch]
                y = [int(v) for v in (np.arange(per_batch) + len(xs)) % 10]
                obj = {"batch_label": name, "labels": y, "data": x, "filenames": ["x.png"] * per_batch}
                if name != "test_batch":
                    xs.append(x)
                    ys += y
            raw = pickle.dumps(obj, protocol=4)
            files[name] = hashlib.md5(raw).hexdigest()
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tf.addfile(info, io.BytesIO(raw))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    x_train = np.concatenate(xs).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return {"md5": hashlib.md5(buf.getvalue()).hexdigest(), "files": files,
            "x_train": x_train, "y_train": np.array(ys, dtype=np.int64)}


def described_by(written: dict, url: str | None = None):
    """torchvision's CIFAR10 with the md5s (and, given, the URL) of a test archive."""
    from torchvision.datasets import CIFAR10
    f = written["files"]
    attrs = dict(tgz_md5=written["md5"], train_list=[[n, f[n]] for n in FILES[:5]],
                 test_list=[["test_batch", f["test_batch"]]],
                 meta={**CIFAR10.meta, "md5": f["batches.meta"]})
    if url:
        attrs["url"] = url
    return type("TestArchiveCIFAR10", (CIFAR10,), attrs)


@pytest.fixture
def fresh_home(tmp_path, monkeypatch) -> Path:
    """A new user's machine: HOME empty, no NAS_DATA / NAS_BENCHMARKS / TORCH_HOME."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("NAS_DATA", "NAS_BENCHMARKS", "TORCH_HOME"):
        monkeypatch.delenv(var, raising=False)
    from benchmark.harness.worker import cached_data
    cached_data.cache_clear()
    yield home
    cached_data.cache_clear()


def _dry_run(tmp_path, capsys) -> tuple[int, str, str]:
    from benchmark.harness import run_cli
    rc = run_cli.main(["--methods", "darts", "--spaces", "darts", "--profile", "smoke", "--seeds", "0",
                       "--threads", "1", "--out", str(tmp_path / "results"), "--dry-run"])
    out, err = capsys.readouterr()
    return rc, out, err


# ----- (a) CIFAR-10 from the default folder -----

def test_default_folder_is_documented_and_under_home(fresh_home):
    assert default_data_dir() == fresh_home / ".cache" / "darts-repro" / "data"
    docs = [REPO / "README.md", *REPO.glob("docs/**/*.md")]
    assert any(DEFAULT_DATA_DIR in p.read_text() for p in docs if p.is_file())


def test_archive_in_the_default_folder_is_checked_extracted_once_and_used(
        fresh_home, tmp_path, monkeypatch, capsys, no_network):
    written = write_cifar10_archive(default_data_dir() / "cifar-10-python.tar.gz")
    monkeypatch.setattr(data_mod, "official_cifar10", lambda: described_by(written))
    rc, out, err = _dry_run(tmp_path, capsys)
    assert rc == 0, err
    assert f"note: CIFAR-10 from the default folder {default_data_dir()} (no --data or NAS_DATA given)" in err
    assert f"note: extracting {default_data_dir() / 'cifar-10-python.tar.gz'}" in err
    assert (default_data_dir() / "cifar-10-batches-py" / "data_batch_5").is_file()
    cfg = json.loads(out.splitlines()[0].split(" ", 1)[1])
    assert cfg["data_md5"] == _md5(written["x_train"], written["y_train"])  # the arrays written
    assert not (tmp_path / "results").exists()                               # a dry run
    # Once extracted (and its files' md5 right), the folder is used as it is: nothing said or done.
    said = []
    assert fetch_cifar10(default_data_dir(), log=said.append) == default_data_dir() and said == []
    assert no_network == []


def test_download_into_the_default_folder_checks_the_md5(fresh_home, tmp_path, monkeypatch, no_network):
    source = tmp_path / "mirror" / "cifar-10-python.tar.gz"
    written = write_cifar10_archive(source)
    monkeypatch.setattr(data_mod, "official_cifar10", lambda: described_by(written, source.as_uri()))
    said = []
    root = fetch_cifar10(default_data_dir(), log=said.append)
    assert said == [f"note: no CIFAR-10 in {root} yet: downloading {source.as_uri()} (about 170 MB, once)",
                    f"note: extracting {root / 'cifar-10-python.tar.gz'} into {root / 'cifar-10-batches-py'}"]
    assert (root / "cifar-10-python.tar.gz").read_bytes() == source.read_bytes()
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]
    assert sorted(p.name for p in (root / "cifar-10-batches-py").iterdir()) == sorted(FILES)
    # A transfer whose md5 is wrong is discarded, never kept or extracted.
    other = fresh_home / "other"
    wrong = {**written, "md5": "0" * 32}
    monkeypatch.setattr(data_mod, "official_cifar10", lambda: described_by(wrong, source.as_uri()))
    with pytest.raises(DataError, match=f"has md5 {written['md5']}, not the official {'0' * 32}"):
        fetch_cifar10(other)
    assert list(other.iterdir()) == []
    assert no_network == []


def test_archive_with_a_bad_md5_is_refused(fresh_home, tmp_path, capsys, no_network):
    archive = default_data_dir() / "cifar-10-python.tar.gz"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(b"not the official archive")
    bad = hashlib.md5(b"not the official archive").hexdigest()
    rc, out, err = _dry_run(tmp_path, capsys)   # torchvision's own md5s: the official archive's
    assert rc == 2
    assert (f"error: {archive} has md5 {bad}, not the official {OFFICIAL_MD5}: a truncated or altered "
            "copy, not used. Delete it and run again") in err
    assert archive.read_bytes() == b"not the official archive"          # never overwritten
    assert sorted(p.name for p in archive.parent.iterdir()) == ["cifar-10-python.tar.gz"]
    assert no_network == []


def test_without_network_it_says_how_to_get_cifar10(fresh_home, tmp_path, capsys, no_network):
    rc, out, err = _dry_run(tmp_path, capsys)
    assert rc == 2
    url = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert no_network == [url]
    assert f"note: no CIFAR-10 in {default_data_dir()} yet: downloading {url} (about 170 MB, once)" in err
    assert (f"error: could not download CIFAR-10 from {url} (URLError: network disabled in tests); "
            f"without a network, copy torchvision's cifar-10-python.tar.gz (md5 {OFFICIAL_MD5}) into "
            f"{default_data_dir()}, or point --data / NAS_DATA at a CIFAR-10 .npz or torchvision root") in err
    assert not [p for p in default_data_dir().iterdir() if p.name.startswith("cifar-10-python")]


def test_data_option_and_nas_data_override_the_default(fresh_home, monkeypatch):
    from benchmark.paths import data_source
    assert data_source(None, False) == (str(default_data_dir()), True, True)
    assert data_source("/x/c.npz", False) == ("/x/c.npz", False, False)
    monkeypatch.setenv("NAS_DATA", "/y/root")
    assert data_source(None, False) == ("/y/root", False, False)      # no download unless asked
    assert data_source(None, True) == ("/y/root", True, False)


# ----- (b) which spaces run by default -----

def test_default_spaces_without_tables_run_darts_and_name_each_missing_table(fresh_home, tmp_path, capsys):
    from analysis import grid_defaults
    bench = fresh_home / ".torch"      # run_all.sh's default with no NAS_BENCHMARKS / TORCH_HOME
    assert grid_defaults.main(["spaces", str(bench)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "darts"
    assert err.splitlines() == [
        f"run_all: skipping nb201: no NAS-Bench-201 table in {bench}; get it with: "
        "python -m benchmark.prepare nb201 --source FILE",
        f"run_all: skipping nb1shot1-s1, nb1shot1-s2, nb1shot1-s3: no NAS-Bench-101 table in {bench}; "
        "get it with: python -m benchmark.prepare nb101 --download"]
    other = tmp_path / "tables"        # --benchmarks DIR: the command writes there
    assert grid_defaults.main(["spaces", str(other)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "darts"
    assert err.splitlines()[0].endswith(f"get it with: python -m benchmark.prepare nb201 --source FILE --out {other}")


def test_default_spaces_with_a_table(benchmarks, capsys):
    from analysis import grid_defaults
    assert grid_defaults.main(["spaces", str(benchmarks)]) == 0
    out, err = capsys.readouterr()
    assert set(out.strip().split(",")) >= {"nb201", "darts"}
    assert "skipping nb201" not in err


# ----- (c) progress off a terminal -----

def test_progress_is_a_bar_on_a_terminal_and_lines_elsewhere():
    from benchmark.harness.progress import EpochProgress

    class Terminal(io.StringIO):
        def isatty(self):
            return True
    for stream, expect_bar in ((Terminal(), True), (io.StringIO(), False)):
        p = EpochProgress("search", "nb201/darts/seed-0", 1, 2, 3, True, stream)
        for e in (1, 2):
            for _ in range(3):
                p.step()
            p.epoch(e, {"train_loss": 2.25, "train_acc": 12.5, "valid_loss": None}, 1.25)
        p.close()
        text = stream.getvalue()
        if expect_bar:
            assert "\r" in text and "epoch" not in text
        else:
            assert "\r" not in text and text.splitlines() == [
                f"search nb201/darts/seed-0: epoch {e}/2 train_loss 2.2500 train_acc 12.5000 (1.2 s)"
                for e in (1, 2)]
    silent = io.StringIO()
    p = EpochProgress("retrain", "x", 1, 1, 1, False, silent)
    p.step(), p.epoch(1, {"train_loss": 1.0}, 1.0), p.close()
    assert silent.getvalue() == ""


@pytest.mark.slow
def test_search_and_retraining_print_one_line_per_epoch_to_a_file(tmp_path, cifar):
    out = tmp_path / "results"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "search.log"
    with open(log, "w") as f:
        r = subprocess.run([sys.executable, str(REPO / "benchmark" / "run.py"), "--methods", "darts",
                            "--spaces", "darts", "--seeds", "0", "--profile", "smoke", "--epochs", "2",
                            "--set", "train_subset=16", "--threads", "1", "--data", str(cifar),
                            "--out", str(out)], cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT,
                           timeout=600)
    text = log.read_text()
    assert r.returncode == 0, text[-3000:]
    assert "\r" not in text
    lines = [line for line in text.splitlines() if line.startswith("search darts/darts/seed-0: epoch")]
    assert [line.split(": ", 1)[1].split()[1] for line in lines] == ["1/2", "2/2"], text
    assert "train_loss" in lines[0] and "valid_acc" in lines[0] and lines[0].endswith(" s)")

    log = tmp_path / "retrain.log"
    with open(log, "w") as f:
        r = subprocess.run([sys.executable, "-m", "benchmark.retrain", "--run", str(out / "darts/darts/seed-0"),
                            "--profile", "smoke", "--epochs", "2", "--set", "train_subset=32",
                            "--set", "test_subset=32", "--threads", "1", "--data", str(cifar)],
                           cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=600)
    text = log.read_text()
    assert r.returncode == 0, text[-3000:]
    assert "\r" not in text
    lines = [line for line in text.splitlines() if line.startswith("retrain ") and ": epoch " in line]
    assert [line.split(": epoch ", 1)[1].split()[0] for line in lines] == ["1/2", "2/2"], text
    assert "test_acc" in lines[0]


# ----- all of it: ./run_all.sh with nothing set -----

SHIM = '''# test-only: torchvision's CIFAR10 md5s replaced by those of the test's archive
import json, os, sys
sys.path.insert(0, os.environ["FRONT_DOOR_REPO"])
spec = json.load(open(os.environ["FRONT_DOOR_ARCHIVE"]))
import benchmark.harness.data as data


def official():
    from torchvision.datasets import CIFAR10
    f = spec["files"]
    return type("TestArchiveCIFAR10", (CIFAR10,), dict(
        tgz_md5=spec["md5"], train_list=[[f"data_batch_{i}", f[f"data_batch_{i}"]] for i in range(1, 6)],
        test_list=[["test_batch", f["test_batch"]]], meta={**CIFAR10.meta, "md5": f["batches.meta"]}))


data.official_cifar10 = official
'''


@pytest.mark.slow
def test_run_all_on_a_fresh_machine(tmp_path):
    """./run_all.sh with no NAS_DATA / NAS_BENCHMARKS / TORCH_HOME and an empty HOME but for the
    test's archive in the default folder: the DARTS space is searched and retrained, each
    missing table is named with its command, progress is one line per epoch in the log. The
    subprocesses accept the test's archive through a sitecustomize module on PYTHONPATH (the
    test's only way into them); no network (the archive is there, so nothing is fetched)."""
    if not (REPO / ".venv/bin/python").exists():
        pytest.skip("no .venv in the repository root (run ./run_all.sh --tests to create it)")
    home = tmp_path / "home"
    written = write_cifar10_archive(home / ".cache/darts-repro/data/cifar-10-python.tar.gz")
    spec = tmp_path / "archive.json"
    spec.write_text(json.dumps({"md5": written["md5"], "files": written["files"]}))
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(SHIM)
    env = {k: v for k, v in os.environ.items() if k not in ("NAS_DATA", "NAS_BENCHMARKS", "TORCH_HOME")}
    env.update(HOME=str(home), PYTHONPATH=str(shim), FRONT_DOOR_REPO=str(REPO), FRONT_DOOR_ARCHIVE=str(spec))
    out, log = tmp_path / "results", tmp_path / "run_all.log"
    with open(log, "w") as f:
        r = subprocess.run([str(REPO / "run_all.sh"), "--profile", "smoke", "--methods", "darts", "--seeds", "0",
                            "--epochs", "1", "--threads", "1", "--out", str(out)],
                           cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=1200)
    text = log.read_text()
    assert r.returncode == 0, text[-3000:]
    lines = text.splitlines()
    bench = home / ".torch"
    assert lines[0] == "run_all: profile smoke: a tiny pipeline check (no verdicts, not a protocol)"
    assert lines[1:4] == [
        f"run_all: skipping nb201: no NAS-Bench-201 table in {bench}; get it with: "
        "python -m benchmark.prepare nb201 --source FILE",
        f"run_all: skipping nb1shot1-s1, nb1shot1-s2, nb1shot1-s3: no NAS-Bench-101 table in {bench}; "
        "get it with: python -m benchmark.prepare nb101 --download",
        "run_all: spaces: darts"]
    data = home / ".cache/darts-repro/data"
    assert f"note: extracting {data / 'cifar-10-python.tar.gz'} into {data / 'cifar-10-batches-py'}" in lines
    assert "\r" not in text
    epochs = [line.split(": epoch ")[0] + " " + line.split(": epoch ")[1].split()[0]
              for line in lines if ": epoch " in line]
    assert epochs[:3] == ["search darts/darts/seed-0 1/1", "retrain darts/darts/seed-0/retrain/seed-0 1/2",
                          "retrain darts/darts/seed-0/retrain/seed-0 2/2"], text
    # then the DARTS paper's selection (smoke sizes): the candidate's held-out training, the winner
    assert "retrain darts/darts/seed-0/retrain-select/seed-0 2/2" in epochs[3:], text
    assert (out / "darts/darts/selection.json").is_file()
    assert (out / "darts/darts/seed-0/retrain/seed-0/done.json").is_file()
    assert (out / "report/report.md").is_file()
