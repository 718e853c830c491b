"""Running the benchmark: every (arm, seed) once, resumable, pausable; the generator and its check."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from pathlib import Path

import numpy as np
import torch

from classifier import FitConfig, classification_metrics, create_classifier, fit, predict
from gan_augment import distributed as gdist
from gan_augment._io import display_path, write_json, write_text
from gan_augment.classifier_file import load_classifier, save_classifier
from gan_augment.data import Manifest
from gan_augment.generators import read_generator_metadata
from gan_augment.pretrained import file_sha256
from gan_augment.provenance import device_name, run_metadata, utc_now

from .arms import ArmData
from .external import external_dataset, external_metrics, external_rescore
from .judge import JUDGE, check_judge, judge_path, restore_judge
from .protocol import (BASELINES, PROTOCOL_KEYS, REPO, BenchmarkConfig, arm_dose, arm_spec, check_generator, known_arms,
                       prepare_manifest, rare_classes_of, rare_classes_source, resolve_generator)
from .report_html import report_html
from .report import aggregate, compare, external_summary, plots, reference_summary, report_markdown
from .runs_status import _arg, run_commits
from .shared_regime import load_upper_bound, shared_generator_summary
from .gan_stage import _check_feature_weights, _generator_check, _train_generator, train_generator  # noqa: F401

__all__ = ["Runner", "run_benchmark", "baselines_source", "train_generator"]


class Runner(ArmData):
    """Trains and tests one (arm, seed) at a time; a finished run's record is never redone."""

    def __init__(self, cfg: BenchmarkConfig, manifest: Manifest, out: Path, deadline: float | None = None,
                 baseline_runs: Path | None = None):
        self.out = out
        self.runs = out / "runs"
        self.runs.mkdir(parents=True, exist_ok=True)
        # --baselines-from: the baselines' records (and the aug classifier) live in another folder, read only
        self.baseline_runs = baseline_runs or self.runs
        super().__init__(cfg, manifest, judge_path(out, self.baseline_runs))
        self.deadline = deadline  # time.monotonic() value after which no new run starts
        self.longest_run_s = 0.0  # the next run is assumed to take as long as the longest so far
        self.generator_id: dict | None = None  # path, sha256, step of the GAN arms' generator (in their records)
        self.started: dict | None = None  # run_metadata() read when the benchmark started: each record's code
        self.external_ds, self.external_info = None, None  # --external-test: the images, what the report says
        if cfg.external_test:
            self.external_ds, self.external_info = external_dataset(cfg, manifest, out, self)
            self.external_labels = np.asarray(self.external_ds.targets)

    def _check_time(self, what: str) -> None:
        """Pause (TimeoutError) when ``what`` would probably not finish before the deadline."""
        if self.deadline is None:
            return
        over = time.monotonic() + self.longest_run_s > self.deadline
        if gdist.broadcast_flag(over, self.device):  # under torchrun every rank stops together
            done = len(list(self.runs.glob("*_seed*.json")))
            raise TimeoutError(f"time limit of {self.cfg.time_limit_minutes} min: paused before {what} with {done} "
                               f"(arm, seed) runs saved in {self.runs}; rerun the same command to continue")

    def folder(self, arm: str) -> Path:
        """Where the records (and test probabilities) of ``arm`` live."""
        return self.baseline_runs if arm in BASELINES else self.runs

    def read(self, arm: str, seed: int) -> dict | None:
        """The record of a finished run, or None; a ValueError for one trained for other epochs than these."""
        path = self.folder(arm) / f"{arm}_seed{seed}.json"
        if not path.is_file():
            return None
        record = json.loads(path.read_text())
        trained = len(record.get("history") or [])
        if trained and trained != self.epochs:
            raise ValueError(f"{path}: trained for {trained} epochs, this benchmark trains {self.epochs}: a folder "
                             "holds one protocol (another --out, or delete its runs/ to start over)")
        for key, (ours, option) in arm_dose(arm, self.cfg).items():  # a GAN arm's dose: another is another arm
            theirs = record.get(key)
            if theirs is not None and theirs != ours:
                theirs, ours = _arg(theirs), _arg(ours)
                raise ValueError(f"{path}: {key} {theirs} there, {ours} here: a folder holds one protocol (pass "
                                 f"{option} {theirs} to continue it, or another --out)")
        return record

    def train_model(self, arm: str, seed: int):
        """Train ``arm`` at ``seed`` (its own seed for the data order and the head); (model, spec, fit result,
        the arm's record fields - its class weights among them)."""
        cfg, arm_def = self.cfg, arm_spec(arm)
        if arm_def.loaders is not None:  # a study arm that draws another arm's set, or ends on another loader
            loader, weights, info, final_loader, final_epochs = arm_def.loaders(self, arm, seed)
        else:
            (loader, weights, info), final_loader, final_epochs = self.train_set(arm, seed), None, 0
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # same initial head for every arm with this seed
            model, spec = create_classifier(cfg.classifier, num_classes=len(self.class_names),
                                            pretrained=True if cfg.pretrained == "true" else
                                            (False if cfg.pretrained == "false" else "auto"),
                                            allow_download=cfg.allow_download, in_chans=self.channels)
            fcfg = FitConfig(epochs=self.epochs, lr=cfg.lr, weight_decay=cfg.weight_decay,
                             warmup_epochs=cfg.warmup_epochs, class_weights=weights, device=str(self.device),
                             seed=seed, progress=cfg.progress, desc=f"{arm} seed {seed}", final_epochs=final_epochs)
            if arm_def.fit is not None:  # a study arm that trains otherwise (a second stage, ...)
                model, fr = arm_def.fit(self, arm, seed, model, loader, fcfg, info, final_loader)
            else:
                model, fr = fit(model, loader, self.loader(self.val), self.class_names, fcfg,
                                final_loader=final_loader)
        return model, spec, fr, {**info, "class_weights": weights}

    def save_judge(self, model, spec, path: Path) -> None:
        """The real-trained classifier the generator check and gan_filtered use, with what loading it needs."""
        save_classifier(model, path, family=spec.family, name=spec.name, class_names=self.class_names,
                        image_size=self.cfg.image_size, mean=list(self.mean), std=list(self.std),
                        extra={"manifest_hash": self.manifest.hash, "arm": "aug"})

    def save_classifier(self, model, spec, arm: str, seed: int) -> Path:
        """``--keep-classifiers``: the run's classifier beside its record, loadable with
        :func:`gan_augment.classifier_file.load_classifier` (to score it later on an external test set)."""
        path = self.runs / f"{arm}_seed{seed}_classifier.safetensors"
        save_classifier(model, path, family=spec.family, name=spec.name, class_names=self.class_names,
                        image_size=self.cfg.image_size, mean=list(self.mean), std=list(self.std),
                        extra={"manifest_hash": self.manifest.hash, "arm": arm, "seed": seed})
        return path

    def score_external(self, model, arm: str, seed: int) -> dict:
        """The classifier's scores on the external test set (its probabilities kept beside the record)."""
        probs, _ = predict(model, self.loader(self.external_ds), device=self.device)
        np.save(self.runs / f"{arm}_seed{seed}_external_probs.npy", probs.astype(np.float32))
        return {**external_metrics(probs, self.external_labels, self.class_names, self.external_info["scored_classes"]),
                "set": self.external_info["set_id"]}

    def add_external(self, arm: str, seed: int, record: dict) -> dict:
        """A finished run scored on the external set from its kept classifier (``--keep-classifiers``) when it has no
        score on this set yet (``external.external_rescore``: one on another set and no classifier is an error)."""
        path, mine = self.folder(arm) / f"{arm}_seed{seed}.json", self.folder(arm) == self.runs
        kept = self.runs / f"{arm}_seed{seed}_classifier.safetensors" if mine else None
        kept = self.runs / JUDGE if kept and not kept.is_file() and (arm, seed) == ("aug", 0) else kept  # the same
        if self.external_ds is None or not external_rescore(record, self.external_info, path, kept):
            return record
        if self.dist.is_main:
            model, _ = load_classifier(kept, device=self.device)
            record["external_test"] = self.score_external(model, arm, seed)
            write_json(path, record)
        return record

    def run(self, arm: str, seed: int) -> dict:
        result_path = self.runs / f"{arm}_seed{seed}.json"
        if (done := self.read(arm, seed)) is not None:
            return self.add_external(arm, seed, done)
        if self.cfg.report_only or self.folder(arm) != self.runs:  # a baseline of another folder is read there
            return done
        self._check_time(f"{arm} seed {seed}")
        t0 = time.monotonic()
        model, spec, fr, info = self.train_model(arm, seed)
        self.longest_run_s = max(self.longest_run_s, time.monotonic() - t0)
        if not self.dist.is_main:  # rank 0 tests and writes; the others read its record
            gdist.barrier()
            return json.loads(result_path.read_text())
        probs, labels = predict(model, self.loader(self.test), device=self.device)
        metrics = classification_metrics(probs, labels, self.class_names)
        np.save(self.runs / f"{arm}_seed{seed}_test_probs.npy", probs.astype(np.float32))
        if arm == "aug" and seed == 0:  # the real-trained classifier used to check and filter the GAN
            self.save_judge(model, spec, self.runs / JUDGE)
        if self.cfg.keep_classifiers:
            self.save_classifier(model, spec, arm, seed)
        record = {"arm": arm, "seed": seed, "test": metrics, "best_epoch": fr.best_epoch,
                  "best_val_balanced_accuracy": fr.best_val_balanced_accuracy, "history": fr.history,
                  "seconds": fr.seconds, "train_images_per_second": fr.images_per_second,
                  "pretrained": spec.pretrained, **info}
        if arm.startswith("gan"):  # so that a later run with another generator cannot reuse this record
            record["generator"] = self.generator_id
        if self.external_ds is not None:
            record["external_test"] = self.score_external(model, arm, seed)
        if self.generator is not None and (check := self.synthetic_test(model, seed)) is not None:
            record["synthetic_test"] = check  # baselines too, when the generator is known before they run
        if self.started:  # a folder grown over many invocations has runs of several commits and machines
            record["provenance"] = {**{k: self.started[k] for k in ("commit", "dirty")},
                                    "started": self.started["date"], "finished": utc_now(),
                                    "device": device_name(self.device)}
        write_json(result_path, record)
        gdist.barrier()
        return record

    @property
    def epochs(self) -> int:
        return self.cfg.resolved_epochs()


