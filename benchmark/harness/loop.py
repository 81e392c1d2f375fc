"""The one search loop: every method and every space runs through `run_search`.

Per step it calls the method's arch_step and weight_step (in the profile's order) on one
batch of each half; per epoch it records the derived genotype and checkpoints. A resumed
run restores every RNG (python, numpy, torch, CUDA, data streams) and continues exactly.
"""
from __future__ import annotations

import io
import math
import random
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from benchmark.harness.config import MAX_LOSS, SearchConfig
from benchmark.harness.data import BatchStream, Cifar10, endless
from benchmark.harness.progress import EpochProgress, Progress
from benchmark.harness.records import append_jsonl, atomic_write, atomic_write_json, rewrite_jsonl, scan_jsonl
from benchmark.harness.rundir import IdentityMismatch, RunDir, identity_differences
from methods.base import StepContext
from methods.registry import get_method
from spaces import space_for

Scorer = Callable[[str, dict], "dict | None"]


class DivergenceError(RuntimeError):
    """A loss became NaN or infinite, or its epoch mean exceeded the divergence threshold."""


class StopRequested(Exception):
    """`should_stop()` said so after a checkpoint: the run is left resumable, not failed."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state(streams: dict[str, torch.Generator]) -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state(),
             "streams": {k: g.get_state() for k, g in streams.items()}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, streams: dict[str, torch.Generator]) -> None:
    # .cpu(): the checkpoint is loaded with map_location=<run device>, which moves these byte
    # tensors to the GPU, but every set_state takes a CPU ByteTensor.
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu())
    for k, g in streams.items():
        if k in state["streams"]:  # a checkpoint older than a stream: it was never drawn from
            g.set_state(state["streams"][k].cpu())
    if "cuda" in state and torch.cuda.is_available():
        # One state per GPU seen when it was saved; a run may resume where fewer are visible
        # (e.g. a local multi-GPU sweep resumed as a one-GPU Slurm job): restore those there are.
        for i, s in enumerate(state["cuda"][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s.cpu(), i)


def _mean(rows: list[dict], key: str) -> float | None:
    vals = [r[key] for r in rows if key in r]
    return float(np.mean(vals)) if vals else None


def search_step(method, train_batch, valid_batch, ctx: StepContext, arch_first: bool) -> dict:
    """One bilevel step in the profile's order; architecture gradients never update weights."""
    if arch_first:
        row = method.arch_step(train_batch, valid_batch, ctx)
        row.update(method.weight_step(train_batch, ctx))
    else:
        row = method.weight_step(train_batch, ctx)
        row.update(method.arch_step(train_batch, valid_batch, ctx))
    return row


def load_resumable(rd: RunDir, cfg: SearchConfig, device) -> tuple[dict | None, list[dict], str]:
    """(checkpoint, the records it continues, a note) if the run can resume, else (None, [], why
    not; '' if there is simply no checkpoint). Resuming is only ever from a checkpoint that is
    readable, made under this config (IdentityMismatch otherwise: refuse, never mix) and
    consistent with the records: the file's lines up to the checkpoint's epoch c must be
    exactly the readable records of epochs 0..c. Lines after them come from epochs that are
    recomputed (e.g. a line torn by a kill) and are dropped. Anything else is damage that only
    recomputing can repair: the caller starts the run afresh."""
    if not rd.checkpoint.exists():
        return None, [], ""
    try:
        ck = torch.load(rd.checkpoint, map_location=device, weights_only=False)
        c = int(ck["epoch"])
    except Exception as e:  # truncated or garbage: torch raises several kinds
        return None, [], (f"{rd.checkpoint} is unreadable ({type(e).__name__}); starting this run "
                          "afresh")
    if ck.get("identity") is not None:  # None: an older checkpoint, vouched for by config.json
        details = identity_differences(ck["identity"], cfg.to_json())
        if details:
            raise IdentityMismatch(f"{rd.checkpoint} was made under other settings ({details}); "
                                   f"delete it and {rd.epochs.name} to start the run afresh")
    head = scan_jsonl(rd.epochs).lines[: c + 1]
    if [r["epoch"] if r else None for _, r in head] != list(range(c + 1)):
        bad = [n for n, r in head if r is None]
        what = (f"line {bad[0]} of {rd.epochs.name} is unreadable" if bad
                else f"{rd.epochs.name} does not hold exactly the epochs 0-{c} before it")
        return None, [], (f"{rd.checkpoint} (epoch {c}) does not match the records ({what}); "
                          "starting this run afresh")
    return ck, [r for _, r in head], f"resumed from checkpoint.pt (epoch {c}), which matches the records 0-{c}"


