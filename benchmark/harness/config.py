"""Typed run configuration and the profiles (`paper`, `smoke`, `fair`) that fill it.

A config is a run's identity: every field changes what the run computes. Where a value comes
from is provenance and lives elsewhere (provenance.json). Resolution order: the space's
profile, then the method's source overrides, then the user's `--epochs` / `--set` (then the
fields the resulting method options imply, `option_overrides`, with the user's values on top).

Profiles: `paper` is each method's own protocol (the space's profile with every override of
the method's source: SmoothDARTS' 100 epochs and contiguous halves on NB201, random-ws' 250
epochs, ...): the protocol a published number was obtained under, for reproducing it.
`fair` is ONE schedule per space, the space's DARTS protocol (data halves, epochs, batch,
optimisers, BN setting: the space's `fair` profile), shared by every method: of a method's
own overrides only its update rule's settings are kept (FAIR_METHOD_KEYS: its method options
and its step order), so that methods differ in nothing but how they update; for comparing
methods. `smoke` is a tiny pipeline check.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

PROFILES = ("paper", "smoke", "fair")
# What a method keeps of its source's (`paper`) overrides under `fair`: its own options and
# its step order (a fact of its update rule per space, tests/methods/test_step_order.py).
# Everything else (epochs, batch, split, optimiser values, BN running statistics, gradient
# clip, supernet size) is the space's one `fair` schedule.
FAIR_METHOD_KEYS = ("method_options", "arch_first")

# A run whose mean training or validation loss over an epoch exceeds this has diverged (a
# finite but absurd loss: w_lr=5000 ends near 1e14). Cross-entropy over CIFAR-10's 10 classes
# starts near ln 10 = 2.3 and a converging search stays below ~5; 1000 leaves a wide margin.
# Our choice (no source sets one). `run.py --max-loss T` changes it, `--max-loss inf` turns it
# off; it is recorded in provenance.json, not in the identity (it changes nothing a run that
# stays below it computes).
MAX_LOSS = 1000.0


@dataclass(frozen=True)
class SearchConfig:
    space: str
    method: str
    seed: int
    profile: str
    epochs: int = 50
    batch_size: int = 64
    supernet: dict = field(default_factory=dict)   # space-specific model arguments
    split: str = "official"            # official | random-half | contiguous | random-10-90
    train_subset: int | None = None    # images per half (None = the whole half)
    w_lr: float = 0.025
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_nesterov: bool = True
    w_weight_decay: float = 5e-4
    grad_clip: float = 5.0
    a_lr: float = 3e-4
    a_betas: tuple = (0.5, 0.999)
    a_weight_decay: float = 1e-3
    arch_first: bool = False           # architecture step before the weight step
    arch_init_std: float = 1e-3
    score_hp: str = "200"              # NB201 training schedule the records are scored at
    hessian_every: int = 0             # record the arch-Hessian's dominant eigenvalue every k epochs (0 = off)
    method_options: dict = field(default_factory=dict)
    data_md5: str = ""                 # filled in when the data is loaded
    split_source: str = ""

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["a_betas"] = list(self.a_betas)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "SearchConfig":
        d = dict(d)
        d["a_betas"] = tuple(d["a_betas"])
        return cls(**d)


def space_profile(space: str, profile: str) -> dict[str, Any]:
    """The space's own protocol values for `profile` (each space's `profiles` names its source)."""
    from spaces import get_space
    if profile not in PROFILES:
        raise KeyError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    profiles = get_space(space).profiles
    if profile not in profiles:
        raise KeyError(f"space {space!r} has no {profile!r} profile; valid: {', '.join(profiles)}")
    return json.loads(json.dumps(profiles[profile]))  # a deep copy


def apply_overrides(base: dict, overrides: dict[str, Any]) -> dict:
    """A method's source overrides: config fields, or `supernet.<key>` for one model argument."""
    out = json.loads(json.dumps(base))
    for key, value in overrides.items():
        if key.startswith("supernet."):
            out.setdefault("supernet", {})[key[len("supernet."):]] = value
        else:
            out[key] = value
    return out


