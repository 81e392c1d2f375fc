import sys

from benchmark.retrain.cli import main

try:
    sys.exit(main())
except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback; nothing is lost
    print("interrupted: rerun the same command; each retraining resumes from its last checkpoint",
          file=sys.stderr)
    sys.exit(130)
