"""One training run's averages of G (train.ema_extra_decays), judged like every shipped generator (see
ga_bench/ema_lengths.py)."""

import sys

from ga_bench.ema_lengths import main

if __name__ == "__main__":
    sys.exit(main())