def run_benchmark(cfg: BenchmarkConfig, command: list[str] | None = None, *, run_estimate_s: float = 0.0,
                  extra: dict | None = None) -> dict:
    """Run (or resume) the benchmark; writes results.json, report.md and plots under ``cfg.out``.

    ``run_estimate_s``: how long the first (arm, seed) run of this call is expected to take, so that the time limit
    does not start one that cannot finish (later runs are judged by the longest so far); ``extra``: keys added to
    the results before the report is written (``assess.py``'s plan and stage times)."""
    unknown = [a for a in cfg.arms if a not in known_arms()]
    if unknown:
        raise ValueError(f"unknown arms {unknown}; choose from {list(known_arms())} (the studies' one-idea arms - "
                         "gan_rare, gan_matched, gan_real_last, gan_crt, gan_real_ft, gan_uniform - run through "
                         "benchmarks/studies/balance_arms.py)")
    n_epochs = cfg.resolved_epochs()
    for arm in cfg.arms:
        if (validate := arm_spec(arm).validate) is not None:
            validate(cfg, n_epochs)
    if cfg.synthetic_test_per_class < 0:
        raise ValueError("--synthetic-test-per-class must be >= 0 (0 skips the test), got "
                         f"{cfg.synthetic_test_per_class}")
    limit = cfg.time_limit_minutes
    deadline = time.monotonic() + limit * 60 if limit else None  # counted from the start, caching included
    started = run_metadata(command)  # the code the runs used: the tree may change before the report is written
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    info, _ = gdist.init_from_env(cfg.device)  # under torchrun: join the group; rank 0 writes every file
    with gdist.main_first():
        manifest = prepare_manifest(cfg, out)
    if cfg.prepare_only:
        return {"manifest": str(out / "manifest.csv"), "manifest_hash": manifest.hash,
                "counts": {s: dict(c) for s, c in manifest.counts().items()}}
    generator_asked = cfg.generator  # as given (pretrained:NAME, a path): what the record keeps
    if cfg.generator and any(a.startswith("gan") for a in cfg.arms):
        cfg.generator = resolve_generator(cfg.generator)  # pretrained:NAME -> its file, hash-checked
        # refuse before spending any classifier run
        check_generator(cfg.generator, manifest, from_full_split=cfg.generator_from_full_split)
    if any(a.startswith("gan") for a in cfg.arms):
        _check_feature_weights(cfg)  # likewise: the generator check must be able to run
    baseline_runs = baselines_source(cfg, manifest, out) if cfg.baselines_from else None
    upper = load_upper_bound(cfg, manifest) if cfg.upper_bound_from else None  # the shared-generator regime
    restore = check_judge(cfg, out, baseline_runs or out / "runs")  # refused here, before any work
    runner = Runner(cfg, manifest, out, deadline, baseline_runs)
    runner.started = started
    runner.longest_run_s = run_estimate_s
    judge = {"restored": restore_judge(runner, out, command)} if restore else {}
    runner.filter_classifier = judge_path(out, runner.baseline_runs)
    rare_names = rare_classes_of(runner.train_real.targets, runner.class_names, given=cfg.rare_classes,
                                 share=cfg.rare_share)
    rare = [runner.class_names.index(c) for c in rare_names]
    records: dict[str, list[dict]] = {}
    order = [a for a in cfg.arms if not a.startswith("gan")]
    gan_arms = [a for a in cfg.arms if a.startswith("gan")]
    filtered = any(arm_spec(a).filtered for a in gan_arms)
    if filtered and "aug" not in order:
        order.append("aug")  # the filter and the generator check need the real-trained classifier

    if cfg.generator and gan_arms:  # resolved and checked above: the baselines' classifiers are tested on its images
        runner.generator = cfg.generator

    def finished(arm: str, seeds) -> list[dict]:  # every run trained or read; under --report-only the done ones
        return [r for r in (runner.run(arm, s) for s in seeds) if r is not None]

    for arm in order:
        records[arm] = finished(arm, cfg.seeds)
    generator_info = None
    if gan_arms:
        if not records.get("aug") and (filtered
                                       or not (out / "generator_check" / "metrics.json").is_file()):
            records["aug"] = finished("aug", cfg.seeds[:1])  # the judge: trained here unless read or not needed
        if cfg.report_only and not cfg.generator:
            raise ValueError("--report-only with GAN arms needs --generator (the generator their runs used)")
        if cfg.generator:
            check_generator(cfg.generator, manifest, from_full_split=cfg.generator_from_full_split)
            gen_path = cfg.generator
        else:
            gen_path = str(_train_generator(cfg, out / "manifest.csv", out, deadline, runner.channels))
            check_generator(gen_path, manifest)
        runner.generator = gen_path
        gen_meta = read_generator_metadata(gen_path)
        shown = Path(gen_path).resolve()  # the report names a shipped generator by its place in the repository
        runner.generator_id = {"path": str(shown.relative_to(REPO)) if shown.is_relative_to(REPO) else gen_path,
                               "sha256": file_sha256(gen_path), "step": gen_meta.get("step")}
        _check_same_generator(runner, out)  # before any run or report mixes two generators
        generator_info = {"path": runner.generator_id["path"], "sha256": runner.generator_id["sha256"],
                          "step": gen_meta.get("step"),
                          "from_full_split": gen_meta.get("manifest_hash") != manifest.hash,
                          "check": _generator_check(cfg, runner, gen_path, out)}
        for arm in gan_arms:
            records[arm] = finished(arm, cfg.seeds)
        # compared with every baseline finished at these seeds, asked for or not: a run of GAN arms alone must
        # not be judged against `aug` just because the generator check needed it (read, never trained here)
        for arm in BASELINES:
            if arm not in order:  # `aug` too, when the check read it at seed 0 only
                records[arm] = [r for r in (runner.read(arm, s) for s in cfg.seeds) if r is not None]
    records = {a: records[a] for a in [x for x in known_arms() if records.get(x)]}
    if not records:
        raise ValueError(f"--report-only: no finished run of arms {cfg.arms} and seeds {cfg.seeds} in {runner.runs}")
    arms = aggregate(records, runner.class_names, rare)
    regime = cfg.regime()
    meta = run_metadata(command, device=runner.device)
    meta.update({k: started[k] for k in ("commit", "commit_source", "dirty")}, started=started["date"])
    meta.update({"regime": regime, "manifest_hash": manifest.hash, "preset": cfg.preset,
                 "world_size": info.world_size})
    results = {
        "meta": meta,
        "config": {**dataclasses.asdict(cfg), "generator": display_path(generator_asked)},
        "epochs": runner.epochs,
        "pretrained": records[next(iter(records))][0]["pretrained"],
        "data": {"class_names": runner.class_names, "counts": {s: dict(c) for s, c in manifest.counts().items()},
                 "channels": runner.channels, "resize": cfg.resize,
                 "dropped_leaked": [{"path": lk.path, "split": lk.split, "copy_of": lk.other_path,
                                     "copy_split": lk.other_split, "why": lk.why} for lk in manifest.dropped_leaked],
                 "counts_table": manifest.counts_table(), "train_total": len(runner.train_real)},
        "arms": arms,
        "rare_classes": rare_names,
        "rare_classes_source": rare_classes_source(runner.train_real.targets, runner.class_names,
                                                   given=cfg.rare_classes, share=cfg.rare_share),
        "comparison": compare(arms, runner.folder, runner.test_labels, rare, "full" if regime == "full" else "frac",
                               cfg.n_boot),
    }
    if upper is not None:
        results["shared_generator"] = shared_generator_summary(upper, arms, runner.folder, runner.test_labels,
                                                               len(runner.train_real), generator_asked, cfg.n_boot)
    if runner.external_ds is not None:
        results["external"] = external_summary(records, runner.folder, runner.external_labels, runner.class_names,
                                               runner.external_info, cfg.n_boot)
    results["run_commits"] = run_commits(records)
    if generator_info:
        results["generator"] = generator_info
    if baseline_runs is not None:
        results["baselines_from"] = str(baseline_runs.parent)
    if judge or (out / "judge" / "restore.json").is_file():  # the judge was retrained here (--restore-judge)
        results["judge_restored"] = judge.get("restored") or json.loads((out / "judge" / "restore.json").read_text())
    # every finished run in the folder (the baselines': in theirs), so a report written for a subset (--arms /
    # --seeds) still says what else is done, and what the preset plans that is not
    done = (_finished_in(runner.runs, lambda a: runner.folder(a) == runner.runs)
            | _finished_in(runner.baseline_runs, lambda a: a in BASELINES))
    results["runs_finished"] = [list(r) for r in sorted(done, key=lambda r: (r[1], r[0]))]
    if cfg.reference:
        results["reference"] = reference_summary(cfg.reference)
    results.update(extra or {})
    if info.is_main:
        write_json(out / "results.json", results)
        markdown_text = report_markdown(results)
        write_text(out / "report.md", markdown_text)
        plots(results, out)
        write_text(out / "report.html", report_html(results, markdown_text, out))  # one page, images inline
    gdist.barrier()
    return results


