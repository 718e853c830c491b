"""MedGAN's ISIC table (PSNR / MS-GMSD / LPIPS, paired-batch) next to ours, plus FID/KID.

    python benchmarks/medgan_isic.py --out benchmarks/results/medgan_isic_128 [--time-limit-minutes 20]
"""

import sys

from ga_bench.medgan_reproduction import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
