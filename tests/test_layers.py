"""The layering written down as code: data -> models/losses/augment -> training -> generator files -> balanced
dataset -> classifier harness -> benchmarks. A lower layer never imports a higher one (lazy imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from .conftest import REPO

# module prefix -> prefixes it must never import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "gan_augment.data": ("gan_augment.models", "gan_augment.losses", "gan_augment.augment", "gan_augment.training",
                         "gan_augment.generators", "gan_augment.balanced", "gan_augment.metrics", "gan_augment.cli"),
    "gan_augment.models": ("gan_augment.training", "gan_augment.generators", "gan_augment.balanced",
                           "gan_augment.metrics", "gan_augment.cli"),
    "gan_augment.losses": ("gan_augment.training", "gan_augment.balanced", "gan_augment.metrics"),
    "gan_augment.augment": ("gan_augment.training", "gan_augment.balanced", "gan_augment.metrics"),
    "gan_augment.training": ("gan_augment.balanced", "gan_augment.metrics", "gan_augment.cli"),
    "gan_augment.generators": ("gan_augment.training", "gan_augment.balanced", "gan_augment.metrics"),
    "gan_augment.sampling": ("gan_augment.training", "gan_augment.balanced", "gan_augment.metrics", "gan_augment.cli"),
    "gan_augment.balanced": ("gan_augment.training", "gan_augment.metrics", "gan_augment.cli"),
    # the downstream harness knows nothing of GAN training (reading generator files and data is fine)
    "classifier": ("gan_augment.training", "gan_augment.cli", "ga_bench", "benchmarks"),
}
LIBRARY_ROOTS = ("gan_augment", "classifier")  # installed packages: never import the benchmarks' package
LIBRARY_FORBIDDEN = ("ga_bench", "benchmarks")
LIBRARY_WIDE = {"gan_augment": ("classifier",)}  # except the CLI, the GAN library does not need the harness
LIBRARY_WIDE_EXCEPT = ("gan_augment.cli",)


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports, at any depth of the file (absolute names; relative ones resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.append((node.lineno, mod))
            found += [(node.lineno, f"{mod}.{a.name}") for a in node.names]  # "from pkg import submodule"
    return found


def _violations(files: list[Path], rules: dict[str, tuple[str, ...]], skip: tuple[str, ...] = ()) -> list[str]:
    bad = []
    for f in files:
        name = _module_name(f)
        if any(name == s or name.startswith(s + ".") for s in skip):
            continue
        for prefix, forbidden in rules.items():
            if not (name == prefix or name.startswith(prefix + ".")):
                continue
            for line, mod in imports_of(f):
                if any(mod == x or mod.startswith(x + ".") for x in forbidden):
                    bad.append(f"{f.relative_to(REPO)}:{line} imports {mod}")
    return sorted(set(bad))


def _library_files() -> list[Path]:
    return [p for root in LIBRARY_ROOTS for p in sorted((REPO / root).rglob("*.py"))]


def test_import_scanner_sees_lazy_and_relative_imports(tmp_path):
    pkg = REPO / "classifier"
    probe = pkg / "_layer_probe_tmp.py"
    probe.write_text("def f():\n    from gan_augment.training import train\n    from .engine import fit\n")
    try:
        found = [m for _, m in imports_of(probe)]
        assert "gan_augment.training" in found and "classifier.engine" in found
        assert _violations([probe], FORBIDDEN) == ["classifier/_layer_probe_tmp.py:2 imports gan_augment.training",
                                                   "classifier/_layer_probe_tmp.py:2 imports gan_augment.training.train"]
    finally:
        probe.unlink()


def test_classifier_harness_does_not_import_gan_training():
    files = sorted((REPO / "classifier").rglob("*.py"))
    assert files, "classifier/ has no modules?"
    assert _violations(files, {"classifier": FORBIDDEN["classifier"]}) == []


def test_no_library_module_imports_the_benchmarks():
    assert _violations(_library_files(), {r: LIBRARY_FORBIDDEN for r in LIBRARY_ROOTS}) == []


@pytest.mark.parametrize("layer", sorted(k for k in FORBIDDEN if k.startswith("gan_augment")))
def test_gan_augment_layers_import_only_downwards(layer):
    assert _violations(_library_files(), {layer: FORBIDDEN[layer]}) == []


def test_gan_augment_does_not_need_the_classifier_harness():
    assert _violations(_library_files(), LIBRARY_WIDE, skip=LIBRARY_WIDE_EXCEPT) == []


def test_no_code_file_is_over_400_lines():
    roots = ("gan_augment", "classifier", "benchmarks")
    long = {str(p.relative_to(REPO)): n for root in roots for p in (REPO / root).rglob("*.py")
            if "results" not in p.parts and (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert long == {}


def test_every_relative_import_resolves():
    """Lazy imports inside functions run only when called: check that each relative one names a real module."""
    import importlib.util
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        bad = []
        files = _library_files() + sorted((REPO / "benchmarks" / "ga_bench").rglob("*.py"))
        for f in files:
            tree = ast.parse(f.read_text(encoding="utf-8"))
            base = REPO / "benchmarks" if "ga_bench" in f.parts else REPO
            package = ".".join(f.relative_to(base).with_suffix("").parts[:-1] if f.name != "__init__.py"
                               else f.relative_to(base).parent.parts)
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.level:
                    name = "." * node.level + (node.module or "")
                    if importlib.util.find_spec(name, package) is None:
                        bad.append(f"{f.relative_to(REPO)}:{node.lineno} from {name}")
        assert bad == []
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