def _finished_in(folder: Path, keep) -> set[tuple[str, int]]:
    found = (re.fullmatch(r"(.+)_seed(\d+)", p.stem) for p in folder.glob("*_seed*.json"))
    return {(m[1], int(m[2])) for m in found if m and keep(m[1])}


def baselines_source(cfg: BenchmarkConfig, manifest: Manifest, out: Path) -> Path:
    """``--baselines-from DIR``: the runs folder of another benchmark whose baseline runs this one reads (never
    trains), e.g. to compare a second generator with baselines already run. Refused unless DIR ran the same
    protocol on the same split: its manifest's hash and every setting that shapes a classifier run must match."""
    src = Path(cfg.baselines_from)
    if src.resolve() == out.resolve():
        raise ValueError(f"--baselines-from {src} is this benchmark's own folder (--out): leave it out")
    results_path, manifest_path = src / "results.json", src / "manifest.csv"
    for path in (manifest_path, results_path):
        if not path.is_file():
            raise ValueError(f"--baselines-from {src}: no {path.name} there (a benchmark folder with finished, "
                             "reported runs: run it, or its --report-only, first)")
    theirs = Manifest.read(manifest_path).hash
    if theirs != manifest.hash:
        raise ValueError(f"--baselines-from {src}: its split {manifest_path} (hash {theirs[:12]}) is not this "
                         f"benchmark's (hash {manifest.hash[:12]}): its baselines were tested on other images")
    try:
        results = json.loads(results_path.read_text())
        config = results["config"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"--baselines-from {src}: {results_path} is not a benchmark's results ({exc})") from None
    epochs = cfg.resolved_epochs()
    differ = [f"{key} {config.get(key)!r} there, {getattr(cfg, key)!r} here" for key in PROTOCOL_KEYS
              if config.get(key) != getattr(cfg, key)]
    if results.get("epochs") != epochs:
        differ.append(f"epochs {results.get('epochs')!r} there, {epochs!r} here")
    if differ:
        raise ValueError(f"--baselines-from {src}: its runs used another protocol ({'; '.join(differ)}), so "
                         "they cannot be compared with runs made here")
    return src / "runs"


