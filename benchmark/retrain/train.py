"""The retraining loop: one genotype's evaluation network trained from scratch, one JSON
record per epoch, a checkpoint after every epoch, exact resume.

Per step (quark0/darts cnn/train.py `train`): logits, logits_aux = model(x);
loss = CE(logits) + auxiliary_weight * CE(logits_aux) (aux only when the head exists);
backward; clip the gradient norm of all parameters at grad_clip; SGD step. Per epoch: the
drop-path probability is set first (profiles.drop_path_at), the learning rate is the cosine
schedule's value for that epoch, and the test set is evaluated in eval mode afterwards
(`infer`). train_loss is the optimised objective (main + weighted auxiliary loss), as
train.py's `objs` meter; train_acc and test_acc are top-1 % of the main head, averaged per
image (AvgrageMeter weighted by batch size). A selection run (profiles `select`,
valid_on=holdout) trains on the training images before the held-out tail and evaluates the
held-out ones instead (valid_loss, valid_acc; the test set is never read). A resumed run restores model, optimizer,
scheduler and every RNG (python, numpy, torch incl. the drop-path masks, CUDA, the data-order
and augmentation stream), so its records equal an uninterrupted run's. The checkpoint carries
the config it was made under (its identity): one made under other settings is refused, as
the searches' are.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmark.harness.data import BatchStream
from benchmark.harness.loop import StopRequested, rng_state, seed_everything, set_rng_state
from benchmark.harness.progress import EpochProgress, Progress
from benchmark.harness.records import append_jsonl, atomic_write, atomic_write_json, read_jsonl, rewrite_jsonl, scan_jsonl
from benchmark.harness.rundir import IdentityMismatch, identity_differences
from benchmark.retrain.data import NORMALISATION, TrainTest, cutout, eval_batches, holdout_split
from benchmark.retrain.profiles import RetrainConfig, drop_path_at


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class Files:
    """The files of one retraining folder (the layout of a search run's folder)."""
    path: Path

    @property
    def epochs(self) -> Path:
        return self.path / "epochs.jsonl"

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def done(self) -> Path:
        return self.path / "done.json"

    @property
    def failed(self) -> Path:
        return self.path / "failed.json"


def build_model(cfg: RetrainConfig, num_classes: int) -> torch.nn.Module:
    from spaces.darts import network
    return network(cfg.genotype, C=cfg.C, layers=cfg.layers, num_classes=num_classes,
                   auxiliary=cfg.auxiliary, bn_init=cfg.bn_init)


def parameter_count(model: torch.nn.Module) -> int:
    """Parameters without the auxiliary head (DARTS utils.count_parameters_in_MB)."""
    from spaces.darts import count_parameters
    return int(count_parameters(model))


def evaluation_set(data: TrainTest, cfg: RetrainConfig):
    """(x, y, prefix) the per-epoch evaluation reads: the held-out training images under
    valid_on=holdout (data.x_test is never touched then), else the (first test_subset) test
    images; prefix names the records' keys (valid_*, test_*)."""
    if cfg.valid_on == "holdout":
        _, held = holdout_split(len(data.y_train), cfg.holdout)
        return data.x_train[held], data.y_train[held], "valid"
    n = cfg.test_subset or len(data.y_test)
    return data.x_test[:n], data.y_test[:n], "test"


def training_set(data: TrainTest, cfg: RetrainConfig):
    """(x, y): the (first train_subset) training images; under valid_on=holdout only those
    before the held-out tail."""
    x, y = data.x_train, data.y_train
    if cfg.valid_on == "holdout":
        train, _ = holdout_split(len(y), cfg.holdout)
        x, y = x[train], y[train]
    n = cfg.train_subset or len(y)
    return x[:n], y[:n]


def evaluate(model, data: TrainTest, cfg: RetrainConfig, device) -> tuple[float, float]:
    """(mean loss, top-1 %) on the evaluation set (`evaluation_set`), eval mode."""
    mean, std = NORMALISATION[cfg.dataset]
    x, y, _ = evaluation_set(data, cfg)
    model.eval()
    loss_sum, correct, count = 0.0, 0, 0
    with torch.no_grad():
        for xb, yb in eval_batches(x, y, cfg.eval_batch_size, mean, std, device):
            logits, _ = model(xb)
            loss_sum += torch.nn.functional.cross_entropy(logits, yb, reduction="sum").item()
            correct += (logits.argmax(1) == yb).sum().item()
            count += len(yb)
    return loss_sum / count, 100.0 * correct / count


def load_resumable(files: "Files", cfg: RetrainConfig, device) -> tuple[dict | None, list[dict], str]:
    """(checkpoint, the records it continues, a note), the searches' rule
    (benchmark/harness/loop.py load_resumable): resume only from a checkpoint that is readable,
    made under this config (IdentityMismatch otherwise: refuse, never mix) and whose epoch c
    matches the records 1..c line for line; else (None, [], why) and the caller starts afresh.
    A checkpoint without an identity (written before retraining checkpoints carried one) is
    vouched for by config.json (benchmark/harness/assess.py refuses it where that is missing)."""
    if not files.checkpoint.exists():
        return None, [], ""
    try:
        ck = torch.load(files.checkpoint, map_location=device, weights_only=False)
        c = int(ck["epoch"])
    except Exception as e:  # truncated or garbage: torch raises several kinds
        return None, [], f"{files.checkpoint} is unreadable ({type(e).__name__}); starting this run afresh"
    if ck.get("identity") is not None:
        details = identity_differences(ck["identity"], cfg.to_json())
        if details:
            raise IdentityMismatch(f"{files.checkpoint} was made under other settings ({details}); "
                                   f"delete it and {files.epochs.name} to start the run afresh")
    head = scan_jsonl(files.epochs).lines[:c]
    if [r["epoch"] if r else None for _, r in head] != list(range(1, c + 1)):
        return None, [], (f"{files.checkpoint} (epoch {c}) does not match the records "
                          f"({files.epochs.name} does not hold exactly the readable epochs 1-{c}); "
                          "starting this run afresh")
    return ck, [r for _, r in head], f"resumed from checkpoint.pt (epoch {c}), which matches the records 1-{c}"


def run_retrain(cfg: RetrainConfig, folder: Path, data: TrainTest, device: str = "cpu",
                progress: Progress = True, desc: str = "retrain", notes: list[str] | None = None,
                should_stop=None) -> dict:
    """Train (or resume) to the last epoch; writes records, checkpoint and done.json; returns done.
    `should_stop()` is asked after each checkpoint; True raises StopRequested (resumable)."""
    files = Files(Path(folder))
    device = torch.device(device)
    seed_everything(cfg.seed)
    streams = {"train": torch.Generator().manual_seed(cfg.seed * 1000 + 1)}
    x_train, y_train = training_set(data, cfg)
    mean, std = NORMALISATION[cfg.dataset]
    train = BatchStream(x_train, y_train, cfg.batch_size, True, streams["train"], device, mean=mean, std=std)
    ev = evaluation_set(data, cfg)[2]   # the records' key prefix: valid (held out) or test

    model = build_model(cfg, data.num_classes).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs, eta_min=cfg.lr_min)
    criterion = torch.nn.CrossEntropyLoss()

    start, wall, cpu = 1, 0.0, 0.0
    ck, kept, note = load_resumable(files, cfg, device)
    if note and notes is not None:
        notes.append(note)
    if ck is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        set_rng_state(ck["rng"], streams)
        start, wall, cpu = ck["epoch"] + 1, ck["wall_seconds"], ck["cpu_seconds"]
        # Records past the checkpoint come from an epoch that will be recomputed.
        rewrite_jsonl(files.epochs, kept)
    else:
        files.checkpoint.unlink(missing_ok=True)  # unreadable or inconsistent: never resumed
        files.epochs.unlink(missing_ok=True)

    # A bar on a terminal; one line per epoch in a log file, CI or a Slurm job (progress.py).
    bar = EpochProgress("retrain", desc, start, cfg.epochs, len(train), progress)
    for epoch in range(start, cfg.epochs + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        model.drop_path_prob = drop_path_at(cfg, epoch)
        lr = opt.param_groups[0]["lr"]
        model.train()
        loss_sum, correct, count = 0.0, 0, 0
        for xb, yb in train:
            xb = cutout(xb, cfg.cutout_length, streams["train"])
            opt.zero_grad(set_to_none=True)
            logits, logits_aux = model(xb)
            loss = criterion(logits, yb)
            if logits_aux is not None and cfg.auxiliary_weight:
                loss = loss + cfg.auxiliary_weight * criterion(logits_aux, yb)
            if not torch.isfinite(loss):
                raise DivergenceError(f"train loss is {loss.item()} at epoch {epoch}")
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            loss_sum += loss.item() * len(yb)
            correct += (logits.argmax(1) == yb).sum().item()
            count += len(yb)
            bar.step()
        sched.step()
        ev_loss, ev_acc = evaluate(model, data, cfg, device)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        wall, cpu = wall + dt, cpu + dc
        append_jsonl(files.epochs, {
            "epoch": epoch, "train_loss": loss_sum / count, "train_acc": 100.0 * correct / count,
            f"{ev}_loss": ev_loss, f"{ev}_acc": ev_acc, "lr": lr,
            "drop_path_prob": model.drop_path_prob,
            "timing": {"epoch_seconds": dt, "wall_seconds": wall, "cpu_seconds": cpu}})
        state = {"epoch": epoch, "wall_seconds": wall, "cpu_seconds": cpu, "identity": cfg.to_json(),
                 "model": model.state_dict(), "optimizer": opt.state_dict(),
                 "scheduler": sched.state_dict(), "rng": rng_state(streams)}
        atomic_write(files.checkpoint, lambda f: torch.save(state, f), mode="wb")
        bar.epoch(epoch, {"train_loss": loss_sum / count, "train_acc": 100.0 * correct / count,
                          f"{ev}_loss": ev_loss, f"{ev}_acc": ev_acc}, dt)
        if should_stop is not None and epoch < cfg.epochs and should_stop():
            bar.close()
            raise StopRequested(f"stopped after the checkpoint of epoch {epoch}")
    bar.close()
    last = read_jsonl(files.epochs)[-1]
    on_gpu = device.type == "cuda"
    n_eval = len(evaluation_set(data, cfg)[1])
    done = {"genotype": cfg.genotype, "dataset": cfg.dataset, "epochs": cfg.epochs,
            f"{ev}_acc": last[f"{ev}_acc"], f"{ev}_error": 100.0 - last[f"{ev}_acc"],
            f"{ev}_images": n_eval, "train_images": len(y_train)}
    if cfg.selecting:   # what the selection compares (benchmark/retrain/select.py)
        done.update(selection_acc=last[f"{ev}_acc"],
                    selected_on=(f"held-out training images {len(data.y_train) - n_eval}-"
                                 f"{len(data.y_train) - 1} (the last {n_eval})" if ev == "valid"
                                 else "the TEST set (as the DARTS code's train.py; not a clean selection)"))
    done.update({
        "params": parameter_count(model), "params_millions": parameter_count(model) / 1e6,
        "wall_seconds": wall, "process_cpu_seconds": cpu,
        "gpu_hours": wall / 3600 if on_gpu else None, "cpu_hours": None if on_gpu else wall / 3600,
        "device": str(device), "device_name": torch.cuda.get_device_name(device) if on_gpu else "cpu"})
    if getattr(data, "official", False):   # only where it applies (benchmark/harness/data.py)
        done["data_official"] = True
    atomic_write_json(files.done, done)
    files.failed.unlink(missing_ok=True)
    return done

