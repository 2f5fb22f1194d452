"""`tlbench report` on a small real run: each section carries the run's own numbers (parsed back from the
HTML), class names with HTML in them are text, and nothing in the file reaches for the network."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from helpers.data import write_image
from PIL import Image
from report_html import network_references, parse

from engine.cli.reproduce import train_command
from engine.core.events import JobFinished
from engine.core.jobs import run_job
from engine.core.runs import read_metrics
from engine.data.images import load_rgb
from engine.evaluate.explain import explain_pil, overlay
from engine.models.loading import load_run_model
from engine.report.render import report_job
from engine.train.config import TrainConfig
from engine.train.job import train

SCRIPT = "<script>alert(1)"  # a folder name cannot hold "/", so no "</script>"; the opening tag is the danger
IMG = "<img src=x onerror=alert(1)>"


def make_run(base: Path) -> Path:
    """A probe on 32 px images. "red" and SCRIPT hold the same colour, so the model confuses them: the report
    has mistakes, top losses and confused pairs to show."""
    data = base / "data"
    for name, colour in (("red", (200, 40, 40)), (SCRIPT, (200, 40, 40)), ("blue", (40, 60, 200)),
                         (IMG, (40, 180, 60))):
        for i in range(10):
            write_image(data / name / f"{i}.png", colour, 32, seed=i + 100 * len(name))
    cfg = TrainConfig(dataset=str(data), img_size=32, epochs=10, lr=1e-2, precision="fp32", workers=0,
                      val_fraction=0.4, runs_dir=str(base / "runs"))
    final = run_job("train", lambda ctx: train(cfg, ctx))
    assert isinstance(final, JobFinished) and final.reason == "completed", final
    return Path(final.result["run_dir"])


def make_report(runs: list[Path], out: Path | None = None, **kw) -> dict:
    final = run_job("report", lambda ctx: report_job(runs, out, ctx, train_command, **kw))
    assert isinstance(final, JobFinished) and final.reason == "completed", final
    return final.result


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    run_dir = make_run(tmp_path_factory.mktemp("report"))
    result = make_report([run_dir])
    html = Path(result["path"]).read_text(encoding="utf-8")
    return run_dir, result, html, parse(html)


def files_of(run_dir: Path) -> tuple[dict, dict, list[dict]]:
    return (json.loads((run_dir / "config.json").read_text()), json.loads((run_dir / "report.json").read_text()),
            read_metrics(run_dir))


def test_it_is_written_into_the_run_with_an_scp_line(probe):
    import socket

    run_dir, result, _html, _page = probe
    assert Path(result["path"]) == (run_dir / "report.html").resolve() and result["bytes"] > 0
    assert result["scp"] == f"scp {socket.gethostname()}:{(run_dir / 'report.html').resolve()} ."


def test_overview_curves_and_recipe_carry_the_runs_numbers(probe):
    run_dir, _result, _html, page = probe
    config, report, metrics = files_of(run_dir)
    assert float(page.one("section", data_section="overview").attrs["data-accuracy"]) == report["accuracy"]
    curves = page.one("section", data_section="curves")
    assert int(curves.attrs["data-epochs"]) == len(metrics) == 10
    for key in ("train_loss", "val_loss", "train_acc", "val_acc"):
        (line,) = curves.all("g", data_series=key)
        drawn = [float(v) for v in line.attrs["data-values"].split(",")]
        assert drawn == pytest.approx([m[key] for m in metrics], rel=1e-3), key
    assert curves.one("p", data_lr=True).text() == "Learning rate 0.01 in every epoch."
    command = page.one("pre", data_command=True).text()
    assert command == train_command(config) and "--precision fp32" in command and "--epochs 10" in command
    settings = {d.attrs["data-setting"]: d.all("span")[0].text() for d in page.all("div", data_setting=True)}
    assert settings["lr"] == "0.01" and settings["backbone"] == config["backbone"] and settings["seed"] == "0"


def test_dataset_and_environment_sections(probe):
    run_dir, _result, _html, page = probe
    config, report, _metrics = files_of(run_dir)
    dataset = page.one("section", data_section="dataset")
    assert int(dataset.attrs["data-classes"]) == len(config["classes"]) == 4
    rows = dataset.one("table", data_table="classes").all("tr", data_class=True)
    assert [r.attrs["data-class"] for r in rows] == config["classes"]
    supports = {p["class"]: p["support"] for p in report["per_class"]}
    assert {r.attrs["data-class"]: int(r.one("td", data_key="val").text()) for r in rows} == supports
    totals = {r.attrs["data-total"]: r.one("td").text() for r in dataset.all("tr", data_total=True)}
    assert totals["training images"] == str(config["train_images"]) and totals["validation images"] == str(
        config["val_images"])
    env = page.one("section", data_section="environment")
    assert env.one("tr", data_env="device").one("td").text() == config["device_resolved"] == "cpu"
    assert env.one("tr", data_version="torch").one("td").text() == config["versions"]["torch"]
    assert env.one("tr", data_time="created").one("td").text() == config["created"]


def test_confusion_per_class_and_most_confused(probe):
    run_dir, _result, _html, page = probe
    config, report, _metrics = files_of(run_dir)
    confusion = page.one("section", data_section="confusion")
    rows = confusion.all("tr", data_true=True)
    assert [r.attrs["data-true"] for r in rows] == config["classes"]
    assert [[int(td.attrs["data-n"]) for td in r.all("td", data_n=True)] for r in rows] == report["confusion"]
    per_class = page.one("section", data_section="per-class").all("tr", data_class=True)
    assert [r.attrs["data-class"] for r in per_class] == [p["class"] for p in report["per_class"]]
    for row, p in zip(per_class, report["per_class"]):
        cells = [c.attrs["data-value"] for c in row.all("td")[1:]]
        assert cells == ["" if p[k] is None else str(p[k]) for k in ("precision", "recall", "f1", "support")]
    pairs = page.one("section", data_section="most-confused").all("tr", data_count=True)
    assert report["most_confused"]  # red and SCRIPT look alike: the run makes mistakes
    assert [(r.attrs["data-true"], r.attrs["data-predicted"], int(r.attrs["data-count"])) for r in pairs] == [
        (p["true"], p["predicted"], p["count"]) for p in report["most_confused"]]


def decoded(uri: str) -> Image.Image:
    assert uri.startswith("data:image/jpeg;base64,")
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB")


def close(a: Image.Image, b: Image.Image) -> bool:
    """The same picture give or take JPEG: equal sizes, and 4x4-pixel block means within a few levels (the
    test images are noise, which JPEG changes pixel by pixel)."""
    def blocks(img: Image.Image) -> np.ndarray:
        x = np.asarray(img, dtype=np.float32)
        h, w = x.shape[0] // 4 * 4, x.shape[1] // 4 * 4
        return x[:h, :w].reshape(h // 4, 4, w // 4, 4, 3).mean((1, 3))
    return a.size == b.size and float(np.abs(blocks(a) - blocks(b)).mean()) < 4


def test_top_losses_are_pictures_with_the_grad_cam_of_the_runs_model(probe):
    """Each top loss at 224 px beside the Grad-CAM of the class the model predicted, as engine.evaluate.explain
    computes it with the run's model (JPEG-close); where the map is zero, a note instead of a copy."""
    run_dir, _result, _html, page = probe
    _config, report, _metrics = files_of(run_dir)
    model, record = load_run_model(run_dir, "cpu")
    figures = page.one("section", data_section="top-losses").all("figure")
    assert len(figures) == len(report["top_losses"]) > 0
    overlays = 0
    for fig, item in zip(figures, report["top_losses"]):
        assert float(fig.attrs["data-loss"]) == item["loss"] and fig.attrs["data-predicted"] == item["predicted"]
        img = load_rgb(item["path"])
        heat, _ = explain_pil(model, list(record.classes), record.preprocessing, img, "gradcam",
                              list(record.classes).index(item["predicted"]))
        picture, *cam = fig.all("img")
        assert picture.attrs["width"] == "224" and close(decoded(picture.attrs["src"]), img)
        if heat.max() > 0:
            overlays += 1
            assert "gradcam" in cam[0].attrs["class"]
            shown = decoded(cam[0].attrs["src"])
            assert close(shown, overlay(img, heat)) and not close(shown, img)
        else:
            assert not cam and "no evidence" in fig.text()
    assert overlays  # the data is not so degenerate that Grad-CAM is zero everywhere


