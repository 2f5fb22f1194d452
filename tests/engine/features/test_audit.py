"""The audit: planted label errors and duplicates on generated photos are found, the dataset is left untouched,
similarities are computed blockwise; the exclude list and duplicate grouping reach training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers.data import make_dataset, tree_hash
from PIL import Image

from engine.cli import main
from engine.data.exclude import load_audit, read_exclude, save_audit, write_exclude
from engine.data.scan import scan_dataset, split_dataset
from engine.data.splits import plan_split
from engine.evaluate import audit as A


def photo_crops(root, sources, per_class=12, size=48):
    """root/<source>/<source>_<i>.png: random crops of one photo per class (distinct, but learnable)."""
    for k, (name, src) in enumerate(sources.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            crop(src, 100 * k + i, size).save(root / name / f"{name}_{i}.png")
    return root


def crop(src, seed, size=48):
    rng = np.random.default_rng(seed)
    side = int(rng.integers(min(src.shape[:2]) // 4, min(src.shape[:2]) // 2))
    y, x = rng.integers(0, src.shape[0] - side), rng.integers(0, src.shape[1] - side)
    return Image.fromarray(src[y:y + side, x:x + side]).resize((size, size), Image.BILINEAR)


def test_audit_finds_planted_errors_and_duplicates_and_leaves_the_dataset_alone(tmp_path, capfd):
    data = pytest.importorskip("skimage.data")
    sources = {"coffee": data.coffee(), "rocket": data.rocket(), "astronaut": data.astronaut()}
    root = photo_crops(tmp_path / "photos", sources)
    crop(sources["coffee"], 900).save(root / "rocket" / "flip_a.png")  # coffee labelled rocket
    crop(sources["coffee"], 901).save(root / "astronaut" / "flip_b.png")
    (root / "coffee" / "coffee_0_copy.png").write_bytes((root / "coffee" / "coffee_0.png").read_bytes())
    Image.open(root / "rocket" / "rocket_3.png").resize((64, 64)).save(root / "rocket" / "rocket_3_big.jpg",
                                                                       quality=90)
    before = tree_hash(root)
    assert main(["audit", str(root), "--img-size", "64", "--json"]) == 0
    r = json.loads(capfd.readouterr().out)
    assert tree_hash(root) == before  # nothing written, moved or touched in the dataset

    assert r["images"] == 40 and r["backbone"] == "efficientnet_lite0"
    top = {i["path"].rsplit("/", 1)[1] for i in r["label_issues"][:2]}
    assert top == {"flip_a.png", "flip_b.png"}, r["label_issues"]
    assert all(i["suggested"] == "coffee" and 0 < i["score"] <= 1 for i in r["label_issues"][:2])
    groups = {tuple(p.rsplit("/", 1)[1] for p in d["paths"]): d for d in r["duplicates"]}
    assert set(groups) == {("coffee_0.png", "coffee_0_copy.png"), ("rocket_3.png", "rocket_3_big.jpg")}, groups
    exact, near = groups[("coffee_0.png", "coffee_0_copy.png")], groups[("rocket_3.png", "rocket_3_big.jpg")]
    assert exact["exact"] and exact["similarity"] == 1.0 and exact["labels"] == ["coffee", "coffee"]
    assert not near["exact"] and A.NEAR_DUPLICATE <= near["similarity"] < 1
    _, val = split_dataset(scan_dataset(root), 0.2, 0)  # train's default split: is the pair on both sides?
    val_paths = {s.path for s in val}
    for d in (exact, near):
        assert d["across_split"] == (len({p in val_paths for p in d["paths"]}) == 2)
    assert r["imbalance"]["counts"] == {"astronaut": 13, "coffee": 13, "rocket": 14}
    saved = load_audit(root)
    assert saved is not None and saved["label_issues"] == r["label_issues"]
    assert json.loads(open(f"{r['run_dir']}/audit.json").read())["duplicates"] == r["duplicates"]


def test_blockwise_near_duplicates_equal_the_full_matrix_and_flag_leaks_and_label_conflicts(monkeypatch):
    g = torch.Generator(device="cpu").manual_seed(0)
    feats = torch.randn(50, 16, generator=g, device="cpu")
    feats[7] = feats[3] * 2  # same direction: similarity 1
    feats[40] = feats[12] + 0.01 * torch.randn(16, generator=g, device="cpu")
    monkeypatch.setattr(A, "SIM_BLOCK_ELEMENTS", 50 * 3)  # 3 rows at a time: 17 blocks
    pairs = A.near_duplicate_pairs(feats, 0.9)
    x = A._unit_centred(feats)
    full = x @ x.T
    expected = [(i, j) for i in range(50) for j in range(i + 1, 50) if full[i, j] >= 0.9]
    assert [(i, j) for i, j, _ in pairs] == expected == [(3, 7), (12, 40)]
    labels = np.zeros(50, dtype=np.int64)
    labels[7] = 1
    is_val = np.zeros(50, dtype=bool)
    is_val[40] = True
    hashes = [None] * 50
    hashes[20] = hashes[30] = "same-bytes"
    paths = [f"p{i}" for i in range(50)]
    groups = A.duplicate_groups(feats, hashes, labels, is_val, paths, ["a", "b"], 0.9)
    by = {tuple(d["paths"]): d for d in groups}
    assert set(by) == {("p3", "p7"), ("p12", "p40"), ("p20", "p30")}
    assert by[("p3", "p7")]["conflicting_labels"] and not by[("p3", "p7")]["across_split"]
    assert by[("p12", "p40")]["across_split"] and not by[("p12", "p40")]["conflicting_labels"]
    assert by[("p20", "p30")]["exact"] and not by[("p3", "p7")]["exact"]
    assert groups[0]["paths"] == ["p12", "p40"]  # leaks first


def test_exclude_list_reaches_training_and_nothing_is_deleted(tmp_path, capfd):
    root = make_dataset(tmp_path / "colours", {"red": 8, "blue": 8})
    before = tree_hash(root)
    marked = write_exclude(root, [root / "red" / "red_1.png", root / "blue" / "blue_2.png"])
    assert not str(marked).startswith(str(root))  # the list lives in tlbench's state, not the dataset
    assert read_exclude(marked, root) == {str((root / "red" / "red_1.png").resolve()),
                                          str((root / "blue" / "blue_2.png").resolve())}
    own = tmp_path / "mine.txt"
    own.write_text("# one file\nred/red_3.png\n")
    seen = {}
    for name, extra in [("auto", []), ("none", ["--exclude", "none"]), ("file", ["--exclude", own])]:
        assert main(["train", str(root), "--img-size", "32", "--epochs", "1", "--json", *map(str, extra)]) == 0
        result = json.loads(capfd.readouterr().out)
        config = json.loads(open(f"{result['run_dir']}/config.json").read())
        seen[name] = (result["train_images"] + result["val_images"], config["excluded_images"])
    assert seen == {"auto": (14, 2), "none": (16, 0), "file": (15, 1)}
    assert main(["train", str(root), "--exclude", str(tmp_path / "typo.txt"), "--json"]) == 2
    assert "typo.txt does not exist" in capfd.readouterr().out
    assert tree_hash(root) == before


def test_group_split_keeps_a_leaking_duplicate_group_on_one_side(tmp_path):
    root = make_dataset(tmp_path / "colours", {"red": 10, "blue": 10})
    info = scan_dataset(root)
    train, val = split_dataset(info, 0.2, 0)
    a, b, c = train[0].path, val[0].path, train[1].path
    save_audit(root, {"duplicates": [{"paths": [a, b, c]}]})
    plan = plan_split(info, 0.2, 0, "none", "auto")
    t2, v2 = plan.train, plan.val
    assert plan.moved == 1 and plan.leaking == 1 and {a, b, c} <= {s.path for s in t2}
    assert b not in {s.path for s in v2}
    assert sorted(s.path for s in t2 + v2) == sorted(s.path for s in train + val)  # nothing lost
    off = plan_split(info, 0.2, 0, "none", "off")
    assert (off.train, off.val, off.moved, off.leaking) == (train, val, 0, 1)  # reported, not moved
    assert any("leakage" in text for _, text in off.notes)
