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

`select` is the DARTS paper's cell selection (Liu et al., DARTS, ICLR 2019, Sec. 3.2 and the
Table 1 footnote: the search is run 4 times, each
derived cell is trained from scratch for a short period, 100 epochs on CIFAR-10, and the cell
with the best validation accuracy is kept; only that cell is then trained for 600 epochs): the
`paper` values with 100 epochs, trained on 45k training images and validated on the other 5k,
never on the test set. Which 5k (our choice, recorded in the identity as `valid_on=holdout`,
`holdout=5000` beside the data's md5): the LAST 5000 images of the training set in its official
order (torchvision's data_batch_1..5, the order the .npz keeps), training on the first 45000
(`data.holdout_split`); no seed, so every candidate and every rerun sees the same split.
The DARTS code itself (quark0/darts cnn/train.py line 87, `valid_data = dset.CIFAR10(...,
train=False)`) "validates" on the 10k test set: that is offered only as the named setting
`--set valid_on=test` (train on all 50k, pick by test accuracy), documented as selection on
the test set. `select-smoke` is `smoke` with the same held-out rule on 128 images.

A config is a retraining run's identity (config.json); a rerun with a different one is
refused. Every value is validated here (`validate`), before anything is created.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

PROFILES = ("paper", "smoke", "select", "select-smoke")
BN_INITS = ("ones", "uniform")
DATASETS = {"cifar10": 10, "cifar100": 100}

PAPER: dict[str, Any] = dict(
    epochs=600, batch_size=96, lr=0.025, lr_min=0.0, momentum=0.9, weight_decay=3e-4,
    grad_clip=5.0, cutout_length=16, drop_path_prob=0.2, auxiliary=True, auxiliary_weight=0.4,
    C=36, layers=20, train_subset=None, test_subset=None, eval_batch_size=96, bn_init="ones")

SMOKE: dict[str, Any] = {**PAPER, **dict(
    epochs=2, batch_size=32, C=4, layers=5, train_subset=256, test_subset=128, eval_batch_size=128)}

# `valid_on`: None = train on the whole training set, evaluate the test set (paper, smoke);
# "holdout" = train on all but the last `holdout` training images, validate on those (never the
# test set); "test" = train on the whole training set and select by the test set, as the DARTS
# code's train.py does (named on purpose: test-set selection).
VALID_ON = (None, "holdout", "test")
SELECT: dict[str, Any] = {**PAPER, **dict(epochs=100, valid_on="holdout", holdout=5000)}
SELECT_SMOKE: dict[str, Any] = {**SMOKE, **dict(valid_on="holdout", holdout=128)}
for _d in (PAPER, SMOKE):
    _d.update(valid_on=None, holdout=None)

PROFILE_VALUES = {"paper": PAPER, "smoke": SMOKE, "select": SELECT, "select-smoke": SELECT_SMOKE}
# The final retraining that follows each selection profile (benchmark/retrain/select.py).
FINAL_OF = {"select": "paper", "select-smoke": "smoke"}
SELECT_OF = {v: k for k, v in FINAL_OF.items()}


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
    valid_on: str | None = None       # see VALID_ON; None: no selection (absent from the identity)
    holdout: int | None = None        # "holdout": the last N training images validate
    data_md5: str = ""                # filled in when the data is loaded
    kind: str = "retrain"             # tells a retraining folder from a search run's

    def to_json(self) -> dict:
        """The identity; the selection fields only where set, and bn_init only where it is not
        the default, so the identities of retrainings made before they existed stay what they were."""
        d = dataclasses.asdict(self)
        for k in ("valid_on", "holdout"):
            if d[k] is None:
                del d[k]
        if d["bn_init"] == "ones":
            del d["bn_init"]
        return d

    @property
    def selecting(self) -> bool:
        """A selection run (validation accuracy decides), not a final retraining."""
        return self.valid_on is not None

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
    "valid_on": (lambda v: v in VALID_ON, "none, holdout (validate on held-out training images) or "
                                          "test (select on the TEST set, as the DARTS code's train.py does)"),
    "holdout": (lambda v: v is None or (isinstance(v, int) and v >= 1),
                "none or an integer >= 1 (held-out training images; less than the training set)"),
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
        if key in ("train_subset", "test_subset", "holdout", "valid_on") and low in ("none", "null", "all"):
            return None
        if key == "valid_on":
            if low in ("holdout", "test"):
                return low
            raise ValueError
        if key in ("epochs", "batch_size", "eval_batch_size", "cutout_length", "C", "layers",
                   "train_subset", "test_subset", "holdout"):
            return int(text)
        value = float(text)
        if not math.isfinite(value):  # inf/nan would be written as null and refused on rerun
            raise ValueError
        return value
    except ValueError:
        kind = "" if key == "valid_on" else " (a finite number)"
        raise ValueError(f"--set {key}={text}: expected {rule}{kind}") from None


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
    if values["valid_on"] == "holdout" and values["holdout"] is None:
        raise ValueError("holdout=null: valid_on=holdout needs holdout=N (an integer >= 1)")
    if values["valid_on"] != "holdout" and values["holdout"] is not None:
        raise ValueError(f"holdout={values['holdout']}: only with valid_on=holdout "
                         f"(valid_on is {json.dumps(values['valid_on'])})")
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
    given: set[str] = set()
    for item in sets or []:
        key, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: expected key=value")
        if key not in _RULES:
            raise ValueError(f"--set {key}: unknown setting; valid: {', '.join(SETTABLE)}")
        d[key] = _coerce(key, text, d[key])
        given.add(key)
    if "valid_on" in given and d["valid_on"] != "holdout" and "holdout" not in given:
        d["holdout"] = None   # --set valid_on=test in `select`: no held-out images then
    d["dataset"] = dataset
    validate(d)
    return RetrainConfig(genotype=genotype, seed=seed, profile=profile, **d)


def drop_path_at(cfg: RetrainConfig, epoch: int) -> float:
    """Drop-path probability of the 1-based `epoch`: train.py's `drop_path_prob * e / epochs`
    with its 0-based e = epoch - 1 (0 in the first epoch, 0.2 * 599/600 in the last)."""
    return cfg.drop_path_prob * (epoch - 1) / cfg.epochs
