"""CIFAR-10 for the search protocol: sources, the 25k/25k splits, and a batch stream.

Sources: an .npz with x_train, y_train, x_test, y_test (uint8 NHWC), or a torchvision root
folder (read by torchvision's CIFAR10, which checks every file's md5). A root is filled only
when asked (--download, or the default folder of benchmark/paths.py): torchvision's official
archive is downloaded once, its md5 checked, and extracted (`fetch_cifar10`). The data's
identity is the md5 of the training arrays, whatever file they came from. Arrays read from a
torchvision folder whose every file (the five training batches, the test batch, the metadata)
has the md5 torchvision's CIFAR10 class lists for the official archive are the official data:
`Cifar10.official`, recorded as `data_official: true` in the run's done.json (that md5 of the
arrays is then the official one; analysis/report.py). An .npz is never vouched for this way.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmark.errors import BenchmarkFileError

# AutoDL-Projects' CIFAR-10 normalisation (docs/reference/nb201.md#data).
MEAN = (125.3 / 255, 123.0 / 255, 113.9 / 255)
STD = (63.0 / 255, 62.1 / 255, 66.7 / 255)
SPLITS = ("official", "random-half", "contiguous", "random-10-90")
NUM_CLASSES = 10


class DataError(ValueError):
    """The dataset path is missing or unusable; the message says what to set."""


@dataclass
class Cifar10:
    x_train: np.ndarray  # (50000, 32, 32, 3) uint8
    y_train: np.ndarray  # (50000,) int64
    source: str
    md5: str
    official: bool = False   # read from files whose every md5 is torchvision's official one


def _md5(x: np.ndarray, y: np.ndarray) -> str:
    h = hashlib.md5()
    h.update(np.ascontiguousarray(x).tobytes())
    h.update(np.ascontiguousarray(y.astype(np.int64)).tobytes())
    return h.hexdigest()


def official_cifar10():
    """torchvision's CIFAR10 class: the official archive's URL, file name and md5, and every
    extracted file's md5 (`url`, `filename`, `tgz_md5`, `train_list`, `test_list`, `meta`).
    Tests substitute a subclass describing their own small archive."""
    from torchvision.datasets import CIFAR10
    return CIFAR10


def _file_md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def _extracted_ok(root: Path, official) -> bool:
    folder = root / official.base_folder
    files = [*official.train_list, *official.test_list, [official.meta["filename"], official.meta["md5"]]]
    return all((folder / name).is_file() and _file_md5(folder / name) == md5 for name, md5 in files)


def fetch_cifar10(root: str | Path, log=None) -> Path:
    """Make `root` a torchvision CIFAR-10 root, as torchvision's `download=True` does: nothing
    to do when root/cifar-10-batches-py/ holds the official files (md5 of each); else the official
    archive root/cifar-10-python.tar.gz, downloaded once when absent, its md5 checked, is
    extracted. An archive there whose md5 is not the official one is refused, never used or
    overwritten. Raises DataError saying what to do."""
    official = official_cifar10()
    root = Path(root).expanduser()
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    if _extracted_ok(root, official):
        return root
    archive = root / official.filename
    where = (f"copy torchvision's {official.filename} (md5 {official.tgz_md5}) into {root}, or "
             "point --data / NAS_DATA at a CIFAR-10 .npz or torchvision root")
    if archive.is_file():
        digest = _file_md5(archive)
        if digest != official.tgz_md5:
            raise DataError(f"{archive} has md5 {digest}, not the official {official.tgz_md5}: a "
                            "truncated or altered copy, not used. Delete it and run again to download "
                            f"it afresh from {official.url}, or point --data / NAS_DATA at another copy")
    else:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DataError(f"cannot create the CIFAR-10 folder {root} ({e.strerror}); point --data / "
                            "NAS_DATA at a writable folder or an existing copy") from None
        log(f"note: no CIFAR-10 in {root} yet: downloading {official.url} (about 170 MB, once)")
        try:
            _download(official.url, archive, official.tgz_md5)
        except (urllib.error.URLError, OSError) as e:  # HTTPError and timeouts are among these
            raise DataError(f"could not download CIFAR-10 from {official.url} ({type(e).__name__}: "
                            f"{getattr(e, 'reason', None) or e}); without a network, {where}") from None
    log(f"note: extracting {archive} into {root / official.base_folder}")
    _extract(archive, root, official.base_folder)
    if not _extracted_ok(root, official):
        raise DataError(f"{archive} has the official md5 but its files do not (a disk error?); delete "
                        f"{root / official.base_folder} and {archive}, and run again")
    return root


def _download(url: str, dest: Path, md5: str) -> None:
    """url -> dest through a private .part file, renamed only once its md5 is `md5`."""
    from benchmark.harness.progress import CountProgress
    part = dest.with_name(f"{dest.name}.part-{os.getpid()}")
    h = hashlib.md5()
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "darts-repro"})
        with urllib.request.urlopen(request, timeout=60) as r, open(part, "wb") as f:
            bar = CountProgress("download", int(r.headers.get("Content-Length") or 0) or None)
            try:
                while block := r.read(1 << 20):
                    f.write(block)
                    h.update(block)
                    bar.update(len(block))
            finally:
                bar.close()
        if h.hexdigest() != md5:
            raise DataError(f"the download from {url} has md5 {h.hexdigest()}, not the official "
                            f"{md5} (an interrupted or altered transfer); it was discarded: run again")
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)


def _extract(archive: Path, root: Path, folder: str) -> None:
    """archive's `folder`/ -> root/`folder`/, through a temporary folder (never half-written)."""
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=root))
    try:
        try:
            with tarfile.open(archive, "r:gz") as tf:
                # no links out, no absolute paths (the filter exists from Python 3.10.12 / 3.11.4)
                tf.extractall(tmp, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        except (tarfile.TarError, OSError, EOFError) as e:
            raise DataError(f"cannot extract {archive} ({type(e).__name__}: {e}); delete it and run "
                            "again") from None
        if not (tmp / folder).is_dir():
            raise DataError(f"{archive} holds no {folder}/ folder; delete it and run again")
        if (root / folder).exists():
            shutil.rmtree(root / folder)
        os.replace(tmp / folder, root / folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_cifar10(path: str | Path, download: bool = False) -> Cifar10:
    path = Path(path).expanduser()
    verified = False
    if path.suffix == ".npz":
        if not path.is_file():
            raise DataError(f"CIFAR-10 archive {path} does not exist; set --data or NAS_DATA "
                            "to an .npz file or a torchvision root folder")
        try:
            with np.load(path) as z:
                x, y = z["x_train"], z["y_train"]
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise DataError(f"{path} is not a CIFAR-10 .npz with x_train/y_train ({e}); "
                            "re-create it or point --data/NAS_DATA at another") from e
    else:
        if path.exists() and not path.is_dir():
            raise DataError(f"{path} is not an .npz file and not a folder; point --data/NAS_DATA "
                            "at a CIFAR-10 .npz (x_train, y_train, ...) or a torchvision root folder")
        if not path.is_dir() and not download:
            raise DataError(f"CIFAR-10 folder {path} does not exist; point --data/NAS_DATA at "
                            "an existing torchvision root or .npz, or add --download")
        if download:
            fetch_cifar10(path)
        official = official_cifar10()
        try:
            ds = official(str(path), train=True, download=False)
        except RuntimeError as e:
            raise DataError(f"no CIFAR-10 under {path} ({e}); add --download where the "
                            "network allows, or point --data at an .npz") from e
        x, y = np.asarray(ds.data), np.asarray(ds.targets, dtype=np.int64)
        # torchvision checked the batches' md5 to read them; every file, meta too, said here
        verified = _extracted_ok(path, official)
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{path}: y_train must hold CIFAR-10 labels, whole numbers 0..{NUM_CLASSES - 1}; "
                        f"got values of type {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= NUM_CLASSES):
        bad = y[(y < 0) | (y >= NUM_CLASSES)]
        raise DataError(f"{path}: y_train must hold CIFAR-10 labels, whole numbers 0..{NUM_CLASSES - 1}; "
                        f"{len(bad)} labels are outside, e.g. {int(bad[0])}")
    if x.shape != (50000, 32, 32, 3) or x.dtype != np.uint8 or y.shape != (50000,):
        raise DataError(f"{path}: expected x_train (50000,32,32,3) uint8 and y_train (50000,), "
                        f"got {x.shape} {x.dtype} and {y.shape}")
    return Cifar10(x, y.astype(np.int64), str(path), _md5(x, y),
                   official=path.suffix != ".npz" and verified)


def read_split_file(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The benchmark's cifar-split.txt: {"train": ["int", [..]], "valid": ["int", [..]]}."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
        train = np.array([int(i) for i in d["train"][1]], dtype=np.int64)
        valid = np.array([int(i) for i in d["valid"][1]], dtype=np.int64)
    except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
        raise BenchmarkFileError(
            f"split file {path} is not in the NB201 cifar-split.txt format "
            f'({{"train": ["int", [...]], "valid": ["int", [...]]}}): {type(e).__name__}: {e}') from e
    if len(np.intersect1d(train, valid)) or min(train.min(), valid.min()) < 0:
        raise BenchmarkFileError(f"split file {path}: halves overlap or hold negative indices")
    return train, valid


def find_split_file(benchmarks_dir: str | Path | None) -> Path | None:
    if benchmarks_dir is None:
        return None
    for rel in ("cifar-split.txt", "nasbench201/cifar-split.txt"):
        p = Path(benchmarks_dir) / rel
        if p.is_file():
            return p
    return None


def split_source(kind: str, seed: int, split_file: Path | str | None) -> str:
    """The description `make_split` gives (a config's `split_source`), without computing it."""
    if kind == "official":
        return f"official:{Path(split_file).name}" if split_file is not None else "official"
    if kind == "random-half":
        return f"random-half:seed={seed}"
    if kind == "contiguous":
        return "contiguous"
    if kind == "random-10-90":
        return f"random-10-90:seed={seed}"
    raise DataError(f"unknown split {kind!r}; valid: {', '.join(SPLITS)}")


def make_split(kind: str, n: int, seed: int, split_file: Path | None) -> tuple[np.ndarray, np.ndarray, str]:
    """(weights half, architecture half, description). `official` without a file is an error."""
    if kind == "official":
        if split_file is None:
            raise DataError("the profile asks for the official NB201 split but no cifar-split.txt "
                            "was found in --benchmarks/NAS_BENCHMARKS; add it there or pass "
                            "--set split=random-half")
        train, valid = read_split_file(split_file)
        if max(train.max(), valid.max()) >= n:
            raise BenchmarkFileError(f"split file {split_file} indexes past the {n} training images")
        return train, valid, split_source(kind, seed, split_file)
    if kind == "random-half":
        perm = np.random.default_rng(seed).permutation(n)
        return np.sort(perm[: n // 2]), np.sort(perm[n // 2:]), split_source(kind, seed, None)
    if kind == "contiguous":
        idx = np.arange(n)
        return idx[: n // 2], idx[n // 2:], split_source(kind, seed, None)
    if kind == "random-10-90":
        # BayesNAS/BayesNAS search/dataloader.py lines 107-112: a random 10% for the weights
        # epoch and the 90% left by a SECOND, independent random_split for the switch epoch, so
        # the two overlap (about 9% of the images are in both), as the authors' code has it.
        rng = np.random.default_rng(seed)
        first, second = rng.permutation(n), rng.permutation(n)
        return np.sort(first[: n // 10]), np.sort(second[n // 10:]), split_source(kind, seed, None)
    raise DataError(f"unknown split {kind!r}; valid: {', '.join(SPLITS)}")


class BatchStream:
    """Shuffled, augmented mini-batches of one half, reproducible from a torch.Generator.

    Written here rather than with DataLoader + PIL transforms: vectorised crop/flip on whole
    batches is several times faster on a CPU, and the generator's state is the stream's whole
    state, so a resumed run continues the exact same sequence.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, augment: bool,
                 generator: torch.Generator, device: torch.device | str = "cpu",
                 mean: tuple = MEAN, std: tuple = STD):
        self.x = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).contiguous()
        self.y = torch.from_numpy(y)
        self.batch_size, self.augment, self.gen, self.device = batch_size, augment, generator, device
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)

    def __len__(self) -> int:
        return (len(self.y) + self.batch_size - 1) // self.batch_size

    def with_options(self, batch_size: int, augment: bool, generator: torch.Generator) -> "BatchStream":
        """A stream over the same images (shared, not copied) with other settings."""
        other = copy.copy(self)
        other.batch_size, other.augment, other.gen = batch_size, augment, generator
        return other

    def _augment(self, xb: torch.Tensor) -> torch.Tensor:
        b = xb.shape[0]
        padded = torch.nn.functional.pad(xb, (4, 4, 4, 4))
        dx = torch.randint(0, 9, (b,), generator=self.gen)
        dy = torch.randint(0, 9, (b,), generator=self.gen)
        flip = torch.rand(b, generator=self.gen) < 0.5
        ar = torch.arange(32)
        rows = (dy[:, None] + ar[None, :])[:, None, :, None]          # b,1,32,1
        cols = dx[:, None] + ar[None, :]
        cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]  # b,1,1,32
        bi = torch.arange(b)[:, None, None, None]
        ci = torch.arange(3)[None, :, None, None]
        return padded[bi, ci, rows, cols]

    def __iter__(self):
        order = torch.randperm(len(self.y), generator=self.gen)
        for s in range(0, len(order), self.batch_size):
            idx = order[s:s + self.batch_size]
            xb = self.x[idx].float().div_(255)
            if self.augment:
                xb = self._augment(xb)
            xb = (xb - self.mean) / self.std
            yield xb.to(self.device, non_blocking=True), self.y[idx].to(self.device, non_blocking=True)


def endless(stream: BatchStream):
    """Batches of `stream` in pass after pass, each pass a new shuffle (a DataLoader iterator
    restarted when it runs out, as AutoDL's RANDOM-NAS `search_find_best` does)."""
    while True:
        yield from stream
