"""Issue 6, bad inputs: one folder holding every kind of bad file real datasets contain.

`tlbench scan` lists each unusable file with its reason, training runs on the rest, and a hash of the whole
tree is identical before and after: nothing is modified, moved or deleted.
"""

import json
import os
import subprocess
import sys

import badfiles as bf
import pytest
from helpers.data import ROOT, make_dataset, tree_hash

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def build_bad_dataset(root):
    make_dataset(root, {"red": 6, "blue": 6})
    red, blue = root / "red", root / "blue"
    bf.write_zero_byte(red / "zero.jpg")
    bf.write_truncated_jpeg(red / "truncated.jpg")
    bf.write_png_named_jpg(blue / "png_named.jpg")
    bf.write_text_as_jpg(red / "readme.jpg")
    bf.write_16bit_png(blue / "deep16.png")
    bf.write_cmyk_jpeg(red / "cmyk.jpg")
    bf.write_palette_transparent_png(blue / "palette.png")
    bf.write_exif_rotated_jpeg(red / "rotated.jpg")
    bf.write_decompression_bomb(blue / "bomb.png")
    bf.write_png_named_jpg(red / "ünïcödé 猫 фото.jpg", (220, 30, 30))
    (root / "empty_class").mkdir()
    os.symlink(root, red / "loop")  # a directory link back to the dataset root
    os.symlink(blue / "self.jpg", blue / "self.jpg")  # a link to itself
    os.mkfifo(red / "pipe.jpg")  # would block a naive reader forever
    locked = bf.write_png_named_jpg(blue / "locked.png", (40, 40, 220))
    os.chmod(locked, 0)
    return root


UNUSABLE = {"zero.jpg": "0 bytes", "truncated.jpg": "truncated", "readme.jpg": "not an image",
            "bomb.png": "decompression bomb", "self.jpg": "", "pipe.jpg": "not a regular file"}
USABLE_ODD = {"png_named.jpg", "deep16.png", "cmyk.jpg", "palette.png", "rotated.jpg", "ünïcödé 猫 фото.jpg"}


def tlbench(*args):
    return subprocess.run([sys.executable, "-m", "tui.main", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_scan_lists_every_unusable_file_and_training_uses_the_rest(tmp_path):
    root = build_bad_dataset(tmp_path / "bad")
    before = tree_hash(root)

    scan = tlbench("scan", root, "--json")
    assert scan.returncode == 0, scan.stderr
    data = json.loads(scan.stdout)
    reasons = {os.path.basename(u["path"]): u["reason"] for u in data["unreadable"]}
    expected = dict(UNUSABLE)
    if not IS_ROOT:  # root reads mode-000 files anyway; the in-process test below covers it
        expected["locked.png"] = "permission denied"
    assert set(reasons) == set(expected), reasons
    for name, needle in expected.items():
        assert needle in reasons[name], (name, reasons[name])
    assert {c["name"] for c in data["classes"]} == {"red", "blue"}  # empty_class skipped, loop not a class
    assert any("empty_class" in n for n in data["notes"])

    train = tlbench("train", root, "--img-size", 32, "--epochs", 3, "--json")
    assert train.returncode == 0, train.stderr
    result = json.loads(train.stdout)
    usable = 12 + len(USABLE_ODD) + (1 if IS_ROOT else 0)
    assert result["train_images"] + result["val_images"] == usable
    assert result["skipped_images"] == len(expected)

    assert tree_hash(root) == before  # nothing modified, moved or deleted


def test_permission_denied_is_a_reason_not_a_crash(tmp_path, monkeypatch):
    from engine.data import images
    from engine.data.scan import scan_dataset

    root = make_dataset(tmp_path / "d", {"red": 3, "blue": 3})
    target = str(root / "red" / "red_1.png")
    real_open = images.Image.open

    def guarded(path, *a, **k):
        if str(path) == target:
            raise PermissionError(13, "Permission denied", target)
        return real_open(path, *a, **k)

    monkeypatch.setattr(images.Image, "open", guarded)
    info = scan_dataset(root)
    assert [(os.path.basename(u.path), u.reason) for u in info.unreadable] == [("red_1.png", "permission denied")]


@pytest.mark.parametrize("bad", ["fifo", "self-link"])
def test_odd_entries_never_block_loading(tmp_path, bad):
    from engine.data.images import ImageProblem, load_rgb

    path = tmp_path / "x.jpg"
    if bad == "fifo":
        os.mkfifo(path)
    else:
        os.symlink(path, path)
    with pytest.raises(ImageProblem):
        load_rgb(path)
