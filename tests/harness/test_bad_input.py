"""Bad input not covered by test_run_cli.py: each exits 2, says what to do, and loses nothing.

Also: a run folder written under another git commit or package version is the same run
(provenance changes, identity does not), so it resumes rather than being refused.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

import benchmark.harness.loop as loop
import benchmark.harness.worker as worker
from benchmark.harness import run_cli
from benchmark.harness.records import read_json, read_jsonl
from benchmark.harness.run_cli import build_parser, plan
from benchmark.harness.worker import execute

def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _results(tmp_path: Path) -> Path:
    """A results folder with earlier work in it (a run outside the grid being started)."""
    out = tmp_path / "results"
    run = out / "nb201" / "darts" / "seed-7"
    run.mkdir(parents=True)
    (run / "epochs.jsonl").write_text('{"epoch": 0}\n')
    (run / "config.json").write_text("{}")
    (out / "keep.txt").write_text("x")
    return out


def _bench(tmp_path: Path, benchmarks: Path, **files: bytes) -> Path:
    """A benchmarks folder: the real split file and CSV tables, with `files` replacing some."""
    b = tmp_path / "bench"
    b.mkdir()
    src = Path(benchmarks) / "nasbench201"
    for name in ("cifar-split.txt", "nb201_acc_200ep.csv"):
        (b / name).write_bytes((src / name).read_bytes())
    for name, data in files.items():
        (b / name.replace("_dot_", ".")).write_bytes(data)
    return b


def _run(args: list[str], cifar, benchmarks, out: Path):
    """run.py's main in this process (the data stays cached between cases): (exit code, stderr)."""
    import contextlib
    import io
    from types import SimpleNamespace
    argv = ["--methods", "darts", "--profile", "smoke", "--data", str(cifar), "--benchmarks",
            str(benchmarks), *args, "--out", str(out)]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = run_cli.main(argv)
        except SystemExit as e:  # argparse
            code = e.code
    return SimpleNamespace(returncode=code, stderr=err.getvalue(), stdout="")


def _check(r, out: Path, before: dict, *needles: str) -> None:
    assert r.returncode == 2, (r.stdout, r.stderr)
    for n in needles:
        assert n in r.stderr, r.stderr
    assert _snapshot(out) == before


@pytest.mark.parametrize("args,needle", [
    (["--profile", "papr"], "choose from 'paper', 'smoke'"),
    (["--seeds", "1-"], "not a seed or a range like 0-9"),
    (["--seeds=-3"], "not a seed or a range like 0-9"),
    (["--seeds", "1,,2"], "empty item; use e.g. 0-9,12"),
    (["--seeds", "a-b"], "not a seed"),
    (["--seeds", "2-1,4"], "run upwards"),
    (["--methods", "darts,"], None),  # a trailing comma is harmless: not an error
])
def test_names_profiles_and_seed_ranges(tmp_path, cifar, benchmarks, args, needle):
    out = _results(tmp_path)
    before = _snapshot(out)
    if needle is None:
        r = _run([*args, "--dry-run"], cifar, benchmarks, out)
        assert r.returncode == 0, r.stderr
        return
    _check(_run(args, cifar, benchmarks, out), out, before, needle)


