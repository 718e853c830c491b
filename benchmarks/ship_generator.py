"""Ship a trained generator with the package (see ga_bench/ship_generator.py)."""

import sys

from ga_bench.ship_generator import main

if __name__ == "__main__":
    sys.exit(main())
