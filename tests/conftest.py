"""Locations of the shared data for tests: NAS_DATA / NAS_BENCHMARKS, else ../shared beside the repo."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def cifar_path() -> Path:
    return Path(os.environ.get("NAS_DATA") or SHARED_DATA / "cifar10" / "cifar10.npz")


def benchmarks_path() -> Path:
    return Path(os.environ.get("NAS_BENCHMARKS") or SHARED_DATA)


@pytest.fixture(scope="session")
def cifar() -> Path:
    p = cifar_path()
    if not p.exists():
        pytest.skip(f"CIFAR-10 not found at {p}: set NAS_DATA to the shared cifar10.npz")
    return p


@pytest.fixture(scope="session")
def benchmarks() -> Path:
    p = benchmarks_path()
    if not (p / "nasbench201" / "cifar-split.txt").exists() and not (p / "cifar-split.txt").exists():
        pytest.skip(f"NB201 split/tables not found under {p}: set NAS_BENCHMARKS to the shared data folder")
    return p


@pytest.fixture
def one_thread():
    """torch on one thread for the test (small float64 passes: thread start-up dominates on a
    shared CPU); the previous count afterwards. Modules opt in with
    `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def fast_cifar(cifar, tmp_path_factory) -> Path:
    """The same arrays (same md5) as an uncompressed .npz: a run.py process then starts in a
    fraction of the time, which matters for tests that restart it many times."""
    import numpy as np
    path = tmp_path_factory.mktemp("data") / "cifar10.npz"
    with np.load(cifar) as z:
        np.savez(path, **{k: z[k] for k in z.files})
    return path


# ----- devices: tests that take a `device` run on the CPU and, where present, on CUDA -----
DEVICES = ("cpu", "cuda")  # a device test's cases; 'cuda' skips, with the reason, without CUDA


def cuda_skip_reason() -> str | None:
    import torch
    if not torch.cuda.is_available():
        return (f"no CUDA device (torch {torch.__version__}, built for CUDA {torch.version.cuda}): "
                "run on a GPU machine, e.g. python -m benchmark.measure.gpu_check --part correctness")
    return None


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: runs searches, retrainings or subprocesses; the edit-test loop "
        "deselects them with -m 'not slow' (the full suite, ./run_all.sh --tests, runs them)")
    config.addinivalue_line(
        "markers", "device: runs on each of DEVICES (cpu; cuda, skipped without a CUDA device); "
        "`pytest -m device` selects the CUDA correctness checks")
    config.addinivalue_line("markers", "slow: runs searches or subprocesses; deselect with -m 'not slow'")


@pytest.fixture
def no_network(monkeypatch) -> list[str]:
    """The network is off: urlopen of anything but a file:// URL, and any socket connection,
    raise URLError (as on a machine without internet). Returns the URLs that were tried."""
    import socket
    import urllib.error
    import urllib.request
    tried: list[str] = []
    real_urlopen = urllib.request.urlopen

    def urlopen(url, *args, **kwargs):
        full = url.full_url if isinstance(url, urllib.request.Request) else str(url)
        if full.startswith("file:"):
            return real_urlopen(url, *args, **kwargs)
        tried.append(full)
        raise urllib.error.URLError("network disabled in tests")

    def connect(self, address, *args):
        tried.append(repr(address))
        raise urllib.error.URLError("network disabled in tests")
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(socket.socket, "connect", connect)
    return tried


def pytest_generate_tests(metafunc):
    """A test with a `device` argument is parametrised over DEVICES and marked `device`;
    its cuda case skips with the reason where no CUDA device is present."""
    if "device" in metafunc.fixturenames:
        reason = cuda_skip_reason()
        params = [pytest.param(d, id=d, marks=[pytest.mark.device] + (
            [pytest.mark.skip(reason=reason)] if d == "cuda" and reason else [])) for d in DEVICES]
        metafunc.parametrize("device", params)
