"""`python -m benchmark.prepare {nb201,nb101} ...`: build the compact benchmark tables
(benchmark/tabular/prepare_cli.py)."""
import sys

from benchmark.tabular.prepare_cli import main

if __name__ == "__main__":
    sys.exit(main())
