"""Retraining of DARTS-space genotypes (benchmark/retrain): protocol values, cutout, drop-path
and learning-rate schedules, input validation, CIFAR-100 reader, kill/resume."""
from __future__ import annotations

import json
import math
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.harness.records import read_jsonl, strip_timing
from benchmark.retrain import cli, profiles
from benchmark.retrain.data import cutout, load, read_cifar100_split

REPO = Path(__file__).resolve().parents[2]
TINY = ["--profile", "smoke", "--threads", "1", "--no-progress", "--set", "train_subset=64",
        "--set", "test_subset=32", "--set", "batch_size=32"]


def test_paper_profile_is_the_darts_evaluation_protocol():
    """quark0/darts cnn/train.py defaults with --auxiliary --cutout."""
    c = profiles.resolve("G", 0, "paper")
    assert (c.epochs, c.batch_size, c.lr, c.lr_min, c.momentum, c.weight_decay) == (600, 96, 0.025, 0.0, 0.9, 3e-4)
    assert (c.grad_clip, c.cutout_length, c.drop_path_prob) == (5.0, 16, 0.2)
    assert (c.auxiliary, c.auxiliary_weight, c.C, c.layers) == (True, 0.4, 36, 20)
    assert c.train_subset is None and c.test_subset is None and c.dataset == "cifar10"
    s = profiles.resolve("G", 0, "smoke")
    assert s.epochs <= 3 and s.train_subset <= 512 and s.C < 36 and s.layers < 20
    # --epochs and --set apply in that order, typed
    o = profiles.resolve("G", 1, "paper", epochs=10, sets=["lr=0.05", "auxiliary=false", "test_subset=none"])
    assert (o.epochs, o.lr, o.auxiliary, o.test_subset, o.seed) == (10, 0.05, False, None, 1)


def test_drop_path_ramps_linearly_from_zero():
    cfg = profiles.resolve("G", 0, "paper", epochs=4)
    assert [profiles.drop_path_at(cfg, e) for e in (1, 2, 3, 4)] == pytest.approx([0, 0.05, 0.1, 0.15])
    paper = profiles.resolve("G", 0, "paper")
    assert profiles.drop_path_at(paper, 600) == pytest.approx(0.2 * 599 / 600)


def _reference_cutout(img: np.ndarray, cy: int, cx: int, length: int) -> np.ndarray:
    """quark0/darts utils.Cutout on one CHW image, with the centre given."""
    h, w = img.shape[1:]
    mask = np.ones((h, w), np.float32)
    y1, y2 = np.clip(cy - length // 2, 0, h), np.clip(cy + length // 2, 0, h)
    x1, x2 = np.clip(cx - length // 2, 0, w), np.clip(cx + length // 2, 0, w)
    mask[y1:y2, x1:x2] = 0
    return img * mask[None]


def test_cutout_equals_the_per_image_reference():
    x = torch.rand(64, 3, 32, 32) + 0.5   # no zeros of its own
    g = torch.Generator().manual_seed(3)
    state = g.get_state()
    out = cutout(x, 16, g)
    g.set_state(state)                     # the same centres, as cutout draws them
    cy = torch.randint(0, 32, (64,), generator=g)
    cx = torch.randint(0, 32, (64,), generator=g)
    for i in range(64):
        ref = _reference_cutout(x[i].numpy(), int(cy[i]), int(cx[i]), 16)
        np.testing.assert_array_equal(out[i].numpy(), ref)
    zeros = (out[:, 0] == 0).sum(dim=(1, 2))
    assert zeros.max() == 256 and zeros.min() >= 64   # a full 16x16 square, or clipped at a corner
    assert torch.equal(cutout(x, 0, g), x)


def test_cutout_square_at_a_known_centre():
    g = torch.Generator()
    x = torch.ones(1, 1, 8, 8)
    # find a seed whose centre is (1, 6): the square is clipped at the top and the right
    for seed in range(500):
        g.manual_seed(seed)
        cy, cx = torch.randint(0, 8, (1,), generator=g), torch.randint(0, 8, (1,), generator=g)
        if (int(cy), int(cx)) == (1, 6):
            break
    g.manual_seed(seed)
    out = cutout(x, 4, g)[0, 0]
    expect = torch.ones(8, 8)
    expect[0:3, 4:8] = 0   # rows [1-2, 1+2) clipped to [0, 3), columns [4, 8)
    assert torch.equal(out, expect)


def _write_cifar100(root: Path, n_train: int = 48, n_test: int = 16) -> tuple[np.ndarray, list[int]]:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    out = None
    for name, n in (("train", n_train), ("test", n_test)):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 100, n)]
        with open(folder / name, "wb") as f:  # the layout of torchvision's python archive
            pickle.dump({b"filenames": [b"x.png"] * n, b"fine_labels": labels,
                         b"coarse_labels": [0] * n, b"data": data, b"batch_label": b"training"}, f)
        out = out or (data, labels)
    return out


