"""`python -m bench.serving`: see bench/serving/cli.py."""

import sys

from bench.serving.cli import main

if __name__ == "__main__":
    sys.exit(main())
