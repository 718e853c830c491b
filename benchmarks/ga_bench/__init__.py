"""The benchmarks' own code: protocols, arms, runners and reports behind the thin scripts in ``benchmarks/``.

Not part of the installed library: the scripts put this folder's parent on ``sys.path`` by being run from it
(``python benchmarks/<script>.py``), and the tests through pytest's ``pythonpath``. It may import anything from
``gan_augment`` and ``classifier``; they never import it.
"""
