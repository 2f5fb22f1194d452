"""Dataset layouts, the integrity scan (which never changes a file), and the split."""

import os

import badfiles as bf
import numpy as np
import pytest
from helpers.data import COLOURS, DEMO, make_dataset, tree_hash, write_image

from engine.core.errors import ConfigError, DatasetError
from engine.data.images import load_rgb
from engine.data.scan import scan_dataset, split_dataset


def test_class_folders_layout(tmp_path):
    root = make_dataset(tmp_path / "d", {"red": 3, "blue": 4})
    info = scan_dataset(root)
    assert info.layout == "class-folders"
    assert info.classes == ["blue", "red"] and info.counts() == [4, 3]
    assert info.median_side == 32


def test_nested_folders_get_a_message_not_silence(tmp_path):
    root = make_dataset(tmp_path / "d", {"red": 3, "blue": 3})
    write_image(root / "red" / "dark" / "x.png", (90, 0, 0))
    info = scan_dataset(root)
    assert any("sub-folders of red/" in n and "1 image" in n for n in info.notes)
    assert info.counts() == [3, 3]


def test_pointing_at_the_parent_of_a_dataset_says_so(tmp_path):
    make_dataset(tmp_path / "outer" / "inner", {"red": 2, "blue": 2})
    with pytest.raises(DatasetError, match="No images directly inside the class folders"):
        scan_dataset(tmp_path / "outer")


def test_train_val_layout(tmp_path):
    make_dataset(tmp_path / "d" / "train", {"red": 4, "blue": 4})
    make_dataset(tmp_path / "d" / "valid", {"red": 2, "blue": 2})
    info = scan_dataset(tmp_path / "d")
    assert info.layout == "train-val"
    train, val = split_dataset(info, 0.5, seed=1)
    assert len(train) == 8 and len(val) == 4
    assert all("valid" in s.path for s in val)


def _pets(root, with_annotations):
    names = ["Abyssinian_1", "Abyssinian_2", "Abyssinian_3", "american_bulldog_10", "american_bulldog_11",
             "american_bulldog_12"]
    for i, n in enumerate(names):
        write_image(root / "images" / f"{n}.jpg", (40 * i, 50, 60), 40, fmt="JPEG")
    (root / "images" / "Abyssinian_1.mat").write_bytes(b"matlab")  # the real archive has a few of these
    if with_annotations:
        (root / "annotations").mkdir(parents=True)
        (root / "annotations" / "trainval.txt").write_text(
            "Abyssinian_1 1 1 1\nAbyssinian_2 1 1 1\namerican_bulldog_10 2 2 1\namerican_bulldog_11 2 2 1\n")
        (root / "annotations" / "test.txt").write_text("Abyssinian_3 1 1 1\namerican_bulldog_12 2 2 1\n")
    return root


@pytest.mark.parametrize("with_annotations", [True, False])
def test_oxford_pets_layout(tmp_path, with_annotations):
    root = _pets(tmp_path / "pets", with_annotations)
    info = scan_dataset(root)
    assert info.layout == "oxford-pets"
    assert info.classes == ["Abyssinian", "american_bulldog"]
    assert any("1 cat breeds" in n and "1 dog breeds" in n for n in info.notes)
    train, val = split_dataset(info, 0.34, seed=0)
    if with_annotations:
        assert sorted(os.path.basename(s.path) for s in val) == ["Abyssinian_3.jpg", "american_bulldog_12.jpg"]
    else:
        assert len(train) + len(val) == 6 and len(val) == 2
    flat = scan_dataset(root / "images")  # the images folder on its own works too
    assert flat.layout == "oxford-pets" and len(flat.samples) == 6


