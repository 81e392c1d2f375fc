"""Typed run configuration and the profiles (`paper`, `smoke`) that fill it.

A config is a run's identity: every field changes what the run computes. Where a value comes
from is provenance and lives elsewhere (provenance.json). Resolution order: the space's
profile, then the method's source overrides, then the user's `--epochs` / `--set`.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

PROFILES = ("paper", "smoke")


@dataclass(frozen=True)
class SearchConfig:
    space: str
    method: str
    seed: int
    profile: str
    epochs: int = 50
    batch_size: int = 64
    supernet: dict = field(default_factory=dict)   # space-specific model arguments
    split: str = "official"            # official | random-half | contiguous
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


def _coerce(value: str, like: Any, key: str):
    """`--set key=value` text -> the type of the field's current value."""
    if isinstance(like, bool):
        if value.lower() in ("1", "true", "yes"):
            return True
        if value.lower() in ("0", "false", "no"):
            return False
        raise ValueError(f"--set {key}: expected true/false, got {value!r}")
    if like is None or isinstance(like, (tuple, list, dict)):
        return json.loads(value) if value.lower() != "none" else None
    return type(like)(value)


def apply_sets(base: dict, sets: list[str], method_option_names: list[str]) -> dict:
    """Apply `key=value`, `supernet.key=value` and `method.key=value` overrides."""
    out = json.loads(json.dumps(base))
    known = {f.name for f in dataclasses.fields(SearchConfig)}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: expected key=value")
        if key.startswith("method."):
            opt = key[len("method."):]
            if opt not in method_option_names:
                raise ValueError(f"--set {key}: this method has no option {opt!r}; "
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
        elif key in known and key not in ("space", "method", "seed", "profile", "data_md5"):
            out[key] = _coerce(value, out.get(key), key)
        else:
            raise ValueError(f"--set {key}: unknown setting; valid: {', '.join(sorted(known))}, "
                             "supernet.<arg>, method.<option>")
    return out


def resolve_config(space: str, method: str, seed: int, profile: str,
                   epochs: int | None = None, sets: list[str] | None = None) -> SearchConfig:
    from methods.registry import get_method
    cls = get_method(method)
    d = {f.name: f.default for f in dataclasses.fields(SearchConfig)
         if f.default is not dataclasses.MISSING}
    d.update(supernet={}, method_options={})
    d.update(space_profile(space, profile))
    d = apply_overrides(d, cls.profile_overrides(space, profile))
    if epochs is not None:
        d["epochs"] = epochs
    d = apply_sets(d, sets or [], cls.option_names())
    cls.Options(**d["method_options"])  # validate option names/values early
    d["a_betas"] = tuple(d["a_betas"])
    return SearchConfig(space=space, method=method, seed=seed, profile=profile, **d)
