"""Does GAN augmentation help on *your* data? From a folder of images to a verdict within a time budget.

    python benchmarks/assess.py demo:ham10000-64 --budget 2h                  # the embedded HAM10000 demo set
    python benchmarks/assess.py path/to/ImageFolder --budget 2h --out runs/assess_mine
    python benchmarks/assess.py path/to/ImageFolder --budget 3h --out runs/assess_mine    # continue, larger budget

It splits the data (refusing a leaky split), measures this machine, prints the plan, trains a generator on the
training split for its share of the budget, runs the baselines and the recommended GAN arm over 3 seeds, and writes
report.md and report.html. See ga_bench/assess.py; `--help` for every option.
"""

import sys

from ga_bench.assess import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