# Fields that name the run rather than set how it searches: given by the grid (--spaces,
# --methods, --seeds, --profile) or filled in from the data; never set with --set.
IDENTITY_FIELDS = ("space", "method", "seed", "profile", "data_md5", "split_source")
SETTABLE = tuple(f.name for f in dataclasses.fields(SearchConfig) if f.name not in IDENTITY_FIELDS)
_GIVEN_BY = {"space": "--spaces", "method": "--methods", "seed": "--seeds", "profile": "--profile",
             "data_md5": "the data (--data)", "split_source": "the split (split=..., --split-file)"}


class ConfigError(ValueError):
    """A config value out of its type, range or choices; the message names the option."""


def _coerce(value: str, like: Any, key: str):
    """`--set key=value` text -> the type of the field's current value."""
    if isinstance(like, bool):
        if value.lower() in ("1", "true", "yes"):
            return True
        if value.lower() in ("0", "false", "no"):
            return False
        raise ConfigError(f"--set {key}: expected true/false, got {value!r}")
    if like is None or isinstance(like, (tuple, list, dict)):
        if value.lower() == "none":
            return None
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise ConfigError(f"--set {key}: {value!r} is not a JSON value (e.g. 512, [0.5, 0.999], "
                              "none)") from None
    try:
        return type(like)(value)
    except ValueError:
        raise ConfigError(f"--set {key}: expected {_TYPE_WORDS.get(type(like), type(like).__name__)}, "
                          f"got {value!r}") from None


_TYPE_WORDS = {int: "a whole number", float: "a number", str: "a word"}
# Fields that may be None (annotated `X | None`): `--set key=none` resets them whatever the
# profile set (train_subset=none = the whole half).
_NULLABLE = {f.name for f in dataclasses.fields(SearchConfig) if "None" in str(f.type)}


def apply_sets(base: dict, sets: list[str], method_option_names: list[str]) -> dict:
    """Apply `key=value`, `supernet.key=value` and `method.key=value` overrides."""
    out = json.loads(json.dumps(base))
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected key=value")
        if key.startswith("method."):
            opt = key[len("method."):]
            if opt not in method_option_names:
                raise ConfigError(f"--set {key}: this method has no option {opt!r}; "
                                  f"valid: {', '.join(method_option_names) or '(none)'}")
            try:
                out["method_options"][opt] = json.loads(value)
            except json.JSONDecodeError:
                out["method_options"][opt] = value
        elif key.startswith("supernet."):
            sub = key[len("supernet."):]
            if sub in out["supernet"]:
                out["supernet"][sub] = _coerce(value, out["supernet"][sub], key)
            else:  # a key the profile leaves at its default (e.g. bf16): JSON, else text
                try:
                    out["supernet"][sub] = json.loads(value)
                except json.JSONDecodeError:
                    out["supernet"][sub] = value
        elif key in SETTABLE:
            if key in _NULLABLE and value.lower() == "none":   # e.g. train_subset=none after a profile set a number
                out[key] = None
            else:
                out[key] = _coerce(value, out.get(key), key)
        elif key in IDENTITY_FIELDS:
            raise ConfigError(f"--set {key}: {key} is part of the run's name, set by {_GIVEN_BY[key]}, "
                              "not by --set")
        else:
            raise ConfigError(f"--set {key}: unknown setting; valid: {', '.join(SETTABLE)}, "
                              "supernet.<arg>, method.<option>")
    return out


# ---- validation ---------------------------------------------------------------------------
# Every field is checked when a config is resolved, before any folder exists. A refusal names
# the field and its valid range; run.py turns it into exit 2.

