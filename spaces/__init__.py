"""Search spaces, by name. Each entry is `module:attribute` of a space object, imported lazily."""
from __future__ import annotations

import importlib

_SPACES = {
    "nb201": "spaces.nb201:NB201Space",
    "darts": "spaces.darts:DartsSpace",
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