def test_cifar100_reader_on_a_written_archive(tmp_path):
    data, labels = _write_cifar100(tmp_path)
    x, y = read_cifar100_split(tmp_path / "cifar-100-python" / "train")
    assert x.shape == (48, 32, 32, 3) and x.dtype == np.uint8 and y.tolist() == labels
    # CHW rows of 3072 -> HWC: pixel (r, c) of channel k is data[k*1024 + r*32 + c]
    assert x[5, 7, 9, 2] == data[5, 2 * 1024 + 7 * 32 + 9] and x[0, 31, 0, 1] == data[0, 1024 + 31 * 32]
    d = load("cifar100", tmp_path)
    assert d.num_classes == 100 and len(d.y_test) == 16
    (tmp_path / "bad").mkdir()
    with pytest.raises(ValueError, match="cifar-100-python"):
        load("cifar100", tmp_path / "bad")


def test_cifar100_retraining_end_to_end(tmp_path):
    _write_cifar100(tmp_path / "c100")
    out = tmp_path / "out"
    rc = cli.main(["--genotype", "DARTS_V1", "--dataset", "cifar100", "--data", str(tmp_path / "c100"),
                   "--out", str(out), "--epochs", "1", *TINY])
    assert rc == 0
    run = out / "retrain-cifar100" / "darts" / "DARTS_V1" / "seed-0"
    done = json.loads((run / "done.json").read_text())
    assert done["dataset"] == "cifar100" and done["test_images"] == 16
    ck = torch.load(run / "checkpoint.pt", weights_only=False)
    assert ck["model"]["classifier.weight"].shape[0] == 100


@pytest.mark.parametrize("args, names", [
    (["--set", "lr=-1"], "lr"),
    (["--set", "drop_path_prob=1"], "drop_path_prob"),
    (["--set", "cutout_length=40"], "cutout_length"),
    (["--set", "layers=2"], "layers"),
    (["--set", "momentum=x"], "momentum"),
    (["--set", "nosuch=1"], "nosuch"),
    (["--epochs", "0"], "--epochs"),
    (["--seeds", "3-1"], "--seeds"),
])
def test_bad_values_exit_2_before_anything_is_created(tmp_path, capsys, args, names):
    out = tmp_path / "out"
    rc = cli.main(["--genotype", "DARTS_V2", "--profile", "smoke", "--out", str(out), "--data", "x.npz", *args])
    err = capsys.readouterr().err
    assert rc == 2 and names in err and not out.exists(), err


def test_bad_genotypes_and_runs_exit_2(tmp_path, capsys):
    assert cli.main(["--genotype", "Genotype(normal=[])", "--out", str(tmp_path / "o")]) == 2
    assert "--genotype" in capsys.readouterr().err
    assert cli.main(["--run", str(tmp_path / "nope")]) == 2
    assert "done.json" in capsys.readouterr().err
    assert cli.main(["--results", str(tmp_path), "--spaces", "nb201"]) == 2
    assert "--spaces" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_results_finds_finished_runs_only(tmp_path, capsys, cifar):
    from spaces.darts import DARTS_V1
    done_run = tmp_path / "darts" / "darts" / "seed-0"
    done_run.mkdir(parents=True)
    (done_run / "done.json").write_text(json.dumps({"genotype": DARTS_V1, "epochs": 0}))
    (done_run / "config.json").write_text(json.dumps({"space": "darts", "method": "darts", "seed": 0,
                                                      "epochs": 0, "profile": "smoke"}))
    (done_run / "epochs.jsonl").write_text(json.dumps({"epoch": 0, "genotype": DARTS_V1}) + "\n")
    (tmp_path / "darts" / "darts" / "seed-1").mkdir()   # unfinished
    rc = cli.main(["--results", str(tmp_path), "--seeds", "0-1", "--profile", "smoke", "--data", str(cifar),
                   "--dry-run"])
    out = capsys.readouterr()
    assert rc == 0 and "1 unfinished" in out.err
    folders = [line.split(" ", 1)[0] for line in out.out.splitlines()]
    assert folders == [str(done_run / "retrain" / f"seed-{r}") for r in (0, 1)]
    assert json.loads(out.out.splitlines()[0].split(" ", 1)[1])["genotype"] == DARTS_V1


def test_darts_scorer_says_how_to_score():
    from benchmark.harness.scoring import SCORERS
    from benchmark.retrain import scorer
    assert SCORERS["darts-train"] == "benchmark.retrain.scorer:load"
    fn, msg = scorer.load(None, None, "200")
    assert fn is None and "python -m benchmark.retrain" in msg