def test_class_names_with_html_are_text(probe):
    _run_dir, _result, html, page = probe
    assert SCRIPT not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)" in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert len(re.findall(r"<script", html, re.I)) == 1  # the table sorter, ours
    assert all(img.attrs["src"].startswith("data:image/jpeg;base64,") for img in page.all("img"))
    names = {r.attrs["data-class"] for r in page.one("section", data_section="per-class").all("tr", data_class=True)}
    assert {SCRIPT, IMG} <= names  # the attributes give the names back exactly


def test_nothing_reaches_for_the_network(probe):
    _run_dir, _result, html, _page = probe
    assert network_references(html) == []
    # the checker itself sees what it must
    assert network_references('<img src="https://cdn.example.com/a.png"><link href="//fonts.example.org/f.css">'
                              "<style>@import 'x.css'; b{background:url(http://x.org/y.png)}</style>")


def test_without_gradcam_and_to_a_file_of_my_choice(probe, tmp_path):
    run_dir, _result, _html, _page = probe
    result = make_report([run_dir], tmp_path / "share.html", gradcam=False)
    page = parse((tmp_path / "share.html").read_text())
    assert result["path"] == str((tmp_path / "share.html").resolve())
    section = page.one("section", data_section="top-losses")
    assert not section.all("img", **{"class": "gradcam"}) and "Grad-CAM left out" in section.text()


def test_a_run_without_report_json_still_has_its_recipe_and_curves(probe, tmp_path):
    run_dir, _result, _html, _page = probe
    bare = tmp_path / run_dir.name
    bare.mkdir()
    for name in ("config.json", "metrics.jsonl"):
        (bare / name).write_bytes((run_dir / name).read_bytes())
    page = parse(Path(make_report([bare])["path"]).read_text())
    assert "tlbench eval" in page.one("section", data_section="overview").text()
    assert page.one("section", data_section="curves").attrs["data-epochs"] == "10"
    assert not page.all("section", data_section="confusion") and not page.all("section", data_section="top-losses")
