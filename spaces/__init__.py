"""Search spaces, by name. Each entry is `module:attribute` of a space object, imported lazily."""
from __future__ import annotations

import importlib

_SPACES = {
    "nb201": "spaces.nb201:NB201Space",
    "darts": "spaces.darts:DartsSpace",
    "darts-s1": "spaces.darts:VARIANTS",   # the RobustDARTS spaces s1-s4 (spaces/darts/op_sets.py)
    "darts-s2": "spaces.darts:VARIANTS",
    "darts-s3": "spaces.darts:VARIANTS",
    "darts-s4": "spaces.darts:VARIANTS",
    "nb1shot1-s1": "spaces.nb1shot1:SPACES",
    "nb1shot1-s2": "spaces.nb1shot1:SPACES",
    "nb1shot1-s3": "spaces.nb1shot1:SPACES",
}


def available() -> list[str]:
    return list(_SPACES)


def get_space(name: str):
    if name not in _SPACES:
        raise KeyError(f"unknown search space {name!r}; valid: {', '.join(available())}")
    module, attr = _SPACES[name].split(":")
    obj = getattr(importlib.import_module(module), attr)
    return obj[name] if isinstance(obj, dict) else obj()


def space_for(name: str, supernet: dict | None = None):
    """The space `name` as one run configures it: a space whose choices depend on a supernet
    argument (the DARTS space's `supernet.op_set`) returns itself configured by `supernet`
    (`for_supernet`); any other space is returned as is."""
    space = get_space(name)
    return space.for_supernet(dict(supernet or {})) if hasattr(space, "for_supernet") else space
