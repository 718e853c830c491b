"""Is it the colour? The shipped generators judged on per-image colour statistics (see ga_bench/colour_probe.py)."""

import sys

from ga_bench.colour_probe import main

if __name__ == "__main__":
    sys.exit(main())