def check_divergence(rows: list[dict], epoch: int, max_loss: float) -> None:
    """Raise DivergenceError if the epoch's mean train or valid loss is above `max_loss`."""
    for k in ("train_loss", "valid_loss"):
        mean = _mean(rows, k)
        if mean is not None and mean > max_loss:
            raise DivergenceError(f"diverged: mean {k} {mean:.6g} > threshold {max_loss:g} at epoch "
                                  f"{epoch} (lower the learning rates, or change the threshold with "
                                  "--max-loss)")


def run_search(cfg: SearchConfig, rd: RunDir, data: Cifar10, halves: tuple[np.ndarray, np.ndarray],
               device: str = "cpu", scorer: Scorer | None = None, progress: Progress = True,
               notes: list[str] | None = None,
               on_record: Callable[[dict], None] | None = None,
               max_loss: float = MAX_LOSS, should_stop: Callable[[], bool] | None = None) -> str:
    """Train (or resume) one run to completion; returns the final genotype. Appends to `notes`
    why a run with a checkpoint started afresh, and where it resumed from. `on_record` sees
    every record as it is appended (live curves: benchmark/harness/live_log.py). A NaN or
    infinite step loss, or an epoch-mean loss above `max_loss`, raises DivergenceError before
    that epoch is recorded. `should_stop()` is asked after each checkpoint; True raises
    StopRequested."""
    device = torch.device(device)
    seed_everything(cfg.seed)
    streams = {name: torch.Generator().manual_seed(cfg.seed * 1000 + i)
               for i, name in enumerate(("arch_init", "train", "valid", "eval"))}
    train_idx, valid_idx = (h[: cfg.train_subset] if cfg.train_subset else h for h in halves)
    train = BatchStream(data.x_train[train_idx], data.y_train[train_idx], cfg.batch_size, True,
                        streams["train"], device)
    valid = BatchStream(data.x_train[valid_idx], data.y_train[valid_idx], cfg.batch_size, True,
                        streams["valid"], device)

    space = space_for(cfg.space, cfg.supernet)   # configured by the run (the DARTS op set)
    supernet = space.supernet(**cfg.supernet).to(device)
    method = get_method(cfg.method)(space, supernet, cfg, streams["arch_init"], device)
    w_opt = torch.optim.SGD(supernet.parameters(), lr=cfg.w_lr, momentum=cfg.w_momentum,
                            nesterov=cfg.w_nesterov, weight_decay=cfg.w_weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(w_opt, T_max=cfg.epochs, eta_min=cfg.w_lr_min)
    ctx = StepContext(supernet, w_opt, 0, cfg.epochs, cfg.grad_clip, len(train_idx), len(valid_idx),
                      # the architecture half (test transform unless augment), for a method's
                      # own scoring
                      lambda n, augment=False: endless(valid.with_options(n, augment, streams["eval"])))

    start, wall = 1, 0.0
    ck, kept, note = load_resumable(rd, cfg, device)
    if note and notes is not None:
        notes.append(note)
    if ck is not None:
        supernet.load_state_dict(ck["supernet"])
        method.load_state_dict(ck["method"])
        w_opt.load_state_dict(ck["w_optimizer"])
        sched.load_state_dict(ck["scheduler"])
        set_rng_state(ck["rng"], streams)
        start, wall = ck["epoch"] + 1, ck["wall_seconds"]
        # Records past the checkpoint come from an epoch that will be recomputed.
        rewrite_jsonl(rd.epochs, kept)
    else:
        rd.checkpoint.unlink(missing_ok=True)  # unreadable or inconsistent: never resumed
        rd.epochs.unlink(missing_ok=True)
        _record(rd, cfg, method, space, 0, [], w_opt, 0.0, 0.0, {}, scorer, on_record=on_record)

    # A bar on a terminal; one line per epoch in a log file, CI or a Slurm job (progress.py).
    bar = EpochProgress("search", f"{cfg.space}/{cfg.method}/seed-{cfg.seed}", start, cfg.epochs,
                        len(train), progress)
    for epoch in range(start, cfg.epochs + 1):
        ctx.epoch = epoch
        t0 = time.perf_counter()
        supernet.train()
        rows = []
        # a method may train an epoch on the architecture half (BayesNAS's switch epoch)
        pairs = zip(valid, endless(train)) if method.trains_on_arch_half(epoch) else zip(train, valid)
        for train_batch, valid_batch in pairs:
            row = search_step(method, train_batch, valid_batch, ctx, cfg.arch_first)
            for k in ("train_loss", "valid_loss"):
                if k in row and not math.isfinite(row[k]):
                    raise DivergenceError(f"{k} is {row[k]} at epoch {epoch}")
            rows.append(row)
            bar.step()
        check_divergence(rows, epoch, max_loss)
        lr_used = w_opt.param_groups[0]["lr"]
        diagnostics = method.epoch_end(epoch, ctx)
        hessian_s = 0.0
        if cfg.hessian_every and rows and epoch % cfg.hessian_every == 0:  # stability diagnostic
            # A measurement, not part of the search: its time is kept out of the epoch's time
            # and the run's wall time (the search cost), and recorded on its own.
            from benchmark.harness.hessian import hessian_max_eig
            th = time.perf_counter()
            kind = getattr(space, "hessian_diagnostic", "dominant")   # the space's source's quantity
            diagnostics = {**diagnostics, "hessian_max_eig":
                           hessian_max_eig(method, valid_batch, seed=cfg.seed * 1000 + epoch,
                                           kind=kind, weight_decay=cfg.a_weight_decay)}
            hessian_s = time.perf_counter() - th
        sched.step()
        dt = time.perf_counter() - t0 - hessian_s
        wall += dt
        _record(rd, cfg, method, space, epoch, rows, w_opt, dt, wall, diagnostics, scorer, lr_used, on_record,
                hessian_s)
        state = {"epoch": epoch, "wall_seconds": wall, "identity": cfg.to_json(),
                 "supernet": supernet.state_dict(),
                 "method": method.state_dict(), "w_optimizer": w_opt.state_dict(),
                 "scheduler": sched.state_dict(), "rng": rng_state(streams)}
        buf = io.BytesIO()  # serialised first: a full disk then shows as an OSError, not a torch error
        torch.save(state, buf)
        atomic_write(rd.checkpoint, lambda f: f.write(buf.getbuffer()), mode="wb")
        bar.epoch(epoch, {k: _mean(rows, k) for k in ("train_loss", "train_acc", "valid_loss", "valid_acc")},
                  dt)
        if should_stop is not None and epoch < cfg.epochs and should_stop():
            bar.close()
            raise StopRequested(f"stopped after the checkpoint of epoch {epoch}")
    bar.close()
    genotype = method.final_genotype()  # the method's answer (e.g. BaLeNAS-TF's proxy pick)
    atomic_write_json(rd.done, {"genotype": genotype, "epochs": cfg.epochs, "wall_seconds": wall,
                                # only where it applies: benchmark/harness/data.py Cifar10.official
                                **({"data_official": True} if getattr(data, "official", False) else {})})
    rd.failed.unlink(missing_ok=True)
    return genotype


def _record(rd: RunDir, cfg: SearchConfig, method, space, epoch: int, rows: list[dict], w_opt,
            dt: float, wall: float, diagnostics: dict, scorer: Scorer | None,
            lr_used: float | None = None, on_record: Callable[[dict], None] | None = None,
            hessian_s: float = 0.0) -> None:
    genotype = method.derive()
    info = space.genotype_info(genotype)
    rec = {
        "epoch": epoch, "space": cfg.space, "method": cfg.method, "seed": cfg.seed,
        "genotype": genotype, "genotype_info": info,
        "param_free_ops": space.param_free_ops(genotype),
        "arch": method.arch_record(),
        "train_loss": _mean(rows, "train_loss"), "train_acc": _mean(rows, "train_acc"),
        "valid_loss": _mean(rows, "valid_loss"), "valid_acc": _mean(rows, "valid_acc"),
        "w_lr": lr_used, "a_lr": method.arch_optimizer.param_groups[0]["lr"],
        "diagnostics": diagnostics,
        "benchmark": scorer(genotype, info) if scorer else None,
        # epoch_seconds / wall_seconds: the search's own time; a Hessian diagnostic's time is
        # outside them (hessian_seconds, only in epochs that computed it)
        "timing": {"epoch_seconds": dt, "wall_seconds": wall,
                   **({"hessian_seconds": hessian_s} if hessian_s else {})},
    }
    selected = diagnostics.get("selected_genotype")
    if selected is not None:  # a method whose answer is not argmax (BaLeNAS-TF, random-ws)
        rec["selected_genotype"] = selected
        rec["selected_benchmark"] = scorer(selected, space.genotype_info(selected)) if scorer else None
    append_jsonl(rd.epochs, rec)
    if on_record is not None:
        on_record(rec)