def _args(out: Path, data: Path) -> list[str]:
    return ["--genotype", "DARTS_V2", "--out", str(out), "--data", str(data), "--epochs", "3", *TINY,
            "--set", "C=2", "--set", "layers=3"]


@pytest.fixture
def keep_threads():
    n = torch.get_num_threads()   # --threads 1 sets it in this process
    yield
    torch.set_num_threads(n)


@pytest.mark.slow
def test_kill_and_resume_gives_identical_records(tmp_path, fast_cifar, keep_threads):
    """An uninterrupted run (here), a run SIGKILLed once its first checkpoint exists (a
    subprocess), resumed (here): the records minus timing are identical."""
    run = Path("retrain") / "darts" / "DARTS_V2" / "seed-0"
    assert cli.main(_args(tmp_path / "a", fast_cifar)) == 0
    ref = read_jsonl(tmp_path / "a" / run / "epochs.jsonl")
    assert [r["epoch"] for r in ref] == [1, 2, 3]
    # the DARTS schedules, as recorded: lr cosine from 0.025 (eta_min 0), drop path 0.2 * (e-1)/3
    assert [r["lr"] for r in ref] == pytest.approx([0.025 * (1 + math.cos(math.pi * e / 3)) / 2 for e in range(3)])
    assert [r["drop_path_prob"] for r in ref] == pytest.approx([0, 0.2 / 3, 0.4 / 3])

    b = tmp_path / "b"
    p = subprocess.Popen([sys.executable, "-m", "benchmark.retrain", *_args(b, fast_cifar)], cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    records = b / run / "epochs.jsonl"
    deadline = time.time() + 300
    checkpoint = b / run / "checkpoint.pt"   # written (atomically) after each epoch's record
    while time.time() < deadline and not checkpoint.exists() and p.poll() is None:
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not (b / run / "done.json").exists(), "killed too late: the run had finished"
    assert checkpoint.exists() and 1 <= len(read_jsonl(records)) < 3   # the rerun resumes
    assert cli.main(_args(b, fast_cifar)) == 0
    got = read_jsonl(records)
    assert [strip_timing(r) for r in got] == [strip_timing(r) for r in ref]
    prov = json.loads((b / run / "provenance.json").read_text())
    assert len(prov) == 2   # one entry per start
    da, db = (json.loads((d / run / "done.json").read_text()) for d in (tmp_path / "a", b))
    assert da["test_error"] == db["test_error"] and da["params"] == db["params"]


def test_benchmark_score_skips_darts_runs(tmp_path, capsys):
    """`python -m benchmark.score` leaves DARTS-space runs unscored and says how to score them."""
    from spaces import available
    if "darts" not in available():
        pytest.skip("the darts space is not registered in this checkout")
    from benchmark.harness import scoring
    from benchmark.harness.config import SearchConfig
    from spaces.darts import DARTS_V2
    run = tmp_path / "darts" / "darts" / "seed-0"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(SearchConfig("darts", "darts", 0, "smoke").to_json()))
    (run / "epochs.jsonl").write_text(json.dumps({"epoch": 0, "genotype": DARTS_V2}) + "\n")
    assert scoring.main(["--results", str(tmp_path)]) == 0
    assert "python -m benchmark.retrain" in capsys.readouterr().err
    assert json.loads((run / "epochs.jsonl").read_text()) == {"epoch": 0, "genotype": DARTS_V2}


@pytest.mark.slow
def test_retraining_runs_through_the_local_pool(tmp_path, fast_cifar, keep_threads):
    """--jobs 2 (a joblib process pool, the searches' backend) gives the records of a run in
    this process."""
    tiny = ["--epochs", "1", "--set", "C=2", "--set", "layers=3"]
    assert cli.main(["--genotype", "DARTS_V1", "--seeds", "0-1", "--jobs", "2", "--data", str(fast_cifar),
                     "--out", str(tmp_path / "pool"), *TINY, *tiny]) == 0
    assert cli.main(["--genotype", "DARTS_V1", "--seeds", "1", "--data", str(fast_cifar),
                     "--out", str(tmp_path / "here"), *TINY, *tiny]) == 0
    run = Path("retrain") / "darts" / "DARTS_V1"
    assert (tmp_path / "pool" / run / "seed-0" / "done.json").exists()
    pool, here = (read_jsonl(d / run / "seed-1" / "epochs.jsonl") for d in (tmp_path / "pool", tmp_path / "here"))
    assert [strip_timing(r) for r in pool] == [strip_timing(r) for r in here]
