"""`python -m benchmark.prepare nb201 --source FILE_OR_DIR [--out DIR]` -> DIR/nb201.parquet.

Sources:
  * official NAS-Bench-201 `.pth` (v1_0 / v1_1) through nas_201_api;
  * NATS-Bench topology (`tss`) archive dir (fast_mode) or pickle file through nats_bench;
  * the shared CSV layout (a dir, or the 200-epoch CSV file).
Every query passes hp ('12', '200') and is_random=False explicitly: the APIs' defaults
(hp='12', is_random=True) silently change numbers.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import math
import sys
from pathlib import Path
from typing import Any

from benchmark.errors import BenchmarkFileError
from benchmark.tabular.nb201_table import (ACC_COLUMNS, COST_COLUMNS, CSV_12, CSV_200, HPS, N_CELLS,
                                   TABLE_FILE, NB201Table, default_benchmarks_dir)

EXIT_OK, EXIT_BAD_INPUT = 0, 2
CONVERTER = "benchmark.tabular.nb201_convert"

# metric -> (API dataset key, get_more_info key); see docs/reference/nb201.md#querying-the-table
METRIC_SOURCES: dict[str, tuple[str, str]] = {
    "cifar10_valid": ("cifar10-valid", "valid-accuracy"),
    "cifar10_test": ("cifar10", "test-accuracy"),
    "cifar100_valid": ("cifar100", "valid-accuracy"),
    "cifar100_test": ("cifar100", "test-accuracy"),
    "imagenet16_valid": ("ImageNet16-120", "valid-accuracy"),
    "imagenet16_test": ("ImageNet16-120", "test-accuracy"),
}
COST_DATASET = "cifar10-valid"  # costs of the runs NAS searches simulate (10 classes)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True, metavar="FILE_OR_DIR",
                        help="NAS-Bench-201-v1_[01]-*.pth, a NATS-Bench tss archive dir "
                             "(e.g. NATS-tss-v1_0-3ffb9-simple) or pickle file, or the CSV "
                             f"layout (a dir with {CSV_200} [+ {CSV_12}], or that file)")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help=f"directory for {TABLE_FILE} (default: $NAS_BENCHMARKS, else "
                             "$TORCH_HOME, else ~/.torch)")
    parser.add_argument("--allow-partial", action="store_true",
                        help=f"accept fewer than {N_CELLS} cells (tests, tiny files)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    source = Path(args.source).expanduser()
    out_dir = Path(args.out).expanduser() if args.out else default_benchmarks_dir()
    if not source.exists():
        print(f"error: --source {source} does not exist. Give the official NAS-Bench-201 .pth, "
              "a NATS-Bench tss archive dir, or the CSV layout.", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        table = convert(source, allow_partial=args.allow_partial, progress=not args.no_progress)
    except BenchmarkFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        path = table.save(out_dir / TABLE_FILE)
    except OSError as exc:
        print(f"error: cannot write {out_dir / TABLE_FILE} ({exc}); choose another --out",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"wrote {path} ({len(table)} cells, {path.stat().st_size / 1e6:.1f} MB); "
          f"use it with NAS_BENCHMARKS={out_dir}")
    return EXIT_OK


def detect_source(source: Path) -> str:
    """'csv', 'nb201_pth', 'nats_dir' or 'nats_file'."""
    if source.is_dir():
        if (source / CSV_200).is_file() or (source / "nasbench201" / CSV_200).is_file():
            return "csv"
        if any((source / f"meta.{ext}").is_file() for ext in ("pickle.pbz2", "pickle")):
            return "nats_dir"
        raise BenchmarkFileError(source, f"directory holds neither {CSV_200} nor a NATS-Bench "
                                         "archive (meta.pickle.pbz2)")
    name = source.name
    if name.endswith(".csv"):
        if name == CSV_12:
            raise BenchmarkFileError(source, f"the 12-epoch CSV alone is not enough; pass {CSV_200} "
                                             "or their directory")
        return "csv"
    if name.endswith(".pth"):
        return "nb201_pth"
    if name.endswith((".pickle.pbz2", ".pickle")):
        return "nats_file"
    raise BenchmarkFileError(source, "unknown source type; expected a .pth (NAS-Bench-201), a "
                                     "NATS-Bench tss archive/pickle, or the CSV layout")


def convert(source: Path, *, allow_partial: bool = False, progress: bool = True) -> NB201Table:
    kind = detect_source(source)
    if kind == "csv":
        return _from_csv(source, allow_partial)
    if kind == "nb201_pth":
        api, version = _open_nb201_pth(source), _version("nas_201_api")
    else:
        api, version = _open_nats(source, fast_mode=(kind == "nats_dir")), _version("nats_bench")
    table = table_from_api(api, source, allow_partial=allow_partial, progress=progress)
    table.metadata.update(source=source.name, source_kind=kind,
                          converter=f"{CONVERTER} ({version})")
    if source.is_file():  # no published checksum to verify against: recorded for provenance
        from benchmark.tabular.integrity import sha256_file
        table.metadata["source_sha256"] = sha256_file(source)
    return table


def _from_csv(source: Path, allow_partial: bool) -> NB201Table:
    folder = source.parent if source.is_file() else source
    if not (folder / CSV_200).is_file():
        folder = folder / "nasbench201"
    csv_200 = source if source.is_file() else folder / CSV_200
    csv_12 = csv_200.parent / CSV_12
    table = NB201Table.from_csv(csv_200, csv_12 if csv_12.is_file() else None,
                                allow_partial=allow_partial)
    table.metadata.update(source_kind="csv", converter=CONVERTER)
    return table


def _open_nb201_pth(path: Path) -> Any:
    import torch
    from nas_201_api import NASBench201API

    # nas_201_api's own torch.load lacks weights_only=False, which torch >= 2.6 needs for
    # this (trusted, official) pickle: load the dict ourselves and hand it over.
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for a bad pickle/zip
        raise BenchmarkFileError(path, f"torch.load failed: not a NAS-Bench-201 .pth or "
                                       f"truncated ({type(exc).__name__}: {exc})") from exc
    keys = ("meta_archs", "arch2infos", "evaluated_indexes")
    if not isinstance(data, dict) or any(k not in data for k in keys):
        raise BenchmarkFileError(path, f"not a NAS-Bench-201 file: expected a dict with keys {keys}")
    try:
        api = NASBench201API(data, verbose=False)  # deep-copies: peak memory ~2x the file
    except Exception as exc:
        raise BenchmarkFileError(path, f"nas_201_api rejected it ({type(exc).__name__}: {exc})") from exc
    del data
    api.filename = path.name
    return api


def _open_nats(path: Path, fast_mode: bool) -> Any:
    import nats_bench

    try:
        return nats_bench.create(str(path), "tss", fast_mode=fast_mode, verbose=False)
    except Exception as exc:
        raise BenchmarkFileError(path, f"nats_bench could not open it as tss "
                                       f"({type(exc).__name__}: {exc})") from exc


def _version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version
    dist = {"nas_201_api": "nas-bench-201", "nats_bench": "nats_bench"}[module]
    try:
        return f"{dist} {version(dist)}"
    except PackageNotFoundError:
        return dist


def _evaluated(api: Any, idx: int) -> bool:
    prepare = getattr(api, "_prepare_info", None)  # NATS fast_mode loads one cell per file
    if prepare is not None:
        try:
            prepare(idx)
        except (AssertionError, FileNotFoundError):
            return False
    return idx in api.arch2infos_dict


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


def cell_row(api: Any, idx: int) -> dict[str, float]:
    """Accuracy and cost columns of one evaluated cell; a figure the API lacks is NaN."""
    row = dict.fromkeys((*ACC_COLUMNS, *COST_COLUMNS), math.nan)
    for hp in HPS:
        infos: dict[str, dict[str, Any] | None] = {}
        for metric, (dataset, key) in METRIC_SOURCES.items():
            if dataset not in infos:
                try:
                    infos[dataset] = api.get_more_info(idx, dataset, iepoch=None, hp=hp,
                                                       is_random=False)
                except KeyError:  # this hp or dataset was not trained for this cell
                    infos[dataset] = None
            info = infos[dataset]
            if info is not None:
                row[f"{metric}@{hp}"] = _num(info.get(key))
        if infos.get(COST_DATASET) is not None:
            row[f"train_time_s@{hp}"] = _num(infos[COST_DATASET].get("train-all-time"))
    # Direct access avoids the deep copy that get_cost_info makes per call.
    res200 = api.arch2infos_dict[idx].get("200")
    if res200 is not None and COST_DATASET in res200.get_dataset_names():
        costs = res200.get_compute_costs(COST_DATASET)
        row.update(params_mb=_num(costs["params"]), flops_m=_num(costs["flops"]),
                   latency_s=_num(costs["latency"]))
    return row


def table_from_api(api: Any, source: Path, *, allow_partial: bool = False,
                   progress: bool = True) -> NB201Table:
    from benchmark.harness.progress import CountProgress
    bar = CountProgress("NB201 cells", len(api), "cell", progress)  # a bar on a terminal, else lines

    indexes: list[int] = []
    archs: list[str] = []
    cols: dict[str, list[float]] = {c: [] for c in (*ACC_COLUMNS, *COST_COLUMNS)}
    fast_mode = bool(getattr(api, "_fast_mode", False))
    for idx in range(len(api)):
        bar.update()
        try:
            if not _evaluated(api, idx):
                continue
            row = cell_row(api, idx)
        except Exception as exc:
            raise BenchmarkFileError(source, f"cell {idx}: {type(exc).__name__}: {exc}") from exc
        indexes.append(idx)
        archs.append(api.meta_archs[idx])
        for c, v in row.items():
            cols[c].append(v)
        if fast_mode:  # keep memory flat: drop the cell once read
            api.arch2infos_dict.pop(idx, None)
    bar.close()
    if not indexes:
        raise BenchmarkFileError(source, "no evaluated cells found")
    if len(indexes) != N_CELLS and not allow_partial:
        raise BenchmarkFileError(source, f"only {len(indexes)} of {N_CELLS} cells evaluated "
                                         "(incomplete file?); --allow-partial accepts that")
    meta = {"created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    return NB201Table(indexes, archs, cols, meta, allow_partial=allow_partial, origin=source)
