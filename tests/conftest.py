"""Shared fixtures. Every test runs with the network blocked: any attempt to reach a non-local host fails."""

from __future__ import annotations

import os
import socket
from pathlib import Path

# albumentations checks PyPI for a newer version at import; tests (and CI) must not touch the network.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GAN_AUGMENT_SHARED_DATA", REPO.parent / "shared" / "data"))
HAM_DIR = SHARED_DATA / "ham10000_200x150"
ISIC9_DIR = SHARED_DATA / "isic9_180"

needs_ham = pytest.mark.skipif(not (HAM_DIR / "HAM10000_metadata.csv").is_file(),
                               reason=f"HAM10000 not found at {HAM_DIR}")
# the embedded demo set (data/ham10000_demo64/): real HAM10000 images at 64 px on every machine, no skip
DEMO_DIR = REPO / "data" / "ham10000_demo64"
needs_isic9 = pytest.mark.skipif(not ISIC9_DIR.is_dir(), reason=f"ISIC-9 not found at {ISIC9_DIR}")


class NetworkAttempt(RuntimeError):
    pass


_real_connect = socket.socket.connect


def _guarded_connect(self, address):
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and (host.startswith("127.") or host in ("localhost", "::1") or host.startswith("/")):
        return _real_connect(self, address)
    if self.family == socket.AF_UNIX:
        return _real_connect(self, address)
    raise NetworkAttempt(f"test tried to reach the network: {address!r}")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", _blocked_getaddrinfo)
    yield


_real_getaddrinfo = socket.getaddrinfo


def _blocked_getaddrinfo(host, *args, **kwargs):
    if host in (None, "localhost") or (isinstance(host, str) and (host.startswith("127.") or host == "::1")):
        return _real_getaddrinfo(host, *args, **kwargs)
    raise NetworkAttempt(f"test tried to resolve {host!r}")


def make_image_folder(root: Path, counts: dict[str, int], size=(40, 30), mode="RGB", seed=0) -> Path:
    """Write ``counts[class]`` random JPEG/PNG images per class under ``root/<class>/``."""
    rng = np.random.default_rng(seed)
    for c, n in counts.items():
        d = root / c
        d.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 256, size=3)
        for i in range(n):
            arr = np.clip(base + rng.normal(0, 30, size=(size[1], size[0], 3)), 0, 255).astype(np.uint8)
            img = Image.fromarray(arr).convert(mode)
            ext = "png" if i % 2 else "jpg"
            img.save(d / f"{c}_{i:03d}.{ext}")
    return root


@pytest.fixture
def tiny_folder(tmp_path) -> Path:
    return make_image_folder(tmp_path / "imgs", {"alpha": 12, "beta": 6, "gamma": 4})
