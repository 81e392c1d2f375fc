"""Retraining protocol values (`paper`, `smoke`), the typed config, and its validation.

`paper` follows the DARTS authors' evaluation script, quark0/darts cnn/train.py (its argparse
defaults, run with --auxiliary --cutout as the README's CIFAR-10 command does):
  the whole 50k training set, 600 epochs, batch 96, SGD lr 0.025 momentum 0.9 weight decay
  3e-4 (no Nesterov), CosineAnnealingLR(T_max=epochs, eta_min=0) stepped once per epoch,
  gradient-norm clip 5, cutout 16, drop path 0.2 ramped as `drop_path_prob * e / epochs` for
  the 0-based epoch e, auxiliary head weight 0.4, C=36, 20 cells; test on the 10k test set.
  (train.py calls scheduler.step() at the start of every epoch under PyTorch 0.3/0.4, whose
  scheduler constructor leaves last_epoch at -1: the 0-based epoch e trains at
  0.025 * (1 + cos(pi * e / epochs)) / 2, exactly what a modern scheduler stepped at the end
  of every epoch gives.)
`smoke` runs the same code on a CPU in seconds: a tiny network on a few hundred images.

BN weight init (`bn_init`): the authors ran PyTorch 0.3, whose BatchNorm initialised its weight
(gamma) uniformly in [0, 1) (torch/nn/modules/batchnorm.py `reset_parameters`: weight.uniform_(),
bias.zero_()); PyTorch >= 0.4 initialises it to 1. Both profiles use today's `ones`;
`--set bn_init=uniform` redraws every affine BN weight of the network U[0, 1) after it is built
(the same distribution as 0.3; the draws come after the convolutions', so the stream of random
numbers is not 0.3's). It is part of the identity only when it is not the default, so the
retraining runs made before the option existed keep their identity.

A config is a retraining run's identity (config.json); a rerun with a different one is
refused. Every value is validated here (`validate`), before anything is created.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

PROFILES = ("paper", "smoke")
BN_INITS = ("ones", "uniform")
DATASETS = {"cifar10": 10, "cifar100": 100}

PAPER: dict[str, Any] = dict(
    epochs=600, batch_size=96, lr=0.025, lr_min=0.0, momentum=0.9, weight_decay=3e-4,
    grad_clip=5.0, cutout_length=16, drop_path_prob=0.2, auxiliary=True, auxiliary_weight=0.4,
    C=36, layers=20, train_subset=None, test_subset=None, eval_batch_size=96, bn_init="ones")

SMOKE: dict[str, Any] = {**PAPER, **dict(
    epochs=2, batch_size=32, C=4, layers=5, train_subset=256, test_subset=128, eval_batch_size=128)}

PROFILE_VALUES = {"paper": PAPER, "smoke": SMOKE}


@dataclass(frozen=True)
class RetrainConfig:
    genotype: str                 # canonical DARTS text form
    seed: int                     # the retraining seed (not the search seed)
    profile: str
    dataset: str = "cifar10"
    epochs: int = 600
    batch_size: int = 96
    lr: float = 0.025
    lr_min: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0        # max gradient norm (0 = no clipping)
    cutout_length: int = 16       # 0 = no cutout
    drop_path_prob: float = 0.2   # final value of the linear ramp
    auxiliary: bool = True
    auxiliary_weight: float = 0.4
    C: int = 36
    layers: int = 20
    train_subset: int | None = None   # first N training images (None = all)
    test_subset: int | None = None    # first N test images (None = all)
    eval_batch_size: int = 96
    bn_init: str = "ones"             # BN weight init: ones (PyTorch >= 0.4) | uniform (0.3's U[0, 1))
    data_md5: str = ""                # filled in when the data is loaded
    kind: str = "retrain"             # tells a retraining folder from a search run's

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        if d["bn_init"] == "ones":   # the default: left out, so older identities still match
            del d["bn_init"]
        return d

    @classmethod
    def from_json(cls, d: dict) -> "RetrainConfig":
        return cls(**d)


# (option, check, valid range as the error message states it)
_RULES: dict[str, tuple] = {
    "epochs": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "batch_size": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "eval_batch_size": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "lr": (lambda v: v > 0, "a number > 0"),
    "lr_min": (lambda v: v >= 0, "a number >= 0 (and <= lr)"),
    "momentum": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "weight_decay": (lambda v: v >= 0, "a number >= 0"),
    "grad_clip": (lambda v: v >= 0, "a number >= 0 (0 = no clipping)"),
    "cutout_length": (lambda v: isinstance(v, int) and 0 <= v <= 32, "an integer in [0, 32] (0 = off)"),
    "drop_path_prob": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "auxiliary": (lambda v: isinstance(v, bool), "true or false"),
    "auxiliary_weight": (lambda v: v >= 0, "a number >= 0"),
    "C": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "layers": (lambda v: isinstance(v, int) and v >= 3, "an integer >= 3 (two reduction cells and a normal one)"),
    "train_subset": (lambda v: v is None or (isinstance(v, int) and v >= 1), "none or an integer >= 1"),
    "test_subset": (lambda v: v is None or (isinstance(v, int) and v >= 1), "none or an integer >= 1"),
    "bn_init": (lambda v: v in BN_INITS, "one of ones (PyTorch >= 0.4, the default), uniform (PyTorch 0.3: U[0, 1))"),
}
SETTABLE = tuple(_RULES)


def _coerce(key: str, text: str, like: Any) -> Any:
    """`--set key=value` text -> the field's type; ValueError naming the option otherwise."""
    rule = _RULES[key][1]
    low = text.strip().lower()
    try:
        if isinstance(like, bool) or key == "auxiliary":
            if low in ("1", "true", "yes"):
                return True
            if low in ("0", "false", "no"):
                return False
            raise ValueError
        if key == "bn_init":
            return low
        if key in ("train_subset", "test_subset") and low in ("none", "null", "all"):
            return None
        if key in ("epochs", "batch_size", "eval_batch_size", "cutout_length", "C", "layers",
                   "train_subset", "test_subset"):
            return int(text)
        value = float(text)
        if not math.isfinite(value):  # inf/nan would be written as null and refused on rerun
            raise ValueError
        return value
    except ValueError:
        raise ValueError(f"--set {key}={text}: expected {rule} (a finite number)") from None