def _truncated_csv(benchmarks: Path) -> bytes:
    data = (Path(benchmarks) / "nasbench201" / "nb201_acc_200ep.csv").read_bytes()
    return data[: len(data) // 2 - 7]  # cut mid-line, half the cells missing


@pytest.mark.parametrize("case", ["garbage parquet", "wrong parquet", "truncated csv",
                                  "garbage split in folder", "truncated split in folder"])
def test_bad_benchmark_files_in_the_benchmarks_folder(tmp_path, cifar, benchmarks, case):
    import pyarrow as pa
    import pyarrow.parquet as pq
    if case == "garbage parquet":
        bench, needles = _bench(tmp_path, benchmarks, nb201_dot_parquet=b"\x00garbage" * 100), \
            ("not a readable Parquet table", "benchmark.prepare nb201")
    elif case == "wrong parquet":
        pq.write_table(pa.table({"foo": [1, 2]}), tmp_path / "t.parquet")
        bench, needles = _bench(tmp_path, benchmarks, nb201_dot_parquet=(tmp_path / "t.parquet").read_bytes()), \
            ("missing columns",)
    elif case == "truncated csv":
        bench, needles = _bench(tmp_path, benchmarks, **{"nb201_acc_200ep_dot_csv": _truncated_csv(benchmarks)}), \
            ("nb201_acc_200ep.csv",)
    elif case == "garbage split in folder":
        bench, needles = _bench(tmp_path, benchmarks, **{"cifar-split_dot_txt": b"not json"}), \
            ("cifar-split.txt format",)
    else:
        split = (Path(benchmarks) / "nasbench201" / "cifar-split.txt").read_bytes()
        bench, needles = _bench(tmp_path, benchmarks, **{"cifar-split_dot_txt": split[: len(split) // 3]}), \
            ("cifar-split.txt",)
    out = _results(tmp_path)
    before = _snapshot(out)
    r = _run(["--benchmarks", str(bench), "--set", "train_subset=64"], cifar, benchmarks, out)
    _check(r, out, before, *needles, "replace or remove that file")


@pytest.mark.parametrize("content,needle", [
    (b"\x89PNG garbage", "cifar-split.txt format"),
    (b'{"train": ["int", ["0", "1"]], "valid": ["int", ["1", "2"]]}', "overlap"),
    (b'{"train": ["int", ["0", "1"]], "valid": ["int", ["60000"]]}', "indexes past"),
    (b'{"train": ["int", ["0", "1"]]}', "cifar-split.txt format"),
])
def test_bad_split_file_option(tmp_path, cifar, benchmarks, content, needle):
    split = tmp_path / "split.txt"
    split.write_bytes(content)
    out = _results(tmp_path)
    before = _snapshot(out)
    _check(_run(["--split-file", str(split)], cifar, benchmarks, out), out, before, needle)


def test_missing_split_file_option(tmp_path, cifar, benchmarks):
    out = _results(tmp_path)
    before = _snapshot(out)
    _check(_run(["--split-file", str(tmp_path / "nope.txt")], cifar, benchmarks, out), out, before,
           "no such file")


def test_bad_data_paths(tmp_path, cifar, benchmarks):
    out = _results(tmp_path)
    before = _snapshot(out)
    _check(_run(["--data", str(tmp_path / "no" / "folder")], cifar, benchmarks, out), out, before,
           "does not exist", "--download")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 truncated zip")
    _check(_run(["--data", str(bad)], cifar, benchmarks, out), out, before, "not a CIFAR-10 .npz")
    small = tmp_path / "small.npz"
    np.savez(small, x_train=np.zeros((10, 32, 32, 3), np.uint8), y_train=np.zeros(10, np.int64))
    _check(_run(["--data", str(small)], cifar, benchmarks, out), out, before, "expected x_train (50000")


def test_unwritable_results_folder(tmp_path, cifar, benchmarks):
    # root ignores permission bits, so use a path below a regular file: no one can create it
    blocker = tmp_path / "results.txt"
    blocker.write_text("earlier notes")
    r = _run(["--set", "train_subset=64"], cifar, benchmarks, blocker / "results")
    assert r.returncode == 2 and "not writable" in r.stderr and "choose another folder" in r.stderr
    assert blocker.read_text() == "earlier notes"


@pytest.mark.slow
def test_new_commit_or_package_version_is_provenance_not_identity(tmp_path, cifar, benchmarks,
                                                                  monkeypatch, capsys):
    argv = ["--methods", "darts", "--seeds", "0", "--epochs", "2", "--profile", "smoke", "--set",
            "train_subset=64", "--threads", "1", "--no-progress", "--out", str(tmp_path / "results"),
            "--data", str(cifar), "--benchmarks", str(benchmarks)]
    (job,) = plan(build_parser().parse_args(argv))
    record = loop._record

    def interrupted(rd, cfg, method, space, epoch, *rest, **kw):
        if epoch == 2:
            raise KeyboardInterrupt  # stands for a kill after the epoch-1 checkpoint
        return record(rd, cfg, method, space, epoch, *rest, **kw)

    monkeypatch.setattr(loop, "_record", interrupted)
    with pytest.raises(KeyboardInterrupt):
        execute(job)
    monkeypatch.setattr(loop, "_record", record)
    rd = tmp_path / "results" / "nb201" / "darts" / "seed-0"
    config = (rd / "config.json").read_bytes()

    # The same run continued by a newer checkout with other package versions.
    original = worker.provenance
    monkeypatch.setattr(worker, "_git_commit", lambda: "f" * 40)
    monkeypatch.setattr(worker, "provenance", lambda job: {**original(job), "torch": "99.0", "numpy": "9.9"})
    assert run_cli.main(argv) == 0
    assert "summary: 1 finished" in capsys.readouterr().out
    prov = read_json(rd / "provenance.json")
    assert len(prov) == 2 and prov[0]["git_commit"] != prov[1]["git_commit"] == "f" * 40
    assert prov[0]["torch"] != prov[1]["torch"] == "99.0"
    assert (rd / "config.json").read_bytes() == config
    assert [r["epoch"] for r in read_jsonl(rd / "epochs.jsonl")] == [0, 1, 2]


# ---- every config field, supernet argument and method option is checked before anything ----
@pytest.mark.parametrize("args,needles", [
    (["--set", "epochs=0"], ["epochs must be a whole number >= 1", "got 0"]),
    (["--set", "epochs=-2"], ["epochs must be a whole number >= 1"]),
    (["--set", "batch_size=0"], ["batch_size must be a whole number >= 1"]),
    (["--set", "batch_size=-4"], ["batch_size must be a whole number >= 1"]),
    (["--set", "w_lr=-0.1"], ["w_lr must be a number > 0"]),
    (["--set", "w_lr=nan"], ["w_lr must be a number > 0"]),
    (["--set", "w_lr_min=0.5"], ["w_lr_min must be a number in [0, w_lr=0.025]"]),
    (["--set", "w_momentum=1"], ["w_momentum must be a number in [0, 1)"]),
    (["--set", "w_momentum=0"], ["w_nesterov=true"]),
    (["--set", "w_weight_decay=-1"], ["w_weight_decay must be a number >= 0"]),
    (["--set", "a_lr=-0.1"], ["a_lr must be a number > 0"]),
    (["--set", "a_lr=abc"], ["--set a_lr: expected a number, got 'abc'"]),
    (["--set", "a_betas=[0.5]"], ["a_betas must be two numbers in [0, 1)"]),
    (["--set", "a_weight_decay=-1"], ["a_weight_decay must be a number >= 0"]),
    (["--set", "arch_init_std=-1"], ["arch_init_std must be a number >= 0"]),
    (["--set", "grad_clip=-1"], ["grad_clip must be a number > 0", "for no clipping"]),
    (["--set", "grad_clip=0"], ["grad_clip must be a number > 0"]),
    (["--set", "train_subset=-5"], ["train_subset must be none (the whole half) or a whole number >= 1"]),
    (["--set", "train_subset=0"], ["train_subset must be none"]),
    (["--set", "train_subset=25001"], ["train_subset must be at most 25000"]),
    (["--set", "train_subset=64", "--set", "split=contiguous", "--set", "train_subset=30000"],
     ["train_subset must be at most 25000", "contiguous"]),
    (["--set", "split=halves"], ["split must be one of official, random-half, contiguous"]),
    (["--set", "score_hp=13"], ["score_hp must be one of '12', '200'"]),
    (["--set", "hessian_every=-1"], ["hessian_every must be a whole number >= 0"]),
    (["--set", "supernet.foo=1"], ["supernet.foo: no such supernet argument", "valid: C, N"]),
    (["--set", "supernet.C=0"], ["supernet.C must be a whole number >= 1, got 0"]),
    (["--set", "supernet.N=-1"], ["supernet.N must be a whole number >= 1"]),
    (["--set", "supernet.affine=2"], ["supernet.affine"]),
    (["--set", "supernet.impl=slow"], ["supernet.impl must be one of 'reference', 'fast'"]),
    (["--set", "supernet.impl=reference", "--set", "supernet.bf16=true"],
     ["supernet.bf16: no such supernet argument"]),
    (["--set", "supernet.num_classes=100"], ["supernet.num_classes must be 10"]),
    (["--spaces", "nb1shot1-s1", "--set", "supernet.layers=0"], ["supernet.layers must be a whole number >= 1"]),
    (["--spaces", "nb1shot1-s1", "--set", "supernet.N=2"], ["supernet.N: no such supernet argument",
                                                          "valid: C, layers"]),
    (["--spaces", "nb1shot1-s1", "--set", "score_hp=12"], ["score_hp must be one of '200'"]),
    (["--methods", "balenas", "--set", "method.order=3"], ["method.order must be one of 1, 2"]),
    (["--methods", "balenas", "--set", "method.num_samples=0"], ["method.num_samples must be a whole number >= 1"]),
    (["--methods", "balenas-tf", "--set", "method.proxy=snip"], ["method.proxy must be one of"]),
    (["--methods", "random-ws", "--set", "method.num_candidates=0"], ["method.num_candidates"]),
    (["--methods", "random-ws", "--set", "method.rounds=0"], ["method.rounds must be a whole number >= 1"]),
    (["--methods", "random-ws", "--set", "method.sample_none=true"], ["method.sample_none=true needs a space"]),
    (["--methods", "sdarts-adv", "--set", "method.attack_steps=0"], ["method.attack_steps"]),
    (["--methods", "sdarts-rs", "--set", "method.epsilon_max=0.01"], ["method.epsilon_max must be a number in [epsilon_min"]),
    (["--methods", "bayesnas", "--set", "method.switch_lr=-1"], ["method.switch_lr must be a number > 0"]),
    (["--set", "seed=3"], ["seed is part of the run's name, set by --seeds"]),
    (["--set", "data_md5=x"], ["set by the data"]),
    (["--threads", "-1"], ["--threads must be at least 1"]),
    (["--threads", "0"], ["--threads must be at least 1"]),
    (["--epochs", "0"], ["--epochs must be at least 1"]),
    (["--max-loss", "0"], ["--max-loss must be a number > 0"]),
    (["--max-loss", "nan"], ["--max-loss must be a number > 0"]),
    (["--jobs", "0"], ["--jobs must be at least 1"]),
    (["--gpus-per-job", "-1"], ["--gpus-per-job must be 0 or more"]),
    (["--slurm-mem-gb", "0"], ["--slurm-mem-gb must be at least 1"]),
    (["--seeds", "0-2147483648"], ["seeds must be in 0..2147483647"]),
    (["--seeds", "0-999999,2000000-2000001"], ["at most 1,000,000 runs"]),
    (["--seeds", "0-999999", "--methods", "darts,darts-2nd"], ["the grid has 2,000,000 runs"]),
])
def test_bad_values_exit_2_before_anything_is_created(tmp_path, cifar, benchmarks, args, needles):
    out = _results(tmp_path)
    before = _snapshot(out)
    _check(_run([*args, "--dry-run"], cifar, benchmarks, out), out, before, *needles)  # dry run too
    _check(_run(args, cifar, benchmarks, out), out, before, *needles)
    fresh = tmp_path / "fresh"  # a results folder that does not exist yet is not created
    r = _run(args, cifar, benchmarks, fresh)
    assert r.returncode == 2 and not fresh.exists(), r.stderr


def test_unknown_setting_lists_only_what_can_be_set(tmp_path, cifar, benchmarks):
    out = _results(tmp_path)
    r = _run(["--set", "nonsense=1"], cifar, benchmarks, out)
    assert r.returncode == 2 and "unknown setting" in r.stderr
    valid = r.stderr.split("valid:")[1]
    assert "batch_size" in valid and "supernet.<arg>" in valid
    for name in ("seed", "space", "method", "profile", "data_md5", "split_source"):
        assert name not in valid.replace("supernet.", "").split(", "), valid


def test_data_that_is_neither_npz_nor_folder(tmp_path, cifar, benchmarks):
    out = _results(tmp_path)
    before = _snapshot(out)
    txt = tmp_path / "notnpz.txt"
    txt.write_text("hello")
    _check(_run(["--data", str(txt)], cifar, benchmarks, out), out, before,
           "not an .npz file and not a folder", "notnpz.txt")


@pytest.mark.parametrize("labels,needle", [
    (np.array([0, 3, 17, 9]), "1 labels are outside, e.g. 17"),
    (np.array([-1, 3]), "e.g. -1"),
    (np.array([0.0, 1.5]), "of type float64"),
])
def test_labels_outside_cifar10_classes(tmp_path, cifar, benchmarks, labels, needle):
    out = _results(tmp_path)
    before = _snapshot(out)
    bad = tmp_path / "labels.npz"
    np.savez(bad, x_train=np.zeros((len(labels), 32, 32, 3), np.uint8), y_train=labels)
    _check(_run(["--data", str(bad)], cifar, benchmarks, out), out, before,
           str(bad), "y_train must hold CIFAR-10 labels, whole numbers 0..9", needle)


def test_every_method_option_is_checked():
    """A wrong type and a negative value are refused for every option of every method (an
    option added without a check fails here), each naming `method.<option>`; a switch
    (a true/false option) refuses anything but a bool."""
    import dataclasses
    from methods.registry import available, get_method
    for name in available():
        options = get_method(name).Options
        options()  # the defaults are valid
        for f in dataclasses.fields(options):
            switch = isinstance(f.default, bool)
            for value in ("x", -1, 2 if switch else True):
                with pytest.raises(ValueError, match=rf"method\.{f.name} must be"):
                    options(**{f.name: value})


def test_score_hps_match_the_table():
    from benchmark.tabular import nb101_scorer, nb201_scorer
    from benchmark.tabular.nb201_table import HPS
    assert nb201_scorer.HPS == HPS and nb101_scorer.HPS == ("200",)
