"""Methods by name. An entry is `module:Class`, imported only when asked for.

Adding a method: one file in methods/ with a SearchMethod subclass, one line here, one test.
"""
from __future__ import annotations

import importlib

_METHODS = {
    "darts": "methods.darts:Darts",
    "darts-2nd": "methods.darts:Darts2nd",
    "sdarts-rs": "methods.sdarts:SdartsRS",
    "sdarts-adv": "methods.sdarts:SdartsADV",
    "bayesnas": "methods.bayesnas:BayesNAS",
    "balenas": "methods.balenas:Balenas",
    "balenas-tf": "methods.balenas_tf:BalenasTF",
    "random-ws": "methods.random_ws:RandomWS",
}


def available() -> list[str]:
    return list(_METHODS)


def get_method(name: str):
    if name not in _METHODS:
        raise KeyError(f"unknown method {name!r}; valid: {', '.join(available())}")
    module, cls = _METHODS[name].split(":")
    return getattr(importlib.import_module(module), cls)
