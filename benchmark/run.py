"""`python benchmark/run.py`: run a grid of searches (the harness's command line,
benchmark/harness/run_cli.py; `--help` lists every option)."""
import sys
from pathlib import Path

if not __package__:  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark.harness.run_cli import main  # noqa: E402

if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback; nothing is lost
        print("interrupted: rerun the same command; each run resumes from its last checkpoint",
              file=sys.stderr)
        sys.exit(130)