def validate(values: dict) -> None:
    """Raise ValueError naming the first option outside its valid range."""
    for key, (ok, rule) in _RULES.items():
        v = values[key]
        try:
            good = bool(ok(v))
        except TypeError:
            good = False
        if not good:
            raise ValueError(f"{key}={json.dumps(v)}: expected {rule}")
    if values["lr_min"] > values["lr"]:
        raise ValueError(f"lr_min={values['lr_min']}: must not exceed lr={values['lr']}")
    if values["dataset"] not in DATASETS:
        raise ValueError(f"--dataset {values['dataset']}: valid: {', '.join(DATASETS)}")


def resolve(genotype: str, seed: int, profile: str, dataset: str = "cifar10",
            epochs: int | None = None, sets: list[str] | None = None) -> RetrainConfig:
    """Profile values, then --epochs, then --set key=value; validated. ValueError on bad input."""
    if profile not in PROFILE_VALUES:
        raise ValueError(f"--profile {profile}: valid: {', '.join(PROFILES)}")
    d = dict(PROFILE_VALUES[profile])
    if epochs is not None:
        d["epochs"] = epochs
    for item in sets or []:
        key, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: expected key=value")
        if key not in _RULES:
            raise ValueError(f"--set {key}: unknown setting; valid: {', '.join(SETTABLE)}")
        d[key] = _coerce(key, text, d[key])
    d["dataset"] = dataset
    validate(d)
    return RetrainConfig(genotype=genotype, seed=seed, profile=profile, **d)


def drop_path_at(cfg: RetrainConfig, epoch: int) -> float:
    """Drop-path probability of the 1-based `epoch`: train.py's `drop_path_prob * e / epochs`
    with its 0-based e = epoch - 1 (0 in the first epoch, 0.2 * 599/600 in the last)."""
    return cfg.drop_path_prob * (epoch - 1) / cfg.epochs
