"""`python -m benchmark.score --results results/`: (re)score every record with the scorer its
space names (benchmark/harness/scoring.py)."""
import sys

from benchmark.harness.scoring import main

if __name__ == "__main__":
    sys.exit(main())
