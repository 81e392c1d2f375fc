import sys

from benchmark.retrain.cli import main

sys.exit(main())
