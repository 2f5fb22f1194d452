"""`--weights random`: a random backbone is identified and built by its seed, its features are cached under that
identity, and predict/eval/export use the very backbone the probe's features came from."""

from __future__ import annotations

import pytest
import torch

from engine.core.checkpoints import load_checkpoint, save_checkpoint
from engine.core.errors import RunError
from engine.core.events import JobFinished
from engine.core.files import read_json
from engine.core.jobs import run_job
from engine.data.images import image_identity
from engine.data.loaders import load_for_model
from engine.features.cache import FeatureCache, cache_key
from engine.models.build import build_imagenet_model
from engine.models.loading import load_run_model, run_precision
from engine.serve.predict import predict_paths
from engine.train.config import TrainConfig
from engine.train.job import train


def run_probe(dataset, **kw) -> dict:
    cfg = TrainConfig(**{"dataset": str(dataset), "img_size": 32, "epochs": 10, "lr": 1e-2, "workers": 0,
                         "weights": "random", **kw})
    final = run_job("train", lambda ctx: train(cfg, ctx), lambda e: None)
    assert isinstance(final, JobFinished) and final.reason == "completed", final
    return final.result


def test_a_seed_builds_the_same_random_network_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a, identity = build_imagenet_model("mobilenet_v3_small", "random", seed=3)
    assert torch.equal(torch.get_rng_state(), before)  # the run's own random stream is not consumed
    b, _ = build_imagenet_model("mobilenet_v3_small", "random", seed=3)
    c, other = build_imagenet_model("mobilenet_v3_small", "random", seed=4)
    assert identity == "random:seed=3" and other == "random:seed=4"
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["features.0.0.weight"], sc["features.0.0.weight"])


def test_probes_on_random_backbones_with_different_seeds_share_no_features(tiny_dataset):
    first = run_probe(tiny_dataset, seed=1)
    other_seed = run_probe(tiny_dataset, seed=2)
    same_seed = run_probe(tiny_dataset, seed=1)
    assert first["feature_cache"] == "miss"
    assert other_seed["feature_cache"] == "miss" and other_seed["extracted"] == 36  # another network
    assert same_seed["feature_cache"] == "hit"  # the same network: its features are reused
    config = read_json(f"{first['run_dir']}/config.json")
    assert config["weights_identity"] == "random:seed=1"


def report_probabilities(run_dir) -> dict[str, tuple[str, float]]:
    """What the run's own validation computed for the images it got wrong (a report lists its mistakes):
    {path: (predicted class, its probability)}. A random backbone gets most of them wrong."""
    report = read_json(f"{run_dir}/report.json")
    return {row["path"]: (row["predicted"], row["prob_predicted"]) for row in report["mistakes"]}


@pytest.mark.parametrize("cache", ["miss", "hit"])
def test_predict_on_a_random_backbone_probe_equals_the_run_s_own_validation(tiny_dataset, cache):
    """The checkpoint holds the backbone the features came from (scope "full"): predict gives the report's
    probabilities. On a cache hit the backbone is rebuilt from the seed, and must still be that network."""
    if cache == "hit":
        run_probe(tiny_dataset, seed=7, epochs=2)  # fills the cache for seed 7
    r = run_probe(tiny_dataset, seed=7)
    assert r["feature_cache"] == cache
    assert load_checkpoint(f"{r['run_dir']}/best.pt")["model_scope"] == "full"
    want = report_probabilities(r["run_dir"])
    assert len(want) >= 3
    model, record = load_run_model(r["run_dir"])
    got = {row["path"]: (row["predictions"][0]["class"], row["predictions"][0]["prob"])
           for row in predict_paths(model, record, list(want))}
    for path, (cls, prob) in want.items():
        assert got[path][0] == cls and got[path][1] == pytest.approx(prob, abs=1e-4), path
    # the probabilities of an easy dataset saturate, so compare what the head was trained on too: the
    # features in the cache against the loaded backbone's, image by image
    # the key the probe cached under, built as the product builds it: with the precision the run recorded
    cached = FeatureCache(cache_key(record.backbone, str(record.weights_identity), record.preprocessing,
                                    precision=run_precision(record)), record.dataset).load()
    with torch.inference_mode():
        for path in want:
            x = load_for_model(path, record.preprocessing).float().div(255).unsqueeze(0)
            mine, theirs = model.features(x)[0], cached[image_identity(path)]
            assert torch.allclose(mine, theirs, rtol=1e-3, atol=1e-4 * float(theirs.abs().max())), path


def test_an_older_head_only_checkpoint_on_a_random_backbone_is_refused(tiny_dataset):
    r = run_probe(tiny_dataset, seed=3, epochs=2)
    path = f"{r['run_dir']}/best.pt"
    ckpt = load_checkpoint(path)
    head = {k.removeprefix("head."): v for k, v in ckpt["model"].items() if k.startswith("head.")}
    save_checkpoint(path, {**ckpt, "model_scope": "head", "model": head})  # as runs before this fix saved it
    with pytest.raises(RunError, match="cannot be reproduced"):
        load_run_model(r["run_dir"])
