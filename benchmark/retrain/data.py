"""Data for retraining: the whole training set and the test set, normalised as the DARTS code
does, with cutout; CIFAR-10 from the same sources the searches read, CIFAR-100 from
torchvision's python archive.

CIFAR-10 (quark0/darts cnn/utils.py `_data_transforms_cifar10`): random crop 32 with 4 px
zero padding, horizontal flip, ToTensor, Normalize(CIFAR_MEAN, CIFAR_STD) with the constants
below, then Cutout(16) on the normalised tensor; test images only normalised.
CIFAR-100: the DARTS code has no CIFAR-100 script. Assumption (documented, in CIFAR100_MEAN/STD):
the same pipeline with the per-channel mean/std of the CIFAR-100 training images commonly used
by DARTS-family transfer code (0.5071, 0.4865, 0.4409) / (0.2673, 0.2564, 0.2762).
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmark.harness.data import DataError, _md5

# quark0/darts cnn/utils.py CIFAR_MEAN / CIFAR_STD (not the AutoDL constants the searches use).
CIFAR10_MEAN = (0.49139968, 0.48215827, 0.44653124)
CIFAR10_STD = (0.24703233, 0.24348505, 0.26158768)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
NORMALISATION = {"cifar10": (CIFAR10_MEAN, CIFAR10_STD), "cifar100": (CIFAR100_MEAN, CIFAR100_STD)}


@dataclass
class TrainTest:
    x_train: np.ndarray   # (N, 32, 32, 3) uint8
    y_train: np.ndarray   # (N,) int64
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    source: str
    md5: str              # of the training arrays (as the searches define it)
    official: bool = False   # read from md5-verified official torchvision files (harness/data.py)


def cutout(x: torch.Tensor, length: int, generator: torch.Generator) -> torch.Tensor:
    """Cutout (DeVries & Taylor 2017) as quark0/darts cnn/utils.py `Cutout` does it, on a whole
    batch at once: per image a centre (y, x) uniform over all pixels, the square rows
    [y - length//2, y + length//2) x the same columns, clipped to the image, set to 0 (in the
    normalised tensor: it runs after Normalize there too). Every image gets one square.

    Written here: torchvision's RandomErasing is not the same augmentation (it draws the
    rectangle's area and aspect ratio, keeps it wholly inside the image, applies it with
    probability p), and per-image transforms would cost a Python loop per image."""
    if length <= 0:
        return x
    b, _, h, w = x.shape
    cy = torch.randint(0, h, (b,), generator=generator).to(x.device)
    cx = torch.randint(0, w, (b,), generator=generator).to(x.device)
    half = length // 2
    rows = torch.arange(h, device=x.device)
    cols = torch.arange(w, device=x.device)
    in_rows = (rows[None, :] >= (cy - half)[:, None]) & (rows[None, :] < (cy + half)[:, None])
    in_cols = (cols[None, :] >= (cx - half)[:, None]) & (cols[None, :] < (cx + half)[:, None])
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])          # b, h, w
    return x * keep[:, None, :, :].to(x.dtype)


def load_cifar10_test(path: str | Path, download: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The 10k test images from the searches' CIFAR-10 source (.npz with x_test/y_test, or a
    torchvision root, filled first when `download`)."""
    path = Path(path).expanduser()
    if path.suffix == ".npz":
        try:
            with np.load(path) as z:
                x, y = z["x_test"], z["y_test"]
        except KeyError as e:
            raise DataError(f"{path} has no x_test/y_test arrays; retraining reports the test "
                            "error, so the archive needs them") from e
    else:
        from benchmark.harness.data import fetch_cifar10, official_cifar10
        if download:
            fetch_cifar10(path)
        try:
            ds = official_cifar10()(str(path), train=False, download=False)
        except RuntimeError as e:
            raise DataError(f"no CIFAR-10 test set under {path} ({e})") from e
        x, y = np.asarray(ds.data), np.asarray(ds.targets)
    if x.ndim != 4 or x.shape[1:] != (32, 32, 3) or x.dtype != np.uint8 or len(y) != len(x):
        raise DataError(f"{path}: expected x_test (N,32,32,3) uint8 and y_test (N,), got "
                        f"{x.shape} {x.dtype} and {np.shape(y)}")
    return x, np.asarray(y, dtype=np.int64)


