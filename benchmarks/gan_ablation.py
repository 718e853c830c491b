"""What makes the discriminator learn? GAN variants from one base config, compared (see ga_bench/gan_ablation.py).

    python benchmarks/gan_ablation.py --base configs/quick_cpu.yaml --out benchmarks/results/gan_ablation_cpu32 \
        --set data.max_images=2000 --set train.n_dis=2
    python benchmarks/gan_ablation.py --base configs/ham10000_256.yaml --steps 3000 --features inception \
        --set model.resolution=128 --out benchmarks/results/gan_ablation_gpu128      # GPU
"""

import sys

from ga_bench.gan_ablation import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
