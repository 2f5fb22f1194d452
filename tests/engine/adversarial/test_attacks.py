"""Attacks: agreement with torchattacks, the chelsea -> golden retriever acceptance, the job's outputs and
events, robustness sweeps stored in the run's report, class names, and bad input."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.data import make_dataset
from PIL import Image
from torch import nn

from engine.adversarial.attack_job import AttackParams, attack_job
from engine.adversarial.attacks import fgsm, norms, pgd
from engine.adversarial.params import eps_text, parse_eps_list
from engine.adversarial.robustness import RobustnessParams, robustness_job
from engine.adversarial.target import freeze, resolve_class
from engine.core.errors import ConfigError
from engine.core.events import ImageRendered, JobFailed, JobFinished, StepEnded
from engine.core.jobs import JobControl, run_job
from engine.core.runs import update_report
from engine.models.classifier import Classifier

torchattacks = pytest.importorskip("torchattacks")


def small_cnn(num_classes: int = 5, seed: int = 0) -> Classifier:
    """A real Classifier (normalisation inside) small enough to attack in milliseconds."""
    torch.manual_seed(seed)
    backbone = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                             nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten())
    model = Classifier(backbone, nn.Linear(16, num_classes), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    return freeze(model)


def images(n: int = 4, size: int = 32, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g)


# ------------------------------------------------------------------------------------ vs torchattacks


@pytest.mark.parametrize("targeted", [False, True])
def test_pgd_linf_matches_torchattacks_on_efficientnet(targeted):
    from engine.models.build import build_classifier

    model = freeze(build_classifier("efficientnet_lite0", None)[0])
    x = images(2, 64)
    labels = torch.tensor([281, 207]) if targeted else model(x).argmax(1).detach()
    eps, alpha, steps = 4 / 255, 1 / 255, 5
    ref = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=False)
    if targeted:
        ref.set_mode_targeted_by_label(quiet=True)
    want = ref(x, labels)
    got = pgd(model, x, labels, eps=eps, alpha=alpha, steps=steps, targeted=targeted)
    assert (got - want).abs().max() <= 1e-5
    assert (got - x).abs().max() > 3.9 / 255  # it really moved: the comparison is not of two no-ops


def test_pgd_l2_and_fgsm_match_torchattacks():
    model = small_cnn()
    x = images()
    labels = model(x).argmax(1).detach()
    want = torchattacks.PGDL2(model, eps=0.5, alpha=0.1, steps=7, random_start=False)(x, labels)
    got = pgd(model, x, labels, eps=0.5, alpha=0.1, steps=7, norm="l2")
    assert (got - want).abs().max() <= 1e-5 and (got - x).abs().max() > 0.01
    want = torchattacks.FGSM(model, eps=8 / 255)(x, labels)
    got = fgsm(model, x, labels, 8 / 255)
    assert (got - want).abs().max() <= 1e-5


@pytest.mark.parametrize("norm,eps", [("linf", 8 / 255), ("l2", 0.75)])
def test_pgd_stays_in_the_ball_and_in_range(norm, eps):
    model = small_cnn()
    x = images()
    labels = model(x).argmax(1).detach()
    adv = pgd(model, x, labels, eps=eps, alpha=eps / 2, steps=6, norm=norm, random_start=True,
              generator=torch.Generator().manual_seed(0))
    linf, l2 = norms(adv, x)
    assert adv.min() >= 0 and adv.max() <= 1
    assert float((linf if norm == "linf" else l2).max()) <= eps + 1e-5
    assert float((linf if norm == "linf" else l2).min()) > eps / 4  # the steps used the budget


# ------------------------------------------------------------------------------------ the real photo


@pytest.fixture(scope="module")
def chelsea(tmp_path_factory) -> Path:
    skdata = pytest.importorskip("skimage.data")
    path = tmp_path_factory.mktemp("photo") / "chelsea.png"
    Image.fromarray(skdata.chelsea()).save(path)
    return path


@pytest.mark.slow
def test_targeted_pgd_turns_chelsea_into_a_golden_retriever(chelsea, tmp_path):
    events = []
    params = AttackParams(images=[str(chelsea)], backbone="efficientnet_lite0", method="pgd", eps="4/255",
                          target="golden retriever", out=str(tmp_path / "out"), device="cpu")
    final = run_job("attack", lambda ctx: attack_job(params, ctx), events.append)
    assert isinstance(final, JobFinished) and final.reason == "completed", final
    r = final.result["results"][0]
    assert r["label"]["class"] in ("tabby", "tiger cat", "Egyptian cat")  # a cat before
    assert r["after"][0]["class"] == "golden retriever" and r["target_prob"] >= 0.9
    assert r["success"] and r["linf"] <= 4 / 255 + 1e-6 and r["l2"] > 0
    assert r["png"]["success"]  # the 8-bit PNG still fools it
    steps = [e for e in events if isinstance(e, StepEnded)]
    assert [e.step for e in steps] == list(range(1, 11)) and all(e.kind == "attack" for e in steps)
    assert steps[0].values["target_prob"] < 0.01 < steps[-1].values["target_prob"]
    assert r["target_prob_per_step"] == pytest.approx([e.values["target_prob"] for e in steps], abs=1e-6)
    frames = [e for e in events if isinstance(e, ImageRendered)]
    assert sorted(e.kind for e in frames) == ["attack-adversarial", "attack-original", "attack-perturbation"]
    for e in frames:
        assert Path(e.path).exists() and e.width == e.height == 224 and len(e.pixels) == 224 * 224 * 3
    saved = np.asarray(Image.open(r["files"]["adversarial"]), dtype=np.int16)
    original = np.asarray(Image.open(r["files"]["original"]), dtype=np.int16)
    assert np.abs(saved - original).max() <= 4  # the file keeps the budget, in grey levels
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["succeeded"] == 1 and summary["eps_text"] == "4/255"


@pytest.mark.slow
def test_lesson_gradient_descent_and_transfer_check(chelsea, tmp_path):
    params = AttackParams(images=[str(chelsea)], backbone="efficientnet_lite0", method="gd", steps=15,
                          target=207, tv_weight=0.01, eval_on="efficientnet_lite1", out=str(tmp_path),
                          device="cpu")
    final = run_job("attack", lambda ctx: attack_job(params, ctx))
    assert isinstance(final, JobFinished), final
    r = final.result["results"][0]
    assert r["target_prob"] > 0.5 and len(r["target_prob_per_step"]) == 15
    assert r["linf"] > 4 / 255  # unbounded: it goes past any PGD budget used here
    ev = r["eval_on"]
    assert ev["backbone"] == "efficientnet_lite1" and "target_prob" in ev and isinstance(ev["success"], bool)
    assert ev["before"][0]["class"] in ("tabby", "tiger cat", "Egyptian cat")


# ------------------------------------------------------------------------------------ against a run


@pytest.fixture(scope="module")
def colour_run(tmp_path_factory):
    """A probe run on three colour classes at 32 px (trained once for the module, in private dirs)."""
    from engine.train.config import TrainConfig
    from engine.train.job import train

    base = tmp_path_factory.mktemp("colour-run")
    data = make_dataset(base / "colours", {"red": 10, "blue": 10, "green": 10})
    with pytest.MonkeyPatch.context() as mp:
        for var, sub in (("TLBENCH_CACHE", "cache"), ("TORCH_HOME", "torch")):
            mp.setenv(var, str(base / sub))
        mp.setenv("TLBENCH_OFFLINE", "1")
        cfg = TrainConfig(dataset=str(data), img_size=32, epochs=15, lr=1e-2, seed=3, runs_dir=str(base / "runs"))
        final = run_job("train", lambda ctx: train(cfg, ctx))
    assert isinstance(final, JobFinished) and final.reason == "completed", final
    return {"run_dir": final.result["run_dir"], "data": data, "val_acc": final.result["best_val_acc"]}


def test_untargeted_attack_on_a_run(colour_run, tmp_path):
    img = colour_run["data"] / "red" / "red_0.png"
    params = AttackParams(images=[str(img)], run_dir=colour_run["run_dir"], eps=0.5, steps=10,
                          device="cpu")
    final = run_job("attack", lambda ctx: attack_job(params, ctx))
    assert isinstance(final, JobFinished) and final.reason == "completed", final
    r = final.result["results"][0]
    assert r["label"]["class"] == "red" and r["after"][0]["class"] != "red" and r["success"]
    assert r["linf"] <= 0.5 + 1e-6 and "target_prob" not in r
    # PNGs go under the run by default
    assert Path(r["files"]["adversarial"]).is_relative_to(Path(colour_run["run_dir"]) / "attacks")


def test_robustness_sweep_is_saved_in_the_report(colour_run):
    run_dir = colour_run["run_dir"]
    update_report(Path(run_dir), {"evaluation": {"accuracy": 1.0}})  # another slice's key survives
    params = RobustnessParams(run_dir=run_dir, eps=parse_eps_list("0,8/255,1"), steps=5, batch_size=8,
                              device="cpu", workers=0)
    final = run_job("robustness", lambda ctx: robustness_job(params, ctx))
    assert isinstance(final, JobFinished) and final.reason == "completed", final
    r = final.result
    assert r["eps"] == [0.0, 8 / 255, 1.0] and r["images"] > 0
    assert r["accuracy"][0] == pytest.approx(colour_run["val_acc"])  # eps 0 is the clean accuracy
    assert r["accuracy"][0] >= r["accuracy"][1] >= r["accuracy"][2] and r["accuracy"][2] < r["accuracy"][0]
    fgsm_params = RobustnessParams(run_dir=run_dir, eps=[0, 1], method="fgsm", device="cpu", workers=0)
    run_job("robustness", lambda ctx: robustness_job(fgsm_params, ctx))
    report = json.loads((Path(run_dir) / "report.json").read_text())
    assert report["evaluation"] == {"accuracy": 1.0}
    assert set(report["robustness"]) == {"pgd-linf", "fgsm-linf"}
    assert report["robustness"]["pgd-linf"]["accuracy"] == r["accuracy"]
    assert report["robustness"]["fgsm-linf"]["eps"] == [0.0, 1.0]


def test_cli_bad_image_is_reported_and_the_others_still_run(colour_run, tmp_path, capfd):
    from engine.cli import main

    bad = tmp_path / "broken.jpg"
    bad.write_text("not an image")
    good = colour_run["data"] / "blue" / "blue_1.png"
    code = main(["attack", colour_run["run_dir"], str(bad), str(good), "--eps", "0.25", "--steps", "3",
                 "--target", "GREEN", "--out", str(tmp_path / "o"), "--device", "cpu", "--json"])
    out = json.loads(capfd.readouterr().out)
    assert code == 2 and out["failed"] == 1 and out["attacked"] == 1
    assert "not an image" in out["results"][0]["error"]
    assert out["results"][1]["path"] == str(good) and out["target"]["class"] == "green"
    assert len(list((tmp_path / "o").glob("*.png"))) == 3


@pytest.mark.parametrize("argv,needle", [
    (["--eps", "1.5"], "--eps 1.5 is out of range"),
    (["--eps=-1/255"], "is out of range"),
    (["--eps", "four"], "is not a number"),
    (["--steps", "0"], "--steps 0 is out of range"),
    (["--target", "golden retreiver"], "Did you mean 'golden retriever' (207)"),
    (["--method", "pgdd"], "Did you mean 'pgd'"),
    (["--method", "fgsm", "--norm", "l2"], "FGSM is an L-inf attack"),
])
def test_cli_bad_input_exits_2_naming_the_value(argv, needle, chelsea, capfd):
    from engine.cli import main

    code = main(["attack", "--backbone", "efficientnet_lite0", str(chelsea), *argv, "--json"])
    out = json.loads(capfd.readouterr().out)
    assert code == 2 and needle in out["error"]["message"], out


def test_robustness_rejects_bad_eps_and_other_data(colour_run, tmp_path):
    with pytest.raises(ConfigError, match="out of range"):
        RobustnessParams(run_dir=colour_run["run_dir"], eps=[0, 2]).validate()
    other = make_dataset(tmp_path / "other", {"cats": 3, "dogs": 3})
    params = RobustnessParams(run_dir=colour_run["run_dir"], data=str(other), device="cpu", workers=0)
    final = run_job("robustness", lambda ctx: robustness_job(params, ctx))
    assert isinstance(final, JobFailed) and "Pass the run's dataset" in str(final.error)


def test_attack_stops_between_images_and_keeps_what_it_did(colour_run, tmp_path):
    control = JobControl()
    img = str(colour_run["data"] / "red" / "red_1.png")
    params = AttackParams(images=[img, img, img], run_dir=colour_run["run_dir"], eps=0.1, steps=2,
                          out=str(tmp_path), device="cpu")

    def sink(event):
        if isinstance(event, ImageRendered) and event.kind == "attack-perturbation":
            control.stop()

    final = run_job("attack", lambda ctx: attack_job(params, ctx), sink, control)
    assert isinstance(final, JobFinished) and final.reason == "stopped"
    assert len(final.result["results"]) == 1


# ------------------------------------------------------------------------------------ names and numbers


def test_class_names_resolve_by_name_synonym_and_index():
    from engine.models.registry import imagenet_classes

    classes = imagenet_classes()
    assert resolve_class("tabby cat", classes) == 281
    assert resolve_class("TABBY", classes) == 281 and resolve_class("281", classes) == 281
    assert resolve_class(281, classes) == 281
    assert resolve_class("golden_retriever", classes) == 207
    assert resolve_class("Golden Retriever dog", classes) == 207
    with pytest.raises(ConfigError, match="out of range"):
        resolve_class("1000", classes)
    assert resolve_class("crane", classes) == 517 and resolve_class("Crane bird", classes) == 134
    with pytest.raises(ConfigError, match=r"ambiguous.*0 \('cat'\), 1 \('Cat'\)"):
        resolve_class("CAT", ["cat", "Cat", "dog"])
    with pytest.raises(ConfigError, match=r"Did you mean 'tiger cat' \(282\)"):
        resolve_class("cat", classes)


def test_eps_parsing_and_display():
    assert parse_eps_list("0,1/255, 8/255,0.5") == [0.0, 1 / 255, 8 / 255, 0.5]
    assert [eps_text(e) for e in (4 / 255, 0.5, 0.0)] == ["4/255", "0.5", "0"]