def _cifar100_folder(root: Path) -> Path:
    for p in (root / "cifar-100-python", root):
        if (p / "train").is_file() and (p / "test").is_file():
            return p
    raise DataError(f"no CIFAR-100 under {root}: expected torchvision's python archive, "
                    f"{root}/cifar-100-python/train and .../test (pass its parent folder with --data)")


def read_cifar100_split(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One pickle of torchvision's CIFAR-100 python archive: b'data' (N, 3072) uint8 in CHW order,
    b'fine_labels' (the 100 classes) -> (N, 32, 32, 3) uint8, (N,) int64.

    Read directly rather than through torchvision.datasets.CIFAR100, which refuses any copy
    whose files' md5 differ from the official download (e.g. a test's tiny archive)."""
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
        data, labels = d[b"data"], d[b"fine_labels"]
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError) as e:
        raise DataError(f"{path} is not a CIFAR-100 python pickle with b'data' and "
                        f"b'fine_labels' ({type(e).__name__}: {e})") from e
    x = np.asarray(data, dtype=np.uint8)
    if x.ndim != 2 or x.shape[1] != 3072 or len(labels) != len(x):
        raise DataError(f"{path}: b'data' must be (N, 3072) with N labels, got {x.shape} and {len(labels)}")
    y = np.asarray(labels, dtype=np.int64)
    if len(y) and (y.min() < 0 or y.max() > 99):
        raise DataError(f"{path}: fine labels must lie in 0..99, got {y.min()}..{y.max()}")
    return np.ascontiguousarray(x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)), y


def load(dataset: str, path: str | Path, download: bool = False) -> TrainTest:
    path = Path(path).expanduser()
    if dataset == "cifar10":
        from benchmark.harness.worker import cached_data
        tr = cached_data(str(path), download)   # the searches' loader, once per process
        x_test, y_test = load_cifar10_test(path)   # the line above filled a root when `download`
        return TrainTest(tr.x_train, tr.y_train, x_test, y_test, 10, str(path), tr.md5, tr.official)
    if dataset == "cifar100":
        if not path.is_dir():
            raise DataError(f"--data {path}: the CIFAR-100 root must be a folder holding "
                            "cifar-100-python/ (torchvision's archive, extracted)")
        folder = _cifar100_folder(path)
        x, y = read_cifar100_split(folder / "train")
        xt, yt = read_cifar100_split(folder / "test")
        return TrainTest(x, y, xt, yt, 100, str(folder), _md5(x, y))
    raise DataError(f"unknown dataset {dataset!r}; valid: cifar10, cifar100")


def eval_batches(x: np.ndarray, y: np.ndarray, batch_size: int, mean, std, device):
    """The test set in order, normalised, no augmentation."""
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    for i in range(0, len(y), batch_size):
        xb = torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size])).permute(0, 3, 1, 2).float().div_(255)
        yield ((xb - m) / s).to(device), torch.from_numpy(y[i:i + batch_size]).to(device)


def holdout_split(n: int, holdout: int) -> tuple[slice, slice]:
    """(training images, validation images) of a selection run (profiles `select`): the first
    n - holdout images of the training set in its official order train, the LAST `holdout`
    validate; disjoint, together the whole training set, and no test image in either. No seed:
    the same split for every candidate and every rerun (its identity: valid_on=holdout,
    holdout=N and the data's md5). ValueError when nothing would be left to train on."""
    if not 1 <= holdout < n:
        raise ValueError(f"holdout={holdout}: must be at least 1 and less than the {n} training images")
    return slice(0, n - holdout), slice(n - holdout, n)
