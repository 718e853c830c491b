"""A paired A/B of training recipes from one start generator (see ga_bench/gan_ab.py)."""

import sys

from ga_bench.gan_ab import main

if __name__ == "__main__":
    sys.exit(main())
