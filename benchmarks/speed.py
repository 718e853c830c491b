"""Speed ratios measured in one run: the GAN trainer vs a bare loop, sampling from a generator file, a classifier
epoch with GANBalancedDataset vs real images only, and FID feature extraction (see ga_bench/speed.py).

    python benchmarks/speed.py --quick --device cpu --out benchmarks/results/speed/cpu_quick
    python benchmarks/speed.py --device cuda --out benchmarks/results/speed/gpu
"""

import sys

from ga_bench.speed import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
