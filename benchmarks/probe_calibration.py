"""The generator check applied to real images degraded in known ways (see ga_bench/probe_calibration.py)."""

import sys

from ga_bench.probe_calibration import main

if __name__ == "__main__":
    sys.exit(main())
