"""``report.html``: the benchmark's report as one self-contained page - the verdict in one sentence at the top, the
plots and sample grids inline, the tables with their CIs - that opens in any browser, with no Python and no network.

Written beside ``report.md`` (same content, Markdown converted by the ``markdown`` package); every image is embedded
as a data URI, nothing is fetched.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from .protocol import MIN_SEEDS_FOR_VERDICT

__all__ = ["verdict_sentence", "report_html", "FIGURES"]

# (file under the results folder, caption), in the order the page shows them
FIGURES = (("balanced_accuracy.png", "Test balanced accuracy per arm (mean and std over seeds)"),
           ("per_class_recall.png", "Recall per class"),
           ("confusion_matrices.png", "Confusion matrices"),
           ("generator_check/samples_vs_real.jpg", "Generated images next to real held-out images, per class"),
           ("generator_check/samples_vs_real.png", "Generated images next to real held-out images, per class"))


def _pp(d: dict) -> str:
    return f"{d['mean'] * 100:+.1f} pp (95 % CI {d['ci_low'] * 100:+.1f} to {d['ci_high'] * 100:+.1f})"


def verdict_sentence(results: dict) -> str:
    """The answer in one sentence: the best GAN arm against the best baseline on test balanced accuracy, or why
    there is no answer yet (no GAN arm, fewer than ``MIN_SEEDS_FOR_VERDICT`` seeds)."""
    comp = results.get("comparison") or {}
    best = comp.get("best_baseline")
    gan = [a for a, d in comp.items() if a.startswith("gan") and isinstance(d, dict) and "balanced_accuracy" in d]
    if not best or not gan:
        return "No verdict: no GAN arm has been compared with the baselines yet."
    arm = max(gan, key=lambda a: comp[a]["balanced_accuracy"]["mean"])
    d, seeds = comp[arm]["balanced_accuracy"], len(comp[arm].get("seeds") or [])
    if seeds < MIN_SEEDS_FOR_VERDICT:
        return (f"No verdict: {seeds} seed{'s' if seeds != 1 else ''} (a verdict needs {MIN_SEEDS_FOR_VERDICT}); so "
                f"far the best GAN arm, {arm}, differs from {best} by {_pp(d)} in balanced accuracy.")
    if d["ci_low"] > 0:
        return f"GAN augmentation helped here: {arm} beat {best} by {_pp(d)} in balanced accuracy."
    if d["ci_high"] < 0:
        return (f"GAN augmentation did not help here: even the best GAN arm, {arm}, was worse than {best}, "
                f"{_pp(d)} in balanced accuracy.")
    return (f"GAN augmentation did not help measurably here: the best GAN arm, {arm}, was not distinguishable from "
            f"{best}, {_pp(d)} in balanced accuracy.")


def _figure(path: Path, caption: str) -> str:
    mime = "image/jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else "image/png"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(caption)}" src="data:{mime};base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def report_html(results: dict, markdown_text: str, folder: str | Path) -> str:
    """The page for a results folder: verdict, figures found in ``folder`` (inline), then the Markdown report."""
    import markdown

    folder = Path(folder)
    figures, shown = [], set()
    for name, caption in FIGURES:
        if (folder / name).is_file() and caption not in shown:
            figures.append(_figure(folder / name, caption))
            shown.add(caption)
    body = markdown.markdown(markdown_text, extensions=["tables", "sane_lists"], output_format="html")
    title = html.escape(markdown_text.splitlines()[0].lstrip("# ").strip() if markdown_text else "report")
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.45}"
             "table{border-collapse:collapse;margin:1em 0;font-size:.9em}td,th{border:1px solid #bbb;padding:.25em .5em}"
             "th{background:#f0f0f0}.verdict{font-size:1.3em;font-weight:600;padding:.8em;background:#fff4d6;"
             "border-left:6px solid #e0a800}figure{margin:1em 0}img{max-width:100%}figcaption{color:#555}"
             "blockquote{color:#444;border-left:4px solid #ccc;margin-left:0;padding-left:1em}")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title><style>{style}</style>"
            f"</head><body>\n<p class=\"verdict\">{html.escape(verdict_sentence(results))}</p>\n"
            + "\n".join(figures) + "\n" + body + "\n</body></html>\n")
