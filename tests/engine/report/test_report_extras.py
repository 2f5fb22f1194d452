"""The report's sections that depend on what else a run has: a recorded split plan (split.json), an auto
search, robustness sweeps, attacks, dreams, the dataset's audit; the comparison of several runs; the command
line. One small real run, copied and given those files."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest
from helpers.data import make_dataset, write_image
from report_html import parse

from engine.cli import main
from engine.cli.reproduce import train_command
from engine.core.events import JobFinished
from engine.core.jobs import run_job
from engine.data.exclude import save_audit
from engine.report.render import report_job
from engine.train.config import TrainConfig
from engine.train.job import train


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("extras")
    data = make_dataset(base / "colours", {"red": 8, "blue": 8, "green": 8})
    cfg = TrainConfig(dataset=str(data), img_size=32, epochs=3, precision="fp32", workers=0,
                      runs_dir=str(base / "runs"))
    final = run_job("train", lambda ctx: train(cfg, ctx))
    assert isinstance(final, JobFinished) and final.reason == "completed", final
    return Path(final.result["run_dir"])


def copy_run(run_dir: Path, where: Path, name: str | None = None) -> Path:
    target = where / (name or run_dir.name)
    shutil.copytree(run_dir, target, ignore=shutil.ignore_patterns("report.html", "*.pt"))
    return target


def report_page(runs: list[Path], gradcam: bool = False):
    final = run_job("report", lambda ctx: report_job(runs, None, ctx, train_command, gradcam))
    assert isinstance(final, JobFinished) and final.reason == "completed", final
    return parse(Path(final.result["path"]).read_text(encoding="utf-8")), final.result


def edit_json(path: Path, **changes) -> dict:
    data = {**json.loads(path.read_text()), **changes}
    path.write_text(json.dumps(data))
    return data


def test_a_recorded_split_gives_counts_per_class_excluded_files_and_duplicate_groups(tmp_path):
    """The run's own split.json (engine.data.splits.plan_record): a marked file and a duplicate group that the
    plain split put on both sides, as training recorded them."""
    from engine.data.exclude import write_exclude
    from engine.data.splits import load_plan

    root = make_dataset(tmp_path / "colours", {"red": 8, "blue": 8, "green": 8})
    write_exclude(root, [str(root / "green" / "green_7.png")])
    save_audit(root, {"duplicates": [{"paths": [str(root / "blue" / f"blue_{i}.png") for i in range(8)]}]})
    cfg = TrainConfig(dataset=str(root), img_size=32, epochs=2, precision="fp32", workers=0,
                      runs_dir=str(tmp_path / "runs"))
    run = Path(run_job("train", lambda ctx: train(cfg, ctx)).result["run_dir"])
    plan = load_plan(run)
    assert plan is not None and plan["excluded_files"] == ["green/green_7.png"] and plan["groups_kept"]
    page, _ = report_page([run])
    dataset = page.one("section", data_section="dataset")
    rows = {r.attrs["data-class"]: (r.one("td", data_key="train").text(), r.one("td", data_key="val").text())
            for r in dataset.one("table", data_table="classes").all("tr", data_class=True)}
    want = {c: (str(sum(1 for _, k in plan["train"] if k == i)), str(sum(1 for _, k in plan["val"] if k == i)))
            for i, c in enumerate(plan["classes"])}
    assert rows == want and rows["blue"][1] == "0"  # the group kept whole on the training side
    excluded = dataset.one("div", data_list="excluded").all("figure")
    assert [f.attrs["data-path"] for f in excluded] == ["green/green_7.png"] and excluded[0].all("img")
    (group,) = dataset.all("div", data_group="1")
    shown = [f.text() for f in group.all("figcaption")]
    assert shown and shown == [f"blue/blue_{i}.png" for i in range(len(shown))]  # a long group is cut short
    assert "split.json" in dataset.text()


def test_an_auto_run_shows_its_winner_and_leaderboard_and_reproduces_the_search(run_dir, tmp_path):
    run = copy_run(run_dir, tmp_path)
    board = {"winner": "efficientnet_lite0@32+tta", "cv_accuracy": 0.91, "folds": 5, "budget_minutes": 2.0,
             "search_seconds": 42.0, "scored_on": "training split (18 images)",
             "winner_settings": {"backbone": "efficientnet_lite0", "img_size": 32, "tta": True},
             "leaderboard": [{"recipe": "efficientnet_lite0@32+tta", "cv_accuracy": 0.91, "cv_std": 0.04},
                             {"recipe": "efficientnet_lite0@32", "cv_accuracy": 0.88, "cv_std": 0.05},
                             {"recipe": "efficientnet_lite2@32", "skipped": "budget"}]}
    (run / "leaderboard.json").write_text(json.dumps(board))
    edit_json(run / "config.json", mode="auto", tta=True, budget=2.0,
              auto={k: v for k, v in board.items() if k != "leaderboard"})
    page, _ = report_page([run])
    recipe = page.one("section", data_section="recipe")
    assert recipe.one("p", data_auto_winner=True).attrs["data-auto-winner"] == board["winner"]
    assert "0.9100" in recipe.text() and "± 0.0400" in recipe.text()
    rows = recipe.one("table", data_table="leaderboard").all("tr", data_recipe=True)
    assert [r.attrs["data-recipe"] for r in rows] == [e["recipe"] for e in board["leaderboard"]]
    assert [r.all("td")[1].attrs["data-value"] for r in rows] == ["0.9100", "0.8800", "—"]
    command = page.one("pre", data_command=True).text()
    assert "--mode auto" in command and "--budget 2.0" in command
    assert "--img-size" not in command and "--tta" not in command  # what the search chose, it chooses again


def test_robustness_attacks_dreams_and_the_audit_when_the_run_has_them(run_dir, tmp_path):
    run = copy_run(run_dir, tmp_path)
    config = json.loads((run / "config.json").read_text())
    rows = [{"eps": e, "eps_text": t, "accuracy": a, "correct": int(a * 6), "images": 6}
            for e, t, a in ((0.0, "0", 1.0), (2 / 255, "2/255", 0.5), (8 / 255, "8/255", 0.0))]
    edit_json(run / "report.json", robustness={"pgd-linf": {"rows": rows, "steps": 10, "images": 6}})
    folder = run / "attacks" / "20260101-120000-pgd"
    pngs = {k: str(write_image(folder / f"01-red_0-{k}.png", (200, 40, 40))) for k in
            ("original", "adversarial", "perturbation")}
    (folder / "summary.json").write_text(json.dumps({
        "method": "pgd", "norm": "linf", "eps_text": "4/255", "steps": 10, "target": {"class": "blue"},
        "attacked": 1, "succeeded": 1, "results": [{
            "path": pngs["original"], "success": True, "before": [{"class": "red", "prob": 0.9}],
            "after": [{"class": "blue", "prob": 0.7}], "linf_255": 4.0, "files": pngs}]}))
    write_image(run / "dreams" / "20260101-120000-red-maco.png", (220, 30, 30), 64)
    dataset = config["dataset"]
    save_audit(dataset, {"dataset": dataset, "backbone": "efficientnet_lite0", "images": 24, "cv_accuracy": 0.95,
                         "label_issues": [{"path": f"{dataset}/red/red_3.png", "given": "red", "suggested": "blue",
                                           "score": 0.8}],
                         "outliers": [], "duplicates": [], "leaking_groups": 0})
    page, _ = report_page([run])
    robust = page.one("section", data_section="robustness")
    assert [(r.attrs["data-eps"], r.attrs["data-accuracy"]) for r in robust.all("tr", data_eps=True)] == [
        (str(r["eps"]), str(r["accuracy"])) for r in rows]
    assert robust.one("g", data_series="robust_accuracy").attrs["data-values"] == "1,0.5,0"
    (attack,) = page.one("section", data_section="attacks").all("figure")
    assert len(attack.all("img")) == 3 and "red 0.900 → blue 0.700" in " ".join(attack.text().split())
    (dream,) = page.one("section", data_section="dreams").all("figure")
    assert dream.text() == "20260101-120000-red-maco.png" and dream.all("img")
    audit = page.one("section", data_section="audit")
    (suspect,) = audit.all("figure")
    assert suspect.attrs["data-path"] == "red/red_3.png" and "looks like blue" in suspect.text()


def test_several_runs_are_compared(run_dir, tmp_path):
    first = copy_run(run_dir, tmp_path, "20260101-100000-colours-efficientnet_lite0-probe")
    second = copy_run(run_dir, tmp_path, "20260101-110000-colours-efficientnet_lite0-probe")
    edit_json(second / "config.json", lr=0.01, created="2026-01-01T11:00:00+0000")
    (second / "leaderboard.json").write_text(json.dumps({"winner": "w", "cv_accuracy": 0.8, "folds": 5,
                                                          "leaderboard": [{"recipe": "w", "cv_std": 0.03}]}))
    page, result = report_page([first, second])
    assert Path(result["path"]).parent == tmp_path and Path(result["path"]).name.endswith("compare-2-runs.html")
    compare = page.one("section", data_section="compare")
    rows = compare.one("table", data_table="compare").all("tr", data_run=True)
    assert [r.attrs["data-run"] for r in rows] == [first.name, second.name]
    accuracy = json.loads((run_dir / "report.json").read_text())["accuracy"]
    assert [r.one("td", data_key="accuracy").text() for r in rows] == [f"{accuracy:.4f}"] * 2
    assert [" ".join(r.one("td", data_key="cv").text().split()) for r in rows] == ["—", "0.8000 ± 0.0300 (5 folds)"]
    differing = [r.attrs["data-setting"] for r in compare.one("table", data_table="differing").all("tr", data_setting=True)]
    assert differing == ["lr"]  # not "created": it differs by construction
    series = [g.attrs["data-series"] for g in compare.all("g", data_series=True)]
    assert {"val_acc:1", "val_acc:2", "train_loss:1", "val_loss:2"} <= set(series)
    assert len(page.all("article", data_run=True)) == 2  # then each run's own sections


def test_the_command_prints_one_json_object_and_refuses_bad_input(run_dir, tmp_path, capfd):
    run = copy_run(run_dir, tmp_path)
    assert main(["report", str(run), "--no-gradcam", "--json"]) == 0
    out = json.loads(capfd.readouterr().out)
    assert out["path"] == str((run / "report.html").resolve()) and out["bytes"] == (run / "report.html").stat().st_size
    assert out["scp"].startswith(f"scp {socket.gethostname()}:")
    (tmp_path / "not-a-run").mkdir()
    assert main(["report", str(tmp_path / "not-a-run"), "--json"]) == 2
    error = json.loads(capfd.readouterr().out)["error"]
    assert error["exit_code"] == 2 and error["message"].startswith(f"{tmp_path / 'not-a-run'} is not a run folder "
                                                                   "(no config.json). Pass a folder under ")
    assert main(["report", str(run), "--out", str(tmp_path / "report.txt"), "--json"]) == 2
    assert "give a file name ending in .html" in json.loads(capfd.readouterr().out)["error"]["message"]
