"""Research studies: one-off questions about generators and GAN arms, apart from the product benchmark.

Each module is also a script (``python benchmarks/studies/gan_ab.py --help``); each writes a results folder whose
README gives its question, its answer and the command that reproduces it (``benchmarks/results/README.md``).
The product benchmark a user runs is ``benchmarks/balance_isic.py`` over :mod:`ga_bench`; studies import from it,
never the other way round.
"""
