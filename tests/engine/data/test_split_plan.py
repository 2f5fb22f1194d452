"""One plan of the data per run: made once, recorded in split.json, replayed by every later job (eval, resume,
robustness, auto's final fit) on the dataset as it is now, saying what changed; cross-validation keeps each
duplicate group in one fold and never scores an excluded file."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
from helpers.data import make_dataset

import engine.evaluate.crossval as crossval
import engine.evaluate.evaluation as evaluation
from engine.core.events import JobFinished
from engine.core.jobs import run_job
from engine.data.exclude import save_audit, write_exclude
from engine.data.scan import scan_dataset
from engine.data.splits import load_plan, plan_split, replay_plan, sample_groups
from engine.evaluate.crossval import stratified_folds
from engine.evaluate.evaluation import evaluate_run
from engine.features.compare import compare
from engine.train.config import TrainConfig
from engine.train.job import train


def probe(data, **kw) -> str:
    cfg = TrainConfig(dataset=str(data), mode="probe", img_size=32, epochs=3, workers=0, **kw)
    final = run_job("train", lambda ctx: train(cfg, ctx), lambda e: None)
    assert isinstance(final, JobFinished) and final.reason == "completed", final
    return final.result["run_dir"]


def audit_with_group(root, *names: str) -> None:
    """The dataset's last audit, as `tlbench audit` saves it, with one duplicate group of `names`."""
    save_audit(root, {"duplicates": [{"paths": [str(root / n) for n in names]}]})


def test_a_run_records_its_plan_and_eval_scores_exactly_its_validation_list(tmp_path, monkeypatch):
    data = make_dataset(tmp_path / "colours", {"red": 8, "blue": 8, "green": 8})
    write_exclude(data, [str(data / "red" / "red_0.png")])
    run_dir = probe(data)
    plan = load_plan(run_dir)
    config = json.load(open(f"{run_dir}/config.json"))
    assert plan is not None and plan["inputs"]["seed"] == config["seed"] and plan["digest"] == config["split_digest"]
    listed = {rel for rel, _ in plan["train"] + plan["val"]}
    assert "red/red_0.png" not in listed and len(listed) == 23 and plan["excluded"] == 1
    assert json.load(open(f"{run_dir}/report.json"))["n"] == len(plan["val"])

    scored: list[list[str]] = []
    real = evaluation.compute_logits
    monkeypatch.setattr(evaluation, "compute_logits",
                        lambda model, paths, *a, **k: scored.append(list(paths)) or real(model, paths, *a, **k))
    rel = lambda paths: sorted(os.path.relpath(p, data) for p in paths)  # noqa: E731
    evaluate_run(run_dir, workers=0)
    assert rel(scored[-1]) == sorted(r for r, _ in plan["val"])  # exactly the recorded list
    # the dataset changes after training: a file goes, one is added, and one more is marked
    gone, added, marked = plan["val"][0][0], data / "blue" / "blue_new.png", plan["val"][1][0]
    os.remove(data / gone)
    shutil.copy(data / "blue" / "blue_1.png", added)
    write_exclude(data, [str(data / "red" / "red_0.png"), str(data / marked)])
    said: list[str] = []
    run_job("eval", lambda ctx: evaluate_run(run_dir, ctx=ctx, workers=0),
            lambda e: said.append(getattr(e, "text", "")))
    assert rel(scored[-1]) == sorted(r for r, _ in plan["val"] if r not in (gone, marked))  # new file: not used
    text = " ".join(said)
    assert "1 gone or unusable" in text and "1 excluded since" in text and "1 new" in text and "--replan" in text
    # --replan: the split of the dataset as it is now (the exclude list applied, the new file drawn or not)
    evaluate_run(run_dir, workers=0, replan=True)
    fresh = plan_split(scan_dataset(data), config["val_fraction"], config["seed"])
    assert rel(scored[-1]) == rel(s.path for s in fresh.val) and marked not in rel(scored[-1])


