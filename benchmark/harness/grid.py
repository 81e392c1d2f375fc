"""The grid of runs (space x method x seed) and the parsing of its command-line lists."""
from __future__ import annotations

from dataclasses import dataclass


class UsageError(ValueError):
    """Bad command-line input: exit code 2, the message says what is valid."""


def parse_seeds(text: str) -> list[int]:
    """'0-9,12' -> [0..9, 12]; ranges are inclusive and must not run backwards."""
    seeds: list[int] = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            raise UsageError(f"--seeds {text!r}: empty item; use e.g. 0-9,12")
        lo, sep, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise UsageError(f"--seeds {text!r}: {part!r} is not a seed or a range like 0-9") from None
        if a < 0 or b < a:
            raise UsageError(f"--seeds {text!r}: {part!r} must be non-negative and run upwards (e.g. 3-5)")
        seeds.extend(range(a, b + 1))
    return sorted(set(seeds), key=seeds.index)


def parse_names(text: str, valid: list[str], what: str) -> list[str]:
    names = [n.strip() for n in str(text).split(",") if n.strip()]
    if not names:
        raise UsageError(f"--{what}: give at least one; valid: {', '.join(valid)}")
    bad = [n for n in names if n not in valid]
    if bad:
        raise UsageError(f"--{what}: unknown {', '.join(map(repr, bad))}; valid: {', '.join(valid)}")
    return list(dict.fromkeys(names))


@dataclass(frozen=True)
class RunSpec:
    space: str
    method: str
    seed: int

    @property
    def label(self) -> str:
        return f"{self.space}/{self.method}/seed-{self.seed}"


def make_grid(spaces: list[str], methods: list[str], seeds: list[int]) -> list[RunSpec]:
    return [RunSpec(s, m, k) for s in spaces for m in methods for k in seeds]
