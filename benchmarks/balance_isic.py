"""Does GAN augmentation beat the strongest baselines? EfficientNet harness over several seeds.

    python benchmarks/balance_isic.py --preset quick --out runs/quick          # CPU, minutes: pipeline check
    python benchmarks/balance_isic.py --preset full --out benchmarks/results/ham10000_full
    python benchmarks/balance_isic.py --preset full --train-fraction 0.25 --out benchmarks/results/ham10000_frac025

See ga_bench/protocol.py for the protocol (ga_bench/arms.py for the arms); `--help` for every option.
"""

import sys

from ga_bench.balance_isic import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
