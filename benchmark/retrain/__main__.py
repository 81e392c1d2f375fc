import sys

if sys.argv[1:2] == ["select"]:   # the DARTS paper's selection protocol
    from benchmark.retrain.select import main as select_main

    def main():
        return select_main(sys.argv[2:])
else:
    from benchmark.retrain.cli import main

try:
    sys.exit(main())
except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback; nothing is lost
    print("interrupted: rerun the same command; each retraining resumes from its last checkpoint",
          file=sys.stderr)
    sys.exit(130)