def test_petimages_layout_reports_its_broken_files(tmp_path):
    pet = tmp_path / "kagglecatsanddogs" / "PetImages"
    make_dataset(pet, {"Cat": 3, "Dog": 3}, ext=".jpg")
    bf.write_zero_byte(pet / "Cat" / "666.jpg")
    (pet / "Cat" / "Thumbs.db").write_bytes(b"\x00" * 10)
    info = scan_dataset(tmp_path / "kagglecatsanddogs")
    assert info.layout == "petimages" and info.classes == ["Cat", "Dog"]
    assert [os.path.basename(u.path) for u in info.unreadable] == ["666.jpg"]


def test_integrity_scan_lists_skips_and_never_modifies(tmp_path):
    root = make_dataset(tmp_path / "d", {"red": 3, "blue": 3})
    bad = root / "red"
    bf.write_zero_byte(bad / "empty.jpg")
    bf.write_truncated_jpeg(bad / "truncated.jpg")
    bf.write_text_as_jpg(bad / "notes.jpg")
    bf.write_decompression_bomb(bad / "bomb.png")
    bf.write_tiny(bad / "tiny.png")
    good_odd = {
        "png_named.jpg": bf.write_png_named_jpg, "deep.png": bf.write_16bit_png, "cmyk.jpg": bf.write_cmyk_jpeg,
        "palette.png": bf.write_palette_transparent_png, "alpha.png": bf.write_rgba_png,
        "gray.png": bf.write_grayscale, "rotated.jpg": bf.write_exif_rotated_jpeg,
    }
    for name, fn in good_odd.items():
        fn(root / "blue" / name)
    (root / "blue" / ".hidden.png").write_bytes(b"junk")
    before = tree_hash(root)

    info = scan_dataset(root)

    assert tree_hash(root) == before
    reasons = {os.path.basename(u.path): u.reason for u in info.unreadable}
    assert set(reasons) == {"empty.jpg", "truncated.jpg", "notes.jpg", "bomb.png", "tiny.png"}
    assert "0 bytes" in reasons["empty.jpg"]
    assert "truncated" in reasons["truncated.jpg"]
    assert "not an image" in reasons["notes.jpg"] and "text" in reasons["notes.jpg"]
    assert "decompression bomb" in reasons["bomb.png"] and "10,000,000,000" in reasons["bomb.png"]
    assert "too small" in reasons["tiny.png"]
    used = {os.path.basename(s.path) for s in info.samples}
    assert set(good_odd) <= used and ".hidden.png" not in used
    assert info.counts() == [3 + len(good_odd), 3]
    assert any("5 unusable" in n for n in info.notes)


def test_odd_modes_convert_to_rgb_correctly(tmp_path):
    deep = np.asarray(load_rgb(bf.write_16bit_png(tmp_path / "d.png", 40000)))
    assert deep.shape == (32, 32, 3) and abs(int(deep[0, 0, 0]) - round(40000 / 65535 * 255)) <= 1
    cmyk = np.asarray(load_rgb(bf.write_cmyk_jpeg(tmp_path / "c.jpg")))
    assert cmyk[0, 0, 0] > 200 and cmyk[0, 0, 1] < 60  # red
    pal = np.asarray(load_rgb(bf.write_palette_transparent_png(tmp_path / "p.png")))
    assert tuple(pal[5, 5]) == (0, 255, 0) and tuple(pal[5, 35]) == (255, 255, 255)  # transparent red -> white
    alpha = np.asarray(load_rgb(bf.write_rgba_png(tmp_path / "a.png")))
    assert tuple(alpha[0, 0]) == (255, 255, 255)
    gray = np.asarray(load_rgb(bf.write_grayscale(tmp_path / "g.png")))
    assert gray.shape == (40, 40, 3) and tuple(gray[0, 0]) == (90, 90, 90)


def test_exif_orientation_is_applied(tmp_path):
    img = load_rgb(bf.write_exif_rotated_jpeg(tmp_path / "r.jpg"))
    assert img.size == (30, 60)  # displayed upright: portrait
    arr = np.asarray(img)
    assert arr[2, 15, 0] > 200 and arr[2, 15, 1] < 80  # the red band is now at the top