def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _need(ok: bool, name: str, rule: str, value: Any) -> None:
    if not ok:
        shown = json.dumps(value) if _jsonable(value) else repr(value)
        raise ConfigError(f"{name} must be {rule}, got {shown}")


def _jsonable(v: Any) -> bool:
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError):
        return False


def _int_at_least(d: dict, name: str, lo: int) -> None:
    _need(_is_int(d[name]) and d[name] >= lo, name, f"a whole number >= {lo}", d[name])


def _num(d: dict, name: str, rule: str, ok) -> None:
    _need(_is_num(d[name]) and ok(d[name]), name, rule, d[name])


def validate_fields(d: dict) -> None:
    """Types, ranges and choices of the SearchConfig fields in `d` (a dict of all fields)."""
    from benchmark.harness.data import SPLITS
    from benchmark.harness.grid import MAX_SEED
    _need(_is_int(d["seed"]) and 0 <= d["seed"] <= MAX_SEED, "seed", f"a whole number in 0..{MAX_SEED}",
          d["seed"])
    _need(d["profile"] in PROFILES, "profile", f"one of {', '.join(PROFILES)}", d["profile"])
    _int_at_least(d, "epochs", 1)
    _int_at_least(d, "batch_size", 1)
    _need(isinstance(d["supernet"], dict), "supernet", "a mapping of supernet arguments", d["supernet"])
    _need(d["split"] in SPLITS, "split", f"one of {', '.join(SPLITS)}", d["split"])
    _need(d["train_subset"] is None or (_is_int(d["train_subset"]) and d["train_subset"] >= 1),
          "train_subset", "none (the whole half) or a whole number >= 1 of images per half",
          d["train_subset"])
    _num(d, "w_lr", "a number > 0", lambda v: v > 0)
    _num(d, "w_lr_min", f"a number in [0, w_lr={d['w_lr']}]", lambda v: 0 <= v <= d["w_lr"])
    _num(d, "w_momentum", "a number in [0, 1)", lambda v: 0 <= v < 1)
    _need(isinstance(d["w_nesterov"], bool), "w_nesterov", "true or false", d["w_nesterov"])
    if d["w_nesterov"]:
        _num(d, "w_momentum", "> 0 with w_nesterov=true (Nesterov momentum needs momentum)",
             lambda v: v > 0)
    _num(d, "w_weight_decay", "a number >= 0", lambda v: v >= 0)
    _num(d, "grad_clip", "a number > 0 (the gradient-norm bound; for no clipping give a large "
         "bound, e.g. 1e9)", lambda v: v > 0)
    _num(d, "a_lr", "a number > 0", lambda v: v > 0)
    b = d["a_betas"]
    _need(isinstance(b, (list, tuple)) and len(b) == 2 and all(_is_num(x) and 0 <= x < 1 for x in b),
          "a_betas", "two numbers in [0, 1), e.g. [0.5, 0.999]", list(b) if isinstance(b, tuple) else b)
    _num(d, "a_weight_decay", "a number >= 0", lambda v: v >= 0)
    _need(isinstance(d["arch_first"], bool), "arch_first", "true or false", d["arch_first"])
    _num(d, "arch_init_std", "a number >= 0", lambda v: v >= 0)
    _int_at_least(d, "hessian_every", 0)
    _need(isinstance(d["method_options"], dict), "method_options", "a mapping", d["method_options"])


