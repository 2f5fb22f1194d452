"""The workflow as a user follows it (issue 22), headless: scan -> audit -> mark 3 suspects (the dataset's exclude
list, as the Audit view writes it) -> train --mode auto -> eval -> robustness -> explain -> export -> predict, and
the exported model run on the validation images. Each step is the `tlbench` command, run in this process.

What makes the features work together, checked along the way:

1. no file marked to leave out is opened by any job after the marks (every PIL open is recorded, forked
   DataLoader workers included);
2. eval scores exactly the validation list the run recorded (split.json), robustness a prefix of it;
3. no duplicate group of the audit straddles train/validation, nor the cross-validation folds auto scored its
   recipes on (a planted exact copy straddles the plain split, so the grouping has work to do);
4. eval, predict, explain and the exported model give every validation image the same class and probabilities
   (1e-4);
5. auto completes (no "dataset changed during the search") and its run records the marks (excluded_images).

One scenario on generated photos (always runs), one on real photos from ../shared/data (skipped where absent).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from helpers.data import CATS_DOGS
from workflow_data import generated_photos, plant_duplicates, real_photos

import engine.evaluate.evaluation as evaluation
import engine.train.auto.search as auto_search
from engine.cli import main
from engine.data.exclude import write_exclude
from engine.data.images import load_rgb
from engine.data.splits import load_plan
from engine.serve.export import load_exported

MARKS = 3
JOBS_AFTER_MARKS = ("train", "eval", "robustness", "explain", "export", "predict")
TOLERANCE = 1e-4


class OpenedFiles:
    """Every file PIL opens, under the step that was running: appended to a file, so a DataLoader worker forked
    by a job (it inherits this patch) records its opens too."""

    def __init__(self, log: Path, monkeypatch: pytest.MonkeyPatch):
        self.log, self.step = log, "setup"
        real = PIL.Image.open

        def recording_open(fp, *args, **kwargs):
            name = fp if isinstance(fp, (str, os.PathLike)) else getattr(fp, "name", None)
            if isinstance(name, (str, os.PathLike)):
                with open(self.log, "a", encoding="utf-8") as f:
                    f.write(f"{self.step}\t{os.path.realpath(name)}\n")
            return real(fp, *args, **kwargs)

        monkeypatch.setattr(PIL.Image, "open", recording_open)

    def by_step(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = defaultdict(list)
        if self.log.exists():
            for line in self.log.read_text(encoding="utf-8").splitlines():
                step, path = line.split("\t", 1)
                out[step].append(path)
        return out


def tlbench(capfd, *args) -> dict:
    """`tlbench ARGS --json` in this process: its one JSON object (exit code 0 asserted, stderr shown if not)."""
    code = main([*map(str, args), "--json"])
    out, err = capfd.readouterr()
    assert code == 0, f"tlbench {' '.join(map(str, args))} exited {code}\n{out[-3000:]}\n{err[-3000:]}"
    return json.loads(out)


# ------------------------------------------------------------------------------ the workflow


def choose_marks(audit: dict, keep_whole: set[str]) -> list[str]:
    """The top suspects, as a user marks them in the Audit view: label issues first, then outliers, then the
    extra copies of a duplicate group (a group's mark leaves its first image in); never a member of the planted
    groups, which must stay whole for the grouping checks."""
    candidates = ([i["path"] for i in audit["label_issues"]] + [o["path"] for o in audit["outliers"]]
                  + [p for d in audit["duplicates"] for p in d["paths"][1:]])
    marks = [p for p in dict.fromkeys(candidates) if os.path.realpath(p) not in keep_whole]
    assert len(marks) >= MARKS, f"the audit found too few suspects to mark: {audit}"
    return marks[:MARKS]


def workflow(root: Path, planted: dict[str, tuple[str, str]], img_size: int, tmp_path: Path, capfd,
             monkeypatch: pytest.MonkeyPatch) -> None:
    opened = OpenedFiles(tmp_path / "opened.tsv", monkeypatch)

    # scan, then the audit: it finds the planted duplicates
    opened.step = "scan"
    scanned = tlbench(capfd, "scan", root)
    assert not scanned["unreadable"], scanned["unreadable"]
    opened.step = "audit"
    audit = tlbench(capfd, "audit", root, "--img-size", img_size, "--folds", 3, "--workers", 0)
    groups = [[os.path.realpath(p) for p in d["paths"]] for d in audit["duplicates"]]
    for kind, pair in planted.items():
        assert any({os.path.realpath(p) for p in pair} <= set(g) for g in groups), (kind, audit["duplicates"])
    assert audit["leaking_groups"] >= 1  # the planted exact copy straddles the plain split

    # mark 3 suspects: the dataset's exclude list, as the Audit view writes it
    planted_files = {os.path.realpath(p) for pair in planted.values() for p in pair}
    marked = choose_marks(audit, {p for g in groups if set(g) & planted_files for p in g})
    write_exclude(root, marked)
    marked = {os.path.realpath(p) for p in marked}

    # train --mode auto, spying on the cross-validation folds its search scores recipes on (each candidate's
    # folds come right after its request for the training files' features)
    requested: list[list[str]] = []
    cv_calls: list[tuple[list[str], list[tuple[np.ndarray, np.ndarray]]]] = []
    real_features, real_folds = auto_search.view_features, auto_search.repeated_folds

    def features_spy(backbone, img_size, views, root_, paths, *a, **k):
        requested.append(list(paths))
        return real_features(backbone, img_size, views, root_, paths, *a, **k)

    def folds_spy(labels, k, seed, groups=None, repeats=1):
        fold_sets = real_folds(labels, k, seed, groups, repeats)
        assert len(requested[-1]) == len(labels)  # every file decoded: the rows are the files requested
        cv_calls.extend((requested[-1], folds) for folds in fold_sets)  # one set of folds per repeat
        return fold_sets

    monkeypatch.setattr(auto_search, "view_features", features_spy)
    monkeypatch.setattr(auto_search, "repeated_folds", folds_spy)
    opened.step = "train"
    # --holdout: the validation photos the later jobs score, held out of the search and of the final model
    trained = tlbench(capfd, "train", root, "--mode", "auto", "--budget", 0.25, "--img-size", img_size, "--folds", 3,
                      "--holdout", 0.2, "--workers", 0)
    run_dir = Path(trained["run_dir"])
    config = json.loads((run_dir / "config.json").read_text())
    assert config["mode"] == "auto" and config["auto"]["winner"]  # 5. it searched, chose, and trained
    assert config["excluded_images"] == MARKS
    trained_report = json.loads((run_dir / "report.json").read_text())

    plan = load_plan(run_dir)
    assert plan is not None and plan["excluded"] == MARKS
    side = {os.path.realpath(root / rel): name for name in ("train", "val") for rel, _ in plan[name]}
    val = [str(root / rel) for rel, _ in plan["val"]]
    assert not marked & set(side)  # the marks are in neither list

    # 3. duplicate groups: one side of the plan each; one fold each in every cross-validation of the search
    assert plan["moved"] >= 1  # the planted copy was moved to its original's side
    for g in groups:
        assert len({side[p] for p in g if p in side}) <= 1, (g, plan)
    assert cv_calls, "auto's search cross-validated nothing"
    straddle_checked = 0
    for paths, folds in cv_calls:
        assert not marked & {os.path.realpath(p) for p in paths}  # excluded files are never scored
        fold_of = {os.path.realpath(paths[int(i)]): f for f, (_, test) in enumerate(folds) for i in test}
        assert len(fold_of) == len(paths)  # every image is held out exactly once
        for g in groups:
            present = [p for p in g if p in fold_of]
            assert len({fold_of[p] for p in present}) <= 1, (g, present, fold_of)
            straddle_checked += len(present) >= 2
    assert straddle_checked, "no duplicate group reached the cross-validation: the fold check checked nothing"

    # eval: exactly the recorded validation list, the trained run's accuracy
    scored: list = []
    real_logits = evaluation.compute_logits

    def logits_spy(model, paths, *a, **k):
        logits, errors = real_logits(model, paths, *a, **k)
        scored.append((list(paths), logits, errors))
        return logits, errors

    monkeypatch.setattr(evaluation, "compute_logits", logits_spy)
    opened.step = "eval"
    evaluated = tlbench(capfd, "eval", run_dir, "--workers", 0)
    assert len(scored) == 1
    eval_paths, eval_logits, eval_errors = scored[0]
    assert eval_paths == val  # 2. the very list the run recorded, in its order
    assert evaluated["n"] == len(val) - len(eval_errors) == trained_report["n"]
    assert evaluated["accuracy"] == pytest.approx(trained_report["accuracy"], abs=1e-9)
    eval_probs = {p: eval_logits[i].softmax(0) for i, p in enumerate(eval_paths) if i not in eval_errors}

    # robustness on the first images of the validation list
    opened.step = "robustness"
    limit = min(6, len(val))
    swept = tlbench(capfd, "robustness", run_dir, "--eps", "0,2/255", "--steps", 2, "--limit", limit,
                    "--workers", 0)
    assert swept["images"] == limit and swept["rows"][0]["eps"] == 0
    assert set(opened.by_step()["robustness"]) == {os.path.realpath(p) for p in val[:limit]}

    # explain, export (pt2, the default), predict: the same class and probabilities as eval, image by image
    opened.step = "explain"
    explained = tlbench(capfd, "explain", run_dir, *val, "--out", tmp_path / "explained")
    opened.step = "export"
    export = tlbench(capfd, "export", run_dir)
    opened.step = "predict"
    classes = config["classes"]
    predicted = tlbench(capfd, "predict", run_dir, *val, "--top-k", len(classes))
    opened.step = "check"  # the test's own reads from here on
    run_export, exported_classes = load_exported(export["path"])
    assert export["format"] == "pt2" and exported_classes == classes

    explain_by_path = {r["path"]: r["target"] for r in explained["results"]}
    predict_by_path = {r["path"]: r for r in predicted["results"]}
    for path, want in eval_probs.items():
        row = predict_by_path[path]
        got = torch.zeros(len(classes))
        for p in row["predictions"]:
            got[classes.index(p["class"])] = p["prob"]
        top = int(want.argmax())
        assert (got - want).abs().max() <= TOLERANCE, ("predict", path, got, want)
        assert explain_by_path[path]["class"] == classes[top], ("explain", path)
        assert abs(explain_by_path[path]["prob"] - float(want[top])) <= TOLERANCE, ("explain", path)
        pixels = torch.from_numpy(np.asarray(load_rgb(path)).copy()).permute(2, 0, 1).unsqueeze(0)
        with torch.inference_mode():
            probs = run_export(pixels)[0].float()
        assert int(probs.argmax()) == top, ("export", path)
        assert (probs - want).abs().max() <= TOLERANCE, ("export", path, probs, want)

    # 1. after the marks, no job opened a marked file
    reads = opened.by_step()
    for step in JOBS_AFTER_MARKS:
        assert not marked & set(reads[step]), (step, sorted(marked & set(reads[step])))
    # and the training run read nothing outside its plan
    assert set(reads["train"]) <= set(side), sorted(set(reads["train"]) - set(side))
    assert marked <= set(reads["audit"]) | set(reads["scan"])  # (the recording sees these files at all)


def test_workflow_on_generated_photos(tmp_path, capfd, monkeypatch):
    root = generated_photos(tmp_path / "photos")
    planted = plant_duplicates(root, "coffee")
    workflow(root, planted, 64, tmp_path, capfd, monkeypatch)


@pytest.mark.slow
@pytest.mark.skipif(not CATS_DOGS.is_dir(), reason=f"real photos not here ({CATS_DOGS}): a clone without ../shared")
def test_workflow_on_real_photos(tmp_path, capfd, monkeypatch):
    root = real_photos(tmp_path / "cats-dogs")
    planted = plant_duplicates(root, "dogs")
    workflow(root, planted, 96, tmp_path, capfd, monkeypatch)