def test_draft_decoding_keeps_at_least_the_requested_size(tmp_path):
    path = write_image(tmp_path / "big.jpg", (10, 200, 10), size=1024, fmt="JPEG")
    small = load_rgb(path, min_size=200)
    assert 200 <= min(small.size) < 1024  # decoded at reduced size, never below what was asked
    assert load_rgb(path).size == (1024, 1024)


def test_split_is_stratified_and_stable(tmp_path):
    root = make_dataset(tmp_path / "d", {"red": 10, "blue": 20})
    info = scan_dataset(root)
    train, val = split_dataset(info, 0.2, seed=7)
    assert sorted(s.label for s in val).count(0) == 4 and sorted(s.label for s in val).count(1) == 2
    again = split_dataset(scan_dataset(root), 0.2, seed=7)
    assert [s.path for s in again[1]] == [s.path for s in val]
    other = split_dataset(info, 0.2, seed=8)
    assert [s.path for s in other[1]] != [s.path for s in val]
    assert not {s.path for s in train} & {s.path for s in val}


def test_adding_a_file_does_not_reshuffle_the_others(tmp_path):
    root = make_dataset(tmp_path / "d", {"red": 30, "blue": 30})
    _, val = split_dataset(scan_dataset(root), 0.2, seed=0)
    write_image(root / "red" / "red_new.png", COLOURS["red"])
    _, val2 = split_dataset(scan_dataset(root), 0.2, seed=0)
    assert len({s.path for s in val} - {s.path for s in val2}) <= 1


def test_a_dataset_reached_through_a_symlink_is_the_same_dataset(tmp_path):
    """~/data -> /mnt/big/data is common: same split, same fingerprint, and training accepts the paths."""
    from engine.train.prepare import dataset_fingerprint

    root = make_dataset(tmp_path / "real" / "d", {"red": 10, "blue": 10})
    (tmp_path / "link").symlink_to(tmp_path / "real")
    linked = scan_dataset(tmp_path / "link" / "d")
    assert all(s.path.startswith(str(linked.root) + os.sep) for s in linked.samples)

    def rel(info, samples):
        return sorted(os.path.relpath(s.path, info.root) for s in samples)

    real = scan_dataset(root)
    assert rel(linked, split_dataset(linked, 0.3)[1]) == rel(real, split_dataset(real, 0.3)[1])
    assert dataset_fingerprint(linked) == dataset_fingerprint(real)


def test_one_class_is_a_clear_error(tmp_path):
    root = make_dataset(tmp_path / "d", {"red": 5})
    with pytest.raises(DatasetError, match="at least 2"):
        split_dataset(scan_dataset(root))


def test_class_with_one_image_is_a_clear_error(tmp_path):
    root = make_dataset(tmp_path / "d", {"red": 5, "blue": 1})
    with pytest.raises(DatasetError, match=r"blue \(1\)"):
        split_dataset(scan_dataset(root))


def test_empty_class_folder_is_skipped_with_a_note(tmp_path):
    root = make_dataset(tmp_path / "d", {"red": 3, "blue": 3})
    (root / "empty").mkdir()
    info = scan_dataset(root)
    assert info.classes == ["blue", "red"] and any("empty/" in n for n in info.notes)


def test_bad_val_fraction(tmp_path):
    info = scan_dataset(make_dataset(tmp_path / "d"))
    with pytest.raises(ConfigError, match="1.5"):
        split_dataset(info, 1.5)


