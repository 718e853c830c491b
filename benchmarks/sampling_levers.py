"""Sampling-time levers on a trained generator, judged like every shipped one (see ga_bench/sampling_levers.py)."""

import sys

from ga_bench.sampling_levers import main

if __name__ == "__main__":
    sys.exit(main())
