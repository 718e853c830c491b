"""Starting a run from a trained generator instead of random weights (``train.init_generator``).

Two uses: continuing a long run on a machine that does not have its checkpoints (a results folder or a package
ships the generator file, never the optimiser state; a cluster job's scratch disk is gone), and fine-tuning a
shipped generator on one's own data. G - and with it its EMA - starts from the file's weights (the file holds
the EMA, the better of the two); D and both optimisers start afresh. That costs more than it may seem: continuing
the shipped 64 px CPU generator this way, the fresh projected D started at chance and needed ~3,000 steps
(47 minutes on 2 cores) to get back to where the checkpointed one had been, and G gained nothing meanwhile
(benchmarks/results/warm_start_cpu64) - keep checkpoints when you can. The step counter continues from
the file's step, so step-based schedules (EMA start, transitional conditioning) do not restart and the exported
file's step counts every G update behind it.

The file's lineage - every generator file the chain started from, with the manifest it was trained on - is kept in
the new generator's metadata (``init_from``), so a benchmark can refuse a generator whose ancestor saw its test
images even when the last run was trained on the right split.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..generators import load_generator
from ..models import GeneratorBase
from ..pretrained import file_sha256, resolve_spec

__all__ = ["warm_start", "resolve_init_generator"]

_SAME = ("arch", "resolution", "channels", "z_dim", "num_classes")


def resolve_init_generator(spec: str) -> Path:
    """``pretrained:NAME`` -> the shipped file (hash-checked against its card); a path must exist."""
    path = Path(resolve_spec(spec))
    if not path.is_file():
        raise ValueError(f"train.init_generator: no generator file {path}")
    return path


def warm_start(G: GeneratorBase, spec: str, class_names: list[str]) -> dict[str, Any]:
    """Load the weights of the generator file ``spec`` into ``G`` (same architecture and classes, or a clear
    ValueError naming what differs); return what the run records of it: path, sha256, step, lineage."""
    path = resolve_init_generator(spec)
    source = load_generator(path)  # rebuilt from its metadata, its weights checked against that architecture
    meta = source.meta
    theirs = {k: getattr(source, k) for k in _SAME}
    ours = {k: getattr(G, k) for k in _SAME}
    differ = [k for k in _SAME if theirs[k] != ours[k]]
    if json.dumps(source.arch_args, sort_keys=True) != json.dumps(G.arch_args, sort_keys=True):
        differ.append("arch_args")
        theirs["arch_args"], ours["arch_args"] = source.arch_args, G.arch_args
    if differ:
        raise ValueError(f"train.init_generator {spec}: its generator differs from this run's model in "
                         + "; ".join(f"{k} ({theirs[k]} there, {ours[k]} here)" for k in differ)
                         + ": set the model section to the file's")
    if G.num_classes and list(meta.get("class_names") or []) != list(class_names):
        raise ValueError(f"train.init_generator {spec}: its classes {meta.get('class_names')} are not this run's "
                         f"{list(class_names)} (same names in the same order): a class-conditional generator's "
                         "rows would draw the wrong class")
    G.load_state_dict(source.state_dict(), strict=True)
    own = {"path": spec, "sha256": file_sha256(path), "step": int(meta.get("step") or 0),
           "manifest_hash": meta.get("manifest_hash"), "split": meta.get("split")}
    lineage = list((meta.get("init_from") or {}).get("lineage") or []) + [own]
    return {**own, "lineage": lineage}
