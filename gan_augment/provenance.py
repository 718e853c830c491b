"""Where a result came from: commit, command, hardware and library versions (stored with every benchmark)."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch

from ._io import display_path

__all__ = ["run_metadata", "library_versions", "device_name", "cpu_model", "utc_now"]

_PACKAGES = ("gan-augment", "torch", "torchvision", "timm", "albumentations", "torchmetrics", "piq", "lpips",
             "scikit-learn", "numpy", "safetensors")


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def device_name(device: str | torch.device | None = None) -> str:
    """GPU name for CUDA devices, else a CPU description with the core count."""
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"CPU {platform.machine()} x{os.cpu_count()} ({cpu_model() or platform.processor() or 'unknown'})"


def cpu_model(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> str | None:
    """The CPU's model name (Linux ``/proc/cpuinfo``; ``platform.processor()`` is empty there), with the vector
    extension that decides CPU speed and floating-point paths: timings and retrained weights differ between models."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return None
    model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), None)
    flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
    simd = next((f for f in ("avx512f", "avx2", "avx", "sse4_2") if f in flags), None)
    return f"{model}, {simd}" if model and simd else model


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _shown_arg(arg: str) -> str:
    """A command-line word with any absolute path in it (``/a/b``, ``key=/a/b``) shown by ``display_path``."""
    key, sep, value = arg.partition("=") if not os.path.isabs(arg) else ("", "", arg)
    return f"{key}{sep}{display_path(value)}" if os.path.isabs(value) else arg


def run_metadata(command: list[str] | None = None, device: str | torch.device | None = None) -> dict:
    """Commit (and whether the tree was dirty), command line, device, versions and UTC date."""
    repo = Path(__file__).resolve().parents[1]
    commit, source = _git(["rev-parse", "HEAD"], repo), "git"
    if commit is None:  # a copy without .git (the GPU machine): the caller names the commit it sent
        commit, source = os.environ.get("GAN_AUGMENT_COMMIT") or None, "GAN_AUGMENT_COMMIT"
    # "dirty" = uncommitted changes to tracked files other than benchmark outputs (which a run rewrites)
    dirty = _git(["status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)benchmarks/results"], repo)
    return {
        "commit": commit or "unknown",
        "commit_source": source if commit else None,
        "dirty": bool(dirty) if dirty is not None else None,
        "command": " ".join(_shown_arg(a) for a in (command if command is not None else sys.argv)),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "device": device_name(device),
        "versions": library_versions(),
        "date": utc_now(),
    }