def validate_config(cfg: SearchConfig) -> None:
    """Every field of `cfg`, the supernet arguments against the space's constructor, the
    method options against the method's Options, and score_hp against the space's scorer."""
    from benchmark.harness.scoring import score_hps
    from methods.registry import get_method
    from spaces import get_space
    d = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    validate_fields(d)
    space = get_space(cfg.space)
    try:
        if hasattr(space, "check_supernet"):
            space.check_supernet(dict(cfg.supernet))
        else:  # a space without its own check: the names and types of its constructor
            from spaces.base import check_arguments
            check_arguments(dict(cfg.supernet), space.supernet)
    except (TypeError, ValueError) as e:
        raise ConfigError(str(e)) from None
    if cfg.supernet.get("num_classes", 10) != 10:
        raise ConfigError(f"supernet.num_classes must be 10 (CIFAR-10's classes), got "
                          f"{cfg.supernet['num_classes']!r}")
    hps = score_hps(space)
    _need(cfg.score_hp in hps, "score_hp", f"one of {', '.join(map(repr, hps))} (the training schedules "
          f"of the {space.benchmark} benchmark)", cfg.score_hp)
    try:
        method = get_method(cfg.method)
        method.check_space(method.Options(**cfg.method_options), space)
    except TypeError as e:  # an unknown option name
        raise ConfigError(f"method options of {cfg.method}: {e}") from None
    except ValueError as e:
        raise ConfigError(str(e)) from None


def check_train_subset(cfg: SearchConfig, half: int) -> None:
    """train_subset against the size of the halves the run will use (known once data is)."""
    if cfg.train_subset is not None and cfg.train_subset > half:
        raise ConfigError(f"train_subset must be at most {half} (the images in each half of the "
                          f"{cfg.split} split), got {cfg.train_subset}; none = the whole half")


def method_overrides(cls, space: str, profile: str) -> dict[str, Any]:
    """The method's overrides under `profile`: its own `profile_overrides` for `paper` and
    `smoke`; under `fair` only the FAIR_METHOD_KEYS of its `paper` overrides."""
    if profile == "fair":
        return {k: v for k, v in cls.profile_overrides(space, "paper").items() if k in FAIR_METHOD_KEYS}
    return cls.profile_overrides(space, profile)


def paper_vs_fair(space: str, method: str) -> dict[str, tuple[Any, Any]]:
    """What the method's `paper` config changes against `fair` on `space`: {field: (paper, fair)}
    (nested fields dotted, e.g. supernet.track_running_stats); identity fields left out."""
    def flat(d: dict, pre: str = "") -> dict:
        out = {}
        for k, v in d.items():
            if isinstance(v, dict) and v and k != "method_options":
                out.update(flat(v, f"{pre}{k}."))
            else:
                out[f"{pre}{k}"] = v
        return out
    a = flat(resolve_config(space, method, 0, "paper").to_json())
    b = flat(resolve_config(space, method, 0, "fair").to_json())
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b))
            if k not in IDENTITY_FIELDS and a.get(k) != b.get(k)}


def resolve_config(space: str, method: str, seed: int, profile: str,
                   epochs: int | None = None, sets: list[str] | None = None) -> SearchConfig:
    from methods.registry import get_method
    cls = get_method(method)
    d = {f.name: f.default for f in dataclasses.fields(SearchConfig)
         if f.default is not dataclasses.MISSING and f.name in SETTABLE}
    d.update(supernet={}, method_options={})
    d.update(space_profile(space, profile))
    d = apply_overrides(d, method_overrides(cls, space, profile))
    if epochs is not None:
        d["epochs"] = epochs
    d = apply_sets(d, sets or [], cls.option_names())
    implied = cls.option_overrides(space, profile, dict(d["method_options"]))
    if implied:  # fields a method option implies (e.g. bayesnas' procedure); the user's --set wins
        d = apply_overrides(d, implied)
        if epochs is not None:
            d["epochs"] = epochs
        d = apply_sets(d, sets or [], cls.option_names())
    if isinstance(d.get("a_betas"), list):
        d["a_betas"] = tuple(d["a_betas"])
    unknown = sorted(set(d) - set(SETTABLE))
    if unknown:  # a profile or a method's overrides naming no field: a bug, said plainly
        raise ConfigError(f"unknown config fields {unknown} from the {space!r} profile or {method}'s "
                          "overrides")
    cfg = SearchConfig(space=space, method=method, seed=seed, profile=profile, **d)
    validate_config(cfg)
    return cfg