def test_replay_names_every_kind_of_change(tmp_path):
    data = make_dataset(tmp_path / "colours", {"red": 5, "blue": 5})
    info = scan_dataset(data)
    plan = plan_split(info, 0.4, 0)
    from engine.data.splits import plan_record

    record = plan_record(plan, info, 0.4, 0, "auto", "auto")
    moved = plan.train[0]
    os.rename(moved.path, data / ("red" if "blue" in moved.path else "blue") / "moved.png")
    shutil.copy(plan.train[1].path, data / "red" / "new.png")
    train, val, changes = replay_plan(scan_dataset(data), record)
    assert changes.gone == [os.path.relpath(moved.path, data)] and changes.unknown and not changes.relabelled
    assert [s.path for s in val] == [s.path for s in plan.val]  # the validation list stands as recorded
    assert len(train) == len(plan.train) - 1


def test_folds_keep_each_duplicate_group_in_one_fold():
    labels = np.array([0] * 10 + [1] * 10)
    groups = list(range(20))
    groups[1] = groups[2] = groups[3] = 0  # a group of four copies in class 0
    groups[11] = 10  # a pair in class 1
    for seed in range(5):
        folds = stratified_folds(labels, 5, seed, groups)
        assert sorted(np.concatenate([te for _, te in folds]).tolist()) == list(range(20))
        fold_of = {int(i): f for f, (_, te) in enumerate(folds) for i in te}
        assert len({fold_of[i] for i in (0, 1, 2, 3)}) == 1 and fold_of[10] == fold_of[11]
    # without a group of two or more, the plain folds
    plain = stratified_folds(labels, 5, 0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(plain, stratified_folds(labels, 5, 0, list(range(20)))))


def test_sample_groups_follow_the_last_audit(tmp_path):
    data = make_dataset(tmp_path / "colours", {"red": 3, "blue": 3})
    audit_with_group(data, "red/red_0.png", "blue/blue_2.png")
    paths = [str(p) for p in sorted(data.glob("*/*.png"))]
    groups = sample_groups(data, paths)
    a, b = paths.index(str(data / "red/red_0.png")), paths.index(str(data / "blue/blue_2.png"))
    assert groups[a] == groups[b] and len(set(groups)) == len(paths) - 1


def test_compare_never_scores_an_excluded_file_and_folds_by_group(tmp_path, monkeypatch):
    data = make_dataset(tmp_path / "colours", {"red": 6, "blue": 6})
    write_exclude(data, [str(data / "red" / "red_1.png")])
    audit_with_group(data, "blue/blue_0.png", "blue/blue_3.png")
    scored: list[int] = []
    folds_seen = []
    real_cv, real_folds = crossval.cross_validate, crossval.stratified_folds

    def spy_cv(x, y, *a, **k):
        scored.append(len(y))
        return real_cv(x, y, *a, **k)

    def spy_folds(labels, k, seed, groups=None):
        folds_seen.append(groups)
        return real_folds(labels, k, seed, groups)

    import engine.features.compare as compare_module

    monkeypatch.setattr(compare_module, "cross_validate", spy_cv)
    monkeypatch.setattr(compare_module, "stratified_folds", spy_folds)
    out = run_job("compare", lambda ctx: compare(str(data), ["efficientnet_lite0"], ctx, folds=2, img_size=32,
                                                workers=0)).result
    assert out["images"] == 11 and out["excluded"] == 1 and scored == [11]
    groups = folds_seen[0]
    assert groups is not None and len(set(groups)) == 10  # the pair shares a group


def test_a_plan_is_the_same_list_on_any_machine(tmp_path):
    """The recorded lists are relative to the dataset root: the run's data moved elsewhere replays them."""
    data = make_dataset(tmp_path / "colours", {"red": 4, "blue": 4})
    info = scan_dataset(data)
    from engine.data.splits import plan_record

    record = plan_record(plan_split(info, 0.25, 3), info, 0.25, 3, "auto", "auto")
    moved = tmp_path / "elsewhere"
    shutil.copytree(data, moved)
    train, val, changes = replay_plan(scan_dataset(moved), record)
    assert not changes and {os.path.relpath(s.path, moved) for s in val} == {r for r, _ in record["val"]}
