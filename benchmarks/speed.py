"""Throughput of the plug-in API: DataLoader images/s with GANBalancedDataset vs the real data alone (same
albumentations pipeline, same machine, one run, reported as a ratio) and generator sampling images/s at 256 px.

    python benchmarks/speed.py --out benchmarks/results/speed_cpu
    python benchmarks/speed.py --device cuda --out benchmarks/results/speed_gpu
"""

import sys

from classifier.speed import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
