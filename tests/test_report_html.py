"""``report.html``: one self-contained page per benchmark folder, the verdict in one sentence at the top."""

from __future__ import annotations

import json
import re

import pytest

from ga_bench.report_html import report_html, verdict_sentence

from .conftest import REPO


def _results(mean, low, high, seeds=(0, 1, 2)):
    ci = {"mean": mean, "ci_low": low, "ci_high": high}
    return {"comparison": {"best_baseline": "aug_oversample", "goal": {}, "n_seeds": len(seeds),
                           "gan": {"seeds": list(seeds), "balanced_accuracy": {**ci, "mean": mean - 0.1}},
                           "gan_light": {"seeds": list(seeds), "balanced_accuracy": ci}}}


@pytest.mark.parametrize("mean, low, high, seeds, expected", [
    (0.05, 0.01, 0.09, (0, 1, 2), "GAN augmentation helped here: gan_light beat aug_oversample by +5.0 pp "
                                  "(95 % CI +1.0 to +9.0) in balanced accuracy."),
    (-0.05, -0.09, -0.01, (0, 1, 2), "GAN augmentation did not help here: even the best GAN arm, gan_light, was "
                                     "worse than aug_oversample, -5.0 pp (95 % CI -9.0 to -1.0) in balanced accuracy."),
    (-0.014, -0.05, 0.02, (0, 1, 2), "GAN augmentation did not help measurably here: the best GAN arm, gan_light, "
                                     "was not distinguishable from aug_oversample, -1.4 pp (95 % CI -5.0 to +2.0)"),
    (0.05, 0.01, 0.09, (0,), "No verdict: 1 seed (a verdict needs 3); so far the best GAN arm, gan_light, differs "
                             "from aug_oversample by +5.0 pp"),
])
def test_the_verdict_in_one_sentence(mean, low, high, seeds, expected):
    assert verdict_sentence(_results(mean, low, high, seeds)).startswith(expected)


def test_no_gan_arm_no_verdict():
    assert verdict_sentence({"comparison": {"best_baseline": "aug"}}) == \
        "No verdict: no GAN arm has been compared with the baselines yet."
    assert verdict_sentence({}).startswith("No verdict")


def test_the_page_of_a_committed_folder_stands_alone():
    folder = REPO / "benchmarks" / "results" / "ham10000_cpu64_full"
    results = json.loads((folder / "results.json").read_text())
    page = report_html(results, (folder / "report.md").read_text(), folder)
    body = page.split("<body>", 1)[1]
    assert body.lstrip().startswith('<p class="verdict">GAN augmentation did not help measurably here: the best GAN '
                                    "arm, gan_light, was not distinguishable from aug_oversample, -1.4 pp")
    images = re.findall(r'<img alt="[^"]*" src="data:image/(png|jpeg);base64,', page)
    assert images == ["png", "png", "png", "jpeg"]  # three plots and the generated-vs-real grid, inline
    assert not re.search(r'(src|href)="(https?:|//|file:)', page) and "<script" not in page and "<link" not in page
    assert page.count("<table>") >= 5 and "<td>aug_oversample</td>" in page  # the report's tables, as tables
    assert "+0.3 [-1.2, +1.9]" in page  # a CI cell of the comparison table
