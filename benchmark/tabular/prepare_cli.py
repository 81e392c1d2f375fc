"""Build the suite's compact benchmark tables: `python -m benchmark.prepare {nb201,nb101} ...`.

A dispatcher: each subcommand lives in its own module exposing
`add_arguments(parser)` and `main(args) -> int`, imported only when chosen so that one
converter's heavy dependencies (or absence) never affect another.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

# subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "nb201": ("benchmark.tabular.nb201_convert",
              "NAS-Bench-201 / NATS-Bench tss (or the CSV layout) -> nb201.parquet"),
    "nb101": ("benchmark.tabular.nb101_convert",
              "NAS-Bench-101 nasbench_only108.tfrecord -> compact NB101 table"),
}

EXIT_OK, EXIT_BAD_INPUT = 0, 2


def _load(module_name: str):
    """The converter module, or None when it is not installed (only that module missing)."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise  # a dependency of an existing module is missing: show the real error
        return None


def build_parser(argv: Sequence[str]) -> tuple[argparse.ArgumentParser, dict[str, object]]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmark.prepare",
        description="Convert an official benchmark file once into the suite's compact table.")
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(SUBCOMMANDS) + "}")
    sub.required = True
    modules: dict[str, object] = {}
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        # Import only the chosen converter (all of them for top-level --help).
        module = _load(module_name) if chosen in (None, name) else None
        if module is not None:
            module.add_arguments(p)
            modules[name] = module
    return parser, modules


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, modules = build_parser(argv)
    # parse_known_args: a missing converter's options are unknown, yet it should say it is missing
    args, unknown = parser.parse_known_args(argv)
    module = modules.get(args.command)
    if module is not None and unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if module is None:
        module_name = SUBCOMMANDS[args.command][0]
        print(f"error: the {args.command} converter ({module_name}) is not available in this "
              "installation yet.", file=sys.stderr)
        return EXIT_BAD_INPUT
    return int(module.main(args))


if __name__ == "__main__":
    sys.exit(main())