def _check_same_generator(runner: Runner, out: Path) -> None:
    """A folder's GAN runs and generator check belong to one generator. Refuse (naming the file) to resume, or
    report over, runs made with another one - a second generator gets its own ``--out`` (and can read this
    folder's baselines with ``--baselines-from``). Records from before generators were recorded are accepted."""
    now = runner.generator_id
    hint = (f"give each generator its own --out (--baselines-from {out} reads this folder's baseline runs "
            "without retraining them)")
    for record in sorted(runner.runs.glob("gan*_seed*.json")):  # every GAN run in the folder, any arm or seed
        used = json.loads(record.read_text()).get("generator") or {}
        if used.get("sha256") and used["sha256"] != now["sha256"]:
            raise ValueError(f"{record} was trained with the GAN images of {used.get('path')} (step "
                             f"{used.get('step')}, sha256 {used['sha256'][:12]}), not of {now['path']} (step "
                             f"{now['step']}, sha256 {now['sha256'][:12]}): {hint}")
    check = out / "generator_check" / "metrics.json"
    if check.is_file():
        used = json.loads(check.read_text()).get("generator") or {}
        same = (used["sha256"] == now["sha256"] if used.get("sha256") else
                Path(used.get("path", "")).name == Path(now["path"]).name and used.get("step") == now["step"])
        if not same:
            raise ValueError(f"{check} measured {used.get('path')} (step {used.get('step')}), not {now['path']} "
                             f"(step {now['step']}): {hint}, or delete {check.parent} to check this one here")
