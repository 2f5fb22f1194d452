"""A backbone family plugs in from outside engine/models (tests/helpers/tiny_family.py, registered with
register_family): it is listed, searched and described like the built-in ones, and a probe and a head run
train, evaluate and predict through it."""

import json

import pytest
from helpers.tiny_family import TinyCNN, TinyFamily

from engine.cli import main
from engine.core.errors import ConfigError
from engine.core.events import JobFinished, LogLine
from engine.core.jobs import run_job
from engine.models.build import backbone_info, build_classifier
from engine.models.loading import load_run_model
from engine.models.registry import (
    available_backbones,
    family_of,
    get_spec,
    register_family,
    remove_family,
    search_backbones,
    weights_identity,
)
from engine.serve.predict import predict_paths
from engine.train.config import TrainConfig
from engine.train.job import train


@pytest.fixture
def tiny(tmp_path):
    family = TinyFamily(tmp_path / "tiny-weights")
    family.ship("tiny_cnn", seed=0)
    register_family(family)
    yield family
    remove_family(family.name)


def test_a_registered_family_is_listed_searched_and_described(tiny):
    assert available_backbones()[-2:] == ["tiny_cnn", "tiny_cnn_wide"]  # after the built-in families
    assert search_backbones("tiny wide") == ["tiny_cnn_wide"]
    assert family_of("tiny_cnn") is tiny and get_spec("tiny_cnn").family == "tiny"
    row = backbone_info("tiny_cnn")
    assert (row["family"], row["feature_dim"], row["weights"]) == ("tiny", 32, "shipped")
    assert backbone_info("tiny_cnn_wide")["weights"] == "missing"  # never shipped: its family says so
    assert weights_identity(get_spec("tiny_cnn")) == "tiny:tiny_cnn.pt"
    model, identity = build_classifier("tiny_cnn", 3)
    assert identity == "tiny:tiny_cnn.pt" and isinstance(model.backbone, TinyCNN) and model.head.in_features == 32
    with pytest.raises(ConfigError, match="already registered"):
        register_family(TinyFamily(tiny.weights_dir))


def test_a_removed_family_is_unknown_again(tiny):
    get_spec("tiny_cnn")  # remembered while registered
    remove_family("tiny")
    with pytest.raises(ConfigError, match="Unknown backbone 'tiny_cnn'"):
        get_spec("tiny_cnn")
    register_family(tiny)  # for the fixture's own removal


def run(config: TrainConfig) -> tuple[dict, list]:
    events = []
    final = run_job("train", lambda ctx: train(config, ctx), events.append)
    assert isinstance(final, JobFinished) and final.reason == "completed", final
    return final.result, events


def test_a_probe_and_a_head_run_train_evaluate_and_predict_through_the_family(tiny, tiny_dataset, capfd):
    probe, _ = run(TrainConfig(dataset=str(tiny_dataset), backbone="tiny_cnn", mode="probe", epochs=5, lr=1e-2))
    config = json.loads(open(f"{probe['run_dir']}/config.json").read())
    assert config["backbone"] == "tiny_cnn" and config["weights_identity"] == "tiny:tiny_cnn.pt"
    assert probe["feature_cache"] == "miss" and probe["extracted"] == 36

    head, events = run(TrainConfig(dataset=str(tiny_dataset), backbone="tiny_cnn", mode="head", epochs=1,
                                   weights="random", workers=0))
    logs = [e.text for e in events if isinstance(e, LogLine)]
    stages = next(m for m in logs if m.startswith("stages of tiny_cnn: "))
    assert [s.split(" (")[0] for s in stages.removeprefix("stages of tiny_cnn: ").split(", ")] == \
        ["conv1", "conv2", "conv3"]  # the family's own split (its children would be stem, block1, block2)

    for result in (probe, head):  # the command line evaluates it (in this process, where the family is registered)
        capfd.readouterr()
        assert main(["eval", result["run_dir"], "--json", "--workers", "0"]) == 0
        report = json.loads(capfd.readouterr().out)
        assert report["n"] == result["val_images"] and report["accuracy"] == pytest.approx(result["val_acc"])
        model, record = load_run_model(result["run_dir"])
        image = next(tiny_dataset.rglob("*.png"))
        predictions = predict_paths(model, record, [str(image)], 3, "cpu")[0]["predictions"]
        assert sorted(p["class"] for p in predictions) == ["blue", "green", "red"]
