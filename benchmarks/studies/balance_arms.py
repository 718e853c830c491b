"""The benchmark with the studies' one-idea arms added (``studies.arms``): the same command line, options and
folders as ``benchmarks/balance_isic.py``; a folder whose runs include ``gan_rare``, ``gan_matched``,
``gan_real_last``, ``gan_crt``, ``gan_real_ft`` or ``gan_uniform`` is reproduced and reported through this script.

    python benchmarks/studies/balance_arms.py --preset cpu64 --out benchmarks/results/ham10000_cpu64_lite128 \\
        --arms gan_light,gan_matched --generator pretrained:ham10000-64-lite128 \\
        --baselines-from benchmarks/results/ham10000_cpu64_full
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: python benchmarks/studies/balance_arms.py
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import studies.arms  # noqa: E402,F401  (registers the arms)
import studies.teach  # noqa: E402,F401  (the regimes study's mechanisms and their controls)
from ga_bench.balance_isic import main  # noqa: E402

__all__ = ["main"]


if __name__ == "__main__":
    raise SystemExit(main(__import__("sys").argv[1:], script="benchmarks/studies/balance_arms.py"))