def test_missing_folder_and_file_messages(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        scan_dataset(tmp_path / "nope")
    (tmp_path / "pets.tar.gz").write_bytes(b"x")
    with pytest.raises(DatasetError, match="archive"):
        scan_dataset(tmp_path / "pets.tar.gz")


def test_symlink_loop_does_not_hang(tmp_path):
    root = make_dataset(tmp_path / "d", {"red": 3, "blue": 3})
    os.symlink(root, root / "red" / "loop")
    os.symlink(root, root / "loopclass")
    os.symlink(root / "red" / "nowhere.png", root / "blue" / "broken.png")
    info = scan_dataset(root)
    assert info.classes == ["blue", "red"]
    assert any(os.path.basename(u.path) == "broken.png" for u in info.unreadable)


def test_the_scan_cache_is_used_and_invalidated(tmp_path, monkeypatch):
    root = make_dataset(tmp_path / "d", {"red": 3, "blue": 3})
    scan_dataset(root)
    import engine.data.scan as ds

    calls = []
    real = ds.check_image
    monkeypatch.setattr(ds, "check_image", lambda p, m: calls.append(p) or real(p, m))
    scan_dataset(root)
    assert calls == []  # everything came from the cache
    bf.write_zero_byte(root / "red" / "red_0.png")  # the file changes: it is checked again
    info = scan_dataset(root)
    assert [os.path.basename(c) for c in calls] == ["red_0.png"]
    assert [os.path.basename(u.path) for u in info.unreadable] == ["red_0.png"]


def test_demo_dataset_is_bundled():
    info = scan_dataset(DEMO)
    assert info.layout == "class-folders" and len(info.samples) == 1797 and len(info.classes) == 10
    assert info.median_side == 8 and not info.unreadable


def test_big_scans_use_processes_and_agree_with_threads(tmp_path, monkeypatch):
    """Above PROCESS_POOL_MIN files the checks run in worker processes; the verdicts must be the same."""
    import engine.data.scan as ds

    root = make_dataset(tmp_path / "d", {"red": 6, "blue": 6})
    bf.write_truncated_jpeg(root / "red" / "t.jpg")
    threaded = scan_dataset(root)
    (tmp_path / "cache2").mkdir()
    monkeypatch.setenv("TLBENCH_CACHE", str(tmp_path / "cache2"))  # no cache hits: everything re-checked
    monkeypatch.setattr(ds, "PROCESS_POOL_MIN", 5)
    pools = []
    real = ds._checker
    monkeypatch.setattr(ds, "_checker", lambda n, w: pools.append(real(n, w)) or pools[-1])
    in_processes = scan_dataset(root)
    assert type(pools[0][0]).__name__ == "ProcessPoolExecutor"
    assert in_processes.to_json() == threaded.to_json()
    assert [u.reason for u in in_processes.unreadable] == [u.reason for u in threaded.unreadable]


SCAN_UNDER_TEXTUAL = """
import json, sys
sys.path.insert(0, sys.argv[3])
import engine.data.scan as ds
from engine.core.events import LogLine
from engine.core.jobs import run_job
ds.PROCESS_POOL_MIN = 5
if sys.argv[2] == "app":
    from tui.app import start_process_helper
    start_process_helper()  # what the workbench does before it runs

class NoFd:  # what Textual puts in sys.stderr while the app runs
    def write(self, s): return len(s)
    def flush(self): pass
    def fileno(self): return -1

sys.stderr = NoFd()
logs = []
final = run_job("scan", lambda ctx: {"images": len(ds.scan_dataset(sys.argv[1], ctx=ctx).samples)},
                lambda e: logs.append(e.text) if isinstance(e, LogLine) else None)
print(json.dumps({"images": final.result["images"], "logs": logs}))
"""


@pytest.mark.parametrize("host", ["bare", "app"])
def test_a_big_scan_under_the_workbench_uses_processes_or_falls_back_to_threads(tmp_path, host):
    """Found in the app: with Textual's stderr (fileno -1) multiprocessing could not start, and the scan
    failed. Now the workbench starts the helper first (processes), and anywhere else the scan falls back."""
    import json
    import subprocess
    import sys

    from helpers.data import ROOT

    root = make_dataset(tmp_path / "d", {"red": 6, "blue": 6})
    env = {**os.environ, "TLBENCH_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", SCAN_UNDER_TEXTUAL, str(root), host, str(ROOT)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["images"] == 12
    fell_back = [t for t in out["logs"] if "worker processes unavailable" in t]
    assert bool(fell_back) == (host == "bare"), out["logs"]
