"""Official CIFAR-10 gets a verdict: arrays read from torchvision's files, every file's md5 the
one torchvision lists, are recorded as the official data (done.json `data_official`), and the
report treats every run with that md5 as official; an .npz copy is never vouched for this way,
and a lossy one (another md5) stays "not the official data".

The archive is the test's own (tests/end_to_end/test_front_door.py `write_cifar10_archive`),
described to torchvision by a subclass in place of benchmark.harness.data.official_cifar10, as
there; no network."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.harness import data as data_mod
from benchmark.harness.data import _md5, fetch_cifar10, load_cifar10
from tests.conftest import benchmarks_path
from tests.end_to_end.test_front_door import described_by, write_cifar10_archive


@pytest.fixture
def official_folder(tmp_path, monkeypatch, no_network) -> tuple[Path, dict]:
    """A torchvision root holding the test's archive, extracted, accepted as the official one."""
    root = tmp_path / "cifar"
    written = write_cifar10_archive(root / "cifar-10-python.tar.gz")
    monkeypatch.setattr(data_mod, "official_cifar10", lambda: described_by(written))
    fetch_cifar10(root, log=lambda msg: None)
    from benchmark.harness.worker import cached_data
    cached_data.cache_clear()
    yield root, written
    cached_data.cache_clear()


def _npz(path: Path, written: dict, lossy: bool = False) -> Path:
    x = written["x_train"].copy()
    if lossy:   # as a JPEG round trip would: some pixels one step off
        x[:, 0, 0, 0] ^= 1
    np.savez(path, x_train=x, y_train=written["y_train"], x_test=x[:10000], y_test=written["y_train"][:10000])
    return path


def test_only_md5_verified_torchvision_files_are_the_official_data(official_folder, tmp_path):
    root, written = official_folder
    d = load_cifar10(root)
    assert d.official and d.md5 == _md5(written["x_train"], written["y_train"])
    same = load_cifar10(_npz(tmp_path / "same.npz", written))
    assert not same.official and same.md5 == d.md5        # same arrays: same identity, not vouched for
    # a folder whose files are not torchvision's official ones is refused by torchvision
    (root / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"altered")
    with pytest.raises(data_mod.DataError):
        load_cifar10(root)


def _search(out: Path, data: Path) -> Path:
    """One NB201 smoke run of darts (1 epoch, 32 images a half) through the real worker."""
    from benchmark.harness.config import resolve_config
    from benchmark.harness.data import find_split_file, make_split
    from benchmark.harness.grid import RunSpec
    from benchmark.harness.worker import Job, cached_data, execute
    split = find_split_file(benchmarks_path())
    if split is None:
        pytest.skip("no cifar-split.txt: set NAS_BENCHMARKS")
    cfg = resolve_config("nb201", "darts", 0, "smoke", 1, ["train_subset=32"])
    loaded = cached_data(str(data))
    cfg = dataclasses.replace(cfg, data_md5=loaded.md5,
                              split_source=make_split(cfg.split, len(loaded.y_train), 0, split)[2])
    job = Job(RunSpec("nb201", "darts", 0), cfg, str(out), str(data), str(benchmarks_path()), str(split),
              device="cpu", progress=False, log="none")
    assert execute(job).status == "finished"
    return out / "nb201" / "darts" / "seed-0"


@pytest.mark.slow
def test_a_run_on_the_official_files_gets_verdicts_an_npz_copy_does_not(official_folder, tmp_path):
    from analysis.report import build
    from benchmark.harness.worker import cached_data
    root, written = official_folder
    run = _search(tmp_path / "official", root)
    done = json.loads((run / "done.json").read_text())
    assert done["data_official"] is True
    config = json.loads((run / "config.json").read_text())
    assert "data_official" not in config                   # identities unchanged

    cached_data.cache_clear()
    copy = _search(tmp_path / "copy", _npz(tmp_path / "same.npz", written))
    assert "data_official" not in json.loads((copy / "done.json").read_text())
    assert json.loads((copy / "config.json").read_text()) == config   # the same run, by identity

    cached_data.cache_clear()
    lossy = _search(tmp_path / "lossy", _npz(tmp_path / "lossy.npz", written, lossy=True))
    assert json.loads((lossy / "config.json").read_text())["data_md5"] != config["data_md5"]

    def report(results: Path) -> tuple[str, pd.DataFrame]:
        md = build(results, results / "report").read_text()
        t = pd.read_csv(results / "report" / "tables" / "published_vs_reproduced.csv", keep_default_na=False)
        return md, t[(t.method == "darts") & (t.our_row != "")]

    md, t = report(tmp_path / "official")
    assert "NON-OFFICIAL" not in md.splitlines()[0] and "every file's md5 checked" in md
    assert len(t) and not t.why.str.contains("official data").any()
    assert t.why.str.contains("not the paper profile").all()   # a smoke run: no verdict for that
    # the npz copy of the same arrays: the same data (its md5 is the official one, once known)
    # only where a run in the same results read the official files
    md, t = report(tmp_path / "copy")
    assert md.splitlines()[0].endswith("NON-OFFICIAL DATA COPY (trend check, not a reproduction)")
    assert t.why.str.contains("not the official data").all()
    md, t = report(tmp_path / "lossy")
    assert "NON-OFFICIAL" in md.splitlines()[0] and t.why.str.contains("not the official data").all()


@pytest.mark.slow
def test_a_retraining_on_the_official_files_records_it(official_folder, tmp_path):
    from benchmark.retrain import cli
    from tests.retrain.test_retrain import TINY
    root, written = official_folder
    for data, out in ((root, tmp_path / "a"), (_npz(tmp_path / "same.npz", written), tmp_path / "b")):
        assert cli.main(["--genotype", "DARTS_V2", "--data", str(data), "--out", str(out), "--epochs", "1",
                         *TINY, "--set", "C=2", "--set", "layers=3"]) == 0
    a, b = (json.loads((o / "retrain" / "darts" / "DARTS_V2" / "seed-0" / "done.json").read_text())
            for o in (tmp_path / "a", tmp_path / "b"))
    assert a["data_official"] is True and "data_official" not in b
