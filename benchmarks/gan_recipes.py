"""GAN recipes compared at equal CPU time at 64 px (see ga_bench/gan_recipes.py)."""

import sys

from ga_bench.gan_recipes import main

if __name__ == "__main__":
    sys.exit(main())
