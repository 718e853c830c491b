"""``gan-augment serve``: a small web app to look at a generator's samples in a browser.

A page with a class picker, a seed and a number of samples shows a grid; ``GET /classes`` gives the generator's
classes and metadata as JSON, ``GET /sample?class=df&n=16&seed=0`` one PNG grid (``/sample.json`` the same
request's metadata with the PNG as a data URI). Bad requests (unknown class, ``n`` out of range, a seed that is
not an integer) answer 400 with a message naming the parameter. Images are sampled in batches of at most
``batch_size``, and ``n`` is capped at ``max_n``, so one request cannot exhaust memory. It listens on
127.0.0.1 unless told otherwise: it is a viewer, not an authenticated service.
"""

from __future__ import annotations

import base64
import html
import io
import os
from typing import Any

import torch

from .generators import load_generator
from .models import GeneratorBase

__all__ = ["create_app", "grid_png", "parse_sample_request", "BadRequest"]


class BadRequest(ValueError):
    """A request parameter is missing or out of range."""


def grid_png(images: torch.Tensor, nrow: int | None = None) -> bytes:
    """uint8 (N, C, H, W) images -> one PNG grid (1-channel images stay grey)."""
    from PIL import Image
    from torchvision.utils import make_grid

    nrow = nrow or max(1, int(round(len(images) ** 0.5)))
    grid = make_grid(images, nrow=nrow, padding=2, pad_value=255)  # (C', H, W) uint8, grey -> 3 equal channels
    array = grid.permute(1, 2, 0).numpy()
    img = Image.fromarray(array[:, :, 0] if images.shape[1] == 1 else array)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def parse_sample_request(args: Any, class_names: list[str] | None, *, max_n: int) -> tuple[Any, int, int]:
    """(class, n, seed) from query parameters, or :class:`BadRequest` naming the parameter at fault."""
    def integer(name: str, default: int) -> int:
        raw = args.get(name, None)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise BadRequest(f"{name} must be an integer, got {raw!r}") from None

    n = integer("n", 16)
    if not 1 <= n <= max_n:
        raise BadRequest(f"n must be between 1 and {max_n}, got {n}")
    seed = integer("seed", 0)
    if not 0 <= seed < 2**63:
        raise BadRequest(f"seed must be between 0 and 2**63 - 1, got {seed}")
    cls = args.get("class", None)
    if class_names is None:  # an unconditional generator
        if cls not in (None, ""):
            raise BadRequest("this generator is unconditional: leave out class")
        return None, n, seed
    if cls in (None, ""):
        raise BadRequest(f"class is required; classes are {class_names}")
    if cls not in class_names:
        raise BadRequest(f"unknown class {cls!r}; classes are {class_names}")
    return cls, n, seed


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gan-augment: {title}</title>
<style>body{{font-family:sans-serif;margin:1.5em;max-width:60em}} label{{margin-right:1em}}
img{{image-rendering:pixelated;width:min(100%,{width}px);border:1px solid #ccc}} .meta{{color:#555}}</style>
</head><body>
<h1>Generator samples</h1>
<p class="meta">{meta}</p>
<form id="f" action="/" method="get">
<label>class <select name="class" id="class">{options}</select></label>
<label>seed <input name="seed" id="seed" type="number" min="0" value="{seed}"></label>
<label>samples <input name="n" id="n" type="number" min="1" max="{max_n}" value="{n}"></label>
<button type="submit">Generate</button>
</form>
<p><img id="grid" alt="generated samples" src="{src}"></p>
<p class="meta">Synthetic images, not patients. {licence}</p>
</body></html>
"""


def create_app(generator: str | os.PathLike | GeneratorBase, *, max_n: int = 64, batch_size: int = 16,
               device: str = "cpu"):
    """A Flask app serving ``generator`` (a file or a loaded generator)."""
    from flask import Flask, Response, jsonify, request

    G = load_generator(generator, device=device) if not isinstance(generator, GeneratorBase) else generator
    meta = dict(getattr(G, "meta", {}) or {})
    class_names = list(G.class_names) if G.num_classes and G.class_names else (
        [str(i) for i in range(G.num_classes)] if G.num_classes else None)
    app = Flask("gan_augment.serve")

    def sample(cls, n: int, seed: int) -> torch.Tensor:
        index = None if cls is None else class_names.index(cls)
        return G.sample(n, index, seed=seed, batch_size=min(batch_size, n), device=device)

    def info() -> dict[str, Any]:
        return {"classes": class_names, "resolution": G.resolution, "channels": G.channels, "arch": meta.get("arch"),
                "step": meta.get("step"), "manifest_hash": meta.get("manifest_hash"), "max_n": max_n}

    @app.errorhandler(BadRequest)
    def bad_request(exc):
        return jsonify({"error": str(exc)}), 400

    @app.get("/classes")
    def classes():
        return jsonify(info())

    @app.get("/sample")
    def sample_png():
        cls, n, seed = parse_sample_request(request.args, class_names, max_n=max_n)
        return Response(grid_png(sample(cls, n, seed)), mimetype="image/png",
                        headers={"Cache-Control": "no-store"})

    @app.get("/sample.json")
    def sample_json():
        cls, n, seed = parse_sample_request(request.args, class_names, max_n=max_n)
        png = grid_png(sample(cls, n, seed))
        return jsonify({"class": cls, "n": n, "seed": seed, "resolution": G.resolution, "channels": G.channels,
                        "png": "data:image/png;base64," + base64.b64encode(png).decode()})

    @app.get("/")
    def page():
        try:
            cls, n, seed = parse_sample_request(request.args, class_names, max_n=max_n) if request.args else (
                class_names[0] if class_names else None, 16, 0)
        except BadRequest as exc:
            return Response(f"<p>Bad request: {html.escape(str(exc))}</p>", status=400, mimetype="text/html")
        options = "".join(f'<option value="{html.escape(c)}"{" selected" if c == cls else ""}>{html.escape(c)}'
                          "</option>" for c in (class_names or []))
        query = f"n={n}&seed={seed}" + (f"&class={html.escape(cls)}" if cls is not None else "")
        text = (f"{meta.get('arch', '?')} generator, {G.resolution} px, {G.channels} channel(s), step "
                f"{meta.get('step')}, trained on manifest {str(meta.get('manifest_hash'))[:12]}")
        licence = meta.get("licence") or "Check the training data's licence before reusing these images."
        return _PAGE.format(title=html.escape(text), meta=html.escape(text), options=options, seed=seed, n=n,
                            max_n=max_n, src=f"/sample?{query}", width=640,
                            licence=html.escape(str(licence)))

    app.config["GENERATOR_INFO"] = info()
    return app
