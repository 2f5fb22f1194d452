"""`tlbench fetch` against a loopback server: real layouts, resume, checksums, hostile archives, offline help.

The conftest sets TLBENCH_OFFLINE=1 for every test; tests that talk to the 127.0.0.1 server lift it explicitly
(the `mirror` fixture). No test touches the internet: the registry's URLs are rewritten to the local server
through TLBENCH_FETCH_MIRROR, and sizes and md5s are those of the archives the tests generate.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tarfile

import fetch_archives as fa
import pytest
from helpers.data import tree_hash
from local_http import LocalServer

from engine.core.errors import ConfigError
from engine.core.events import JobFinished, ProgressAdvanced
from engine.core.jobs import JobControl, run_job
from engine.data.scan import scan_dataset
from engine.fetch import sources as fetch
from engine.fetch.archives import ArchiveError, extract_archives, partial_dirs
from engine.fetch.downloads import DownloadFailed, download

BUILDERS = {"oxford-pets": fa.oxford_pets, "cats-vs-dogs": fa.petimages, "imagenette": fa.imagenette}


def register(monkeypatch, name: str, files: dict[str, bytes], md5: bool = True) -> fetch.DatasetSource:
    """Point the registry entry at the generated archives: same names and URLs, their sizes and md5s.
    cats-vs-dogs keeps md5=None, as in the real registry (Microsoft publishes none)."""
    src = fetch.DATASETS[name]
    archives = tuple(
        dataclasses.replace(a, size=len(files[a.filename]),
                            md5=hashlib.md5(files[a.filename]).hexdigest() if (md5 and a.md5) else None)
        for a in src.archives)
    new = dataclasses.replace(src, archives=archives)
    monkeypatch.setitem(fetch.DATASETS, name, new)
    return new


@pytest.fixture
def mirror(monkeypatch):
    """A loopback server that the registry's URLs point to; network access allowed for these tests only."""
    with LocalServer() as server:
        monkeypatch.delenv("TLBENCH_OFFLINE")
        monkeypatch.setenv("TLBENCH_FETCH_MIRROR", server.url)
        yield server


def serve(mirror, monkeypatch, name: str, **kw) -> tuple[fetch.DatasetSource, dict[str, bytes]]:
    files = BUILDERS[name]()
    mirror.files.update(files)
    return register(monkeypatch, name, files, **kw), files


def run_fetch(name, dest, **kw):
    events = []
    final = run_job("fetch", lambda ctx: fetch.fetch_dataset(name, dest, ctx=ctx, **kw), events.append)
    return final, events


# ------------------------------------------------------------------------------------ the three datasets


@pytest.mark.parametrize("name, layout, classes", [
    ("oxford-pets", "oxford-pets", sorted(fa.PET_BREEDS)),
    ("cats-vs-dogs", "petimages", ["Cat", "Dog"]),
    ("imagenette", "train-val", sorted(fa.IMAGENETTE_CLASSES)),
])
def test_fetch_downloads_verifies_extracts_and_opens(mirror, monkeypatch, tmp_path, name, layout, classes):
    src, files = serve(mirror, monkeypatch, name)
    final, events = run_fetch(name, tmp_path / "data")
    assert isinstance(final, JobFinished) and final.reason == "completed", final
    result = final.result
    path = tmp_path / "data" / src.folder
    assert result["path"] == str(path) and result["command"] == f"tlbench {path}"
    assert result["already_complete"] is False and result["layout"] == layout
    assert result["downloaded_bytes"] == sum(len(b) for b in files.values())
    assert json.loads((path / fetch.MARKER).read_text())["dataset"] == name
    # the dataset opens with the layout it should have, and the archives we downloaded are gone
    info = scan_dataset(path)
    assert info.layout == layout and info.classes == classes
    assert not (tmp_path / "data" / "downloads").exists() and not partial_dirs(path)
    # progress for each archive in bytes, with its total and a rate: what the bar's size/speed/ETA need
    for archive in src.archives:
        ticks = [e for e in events if isinstance(e, ProgressAdvanced) and e.phase == f"download {archive.filename}"]
        assert ticks and ticks[-1].unit == "bytes" and ticks[-1].done == ticks[-1].total == archive.size
        assert ticks[-1].rate and ticks[-1].rate > 0


def test_oxford_pets_uses_the_official_split(mirror, monkeypatch, tmp_path):
    serve(mirror, monkeypatch, "oxford-pets")
    result = fetch.fetch_dataset("oxford-pets", tmp_path)
    info = scan_dataset(result["path"])
    assert {s.split for s in info.samples} == {"train", "val"}
    assert sum(s.split == "val" for s in info.samples) == len(fa.PET_BREEDS)  # one test image per breed


def test_cats_vs_dogs_scan_reports_the_zero_byte_file_and_corrupt_image(mirror, monkeypatch, tmp_path):
    src, _ = serve(mirror, monkeypatch, "cats-vs-dogs")
    assert src.archives[0].md5 is None  # size + CRC-32 policy, as for the real zip
    result = fetch.fetch_dataset("cats-vs-dogs", tmp_path)
    assert any("0-byte" in n for n in result["notes"]) and any("no checksum" in n for n in result["notes"])
    info = scan_dataset(result["path"])
    bad = {os.path.basename(u.path): u.reason for u in info.unreadable}
    assert set(bad) == {"666.jpg", "11702.jpg"}, bad
    assert "0 bytes" in bad["666.jpg"]
    assert info.counts() == [4, 4]  # the good images, Thumbs.db not counted as an image


def test_rerun_on_a_complete_dataset_is_a_no_op(mirror, monkeypatch, tmp_path):
    serve(mirror, monkeypatch, "imagenette")
    first = fetch.fetch_dataset("imagenette", tmp_path)
    before, requests = tree_hash(tmp_path), len(mirror.requests)
    again = fetch.fetch_dataset("imagenette", tmp_path)
    assert again["already_complete"] is True and again["downloaded_bytes"] == 0
    assert again["path"] == first["path"] and again["image_files"] == first["image_files"] == 12
    assert len(mirror.requests) == requests and tree_hash(tmp_path) == before
    assert fetch.is_complete("imagenette", tmp_path)


# ------------------------------------------------------------------------------------ resume and checksums


def test_truncated_transfer_keeps_the_part_and_the_next_run_resumes(mirror, monkeypatch, tmp_path):
    src, files = serve(mirror, monkeypatch, "imagenette")
    data = files["imagenette2-160.tgz"]
    half = len(data) // 2
    mirror.cut["imagenette2-160.tgz"] = half
    with pytest.raises(fetch.FetchError) as err:
        fetch.fetch_dataset("imagenette", tmp_path)
    part = tmp_path / "downloads" / "imagenette2-160.tgz.part"
    assert "resumes from" in str(err.value) and str(part) in str(err.value)
    assert part.stat().st_size == half and not (tmp_path / "downloads" / "imagenette2-160.tgz").exists()
    assert not (tmp_path / src.folder).exists() and not fetch.is_complete("imagenette", tmp_path)

    result = fetch.fetch_dataset("imagenette", tmp_path)
    assert mirror.requests[-1] == ("imagenette2-160.tgz", f"bytes={half}-")
    assert result["downloaded_bytes"] == len(data) - half
    assert scan_dataset(result["path"]).layout == "train-val"


def test_stopping_mid_download_keeps_the_part_for_a_resume(mirror, monkeypatch, tmp_path):
    _, files = serve(mirror, monkeypatch, "imagenette")
    control = JobControl()

    def sink(event):
        if isinstance(event, ProgressAdvanced) and event.phase.startswith("download"):
            control.stop()

    final = run_job("fetch", lambda ctx: fetch.fetch_dataset("imagenette", tmp_path, ctx=ctx), sink, control)
    assert isinstance(final, JobFinished) and final.reason == "stopped"
    part = tmp_path / "downloads" / "imagenette2-160.tgz.part"
    assert 0 < part.stat().st_size < len(files["imagenette2-160.tgz"])
    assert fetch.fetch_dataset("imagenette", tmp_path)["downloaded_bytes"] < len(files["imagenette2-160.tgz"])


def test_wrong_checksum_is_refused_and_nothing_is_extracted(mirror, monkeypatch, tmp_path):
    src, _ = serve(mirror, monkeypatch, "oxford-pets")
    bad = dataclasses.replace(src.archives[0], md5="0" * 32)
    monkeypatch.setitem(fetch.DATASETS, "oxford-pets", dataclasses.replace(src, archives=(bad, src.archives[1])))
    with pytest.raises(fetch.FetchError) as err:
        fetch.fetch_dataset("oxford-pets", tmp_path)
    assert "md5" in str(err.value) and "0" * 32 in str(err.value) and "images.tar.gz" in str(err.value)
    assert not (tmp_path / src.folder).exists() and not partial_dirs(tmp_path / src.folder)
    assert not list((tmp_path / "downloads").glob("images.tar.gz*"))  # the bad download is gone, .part too


def test_wrong_size_zip_without_checksum_is_refused(mirror, monkeypatch, tmp_path):
    src, files = serve(mirror, monkeypatch, "cats-vs-dogs")
    mirror.files["kagglecatsanddogs_5340.zip"] = files["kagglecatsanddogs_5340.zip"] + b"trailing junk"
    with pytest.raises(fetch.FetchError) as err:
        fetch.fetch_dataset("cats-vs-dogs", tmp_path)
    assert "expected" in str(err.value) and not (tmp_path / src.folder).exists()


def test_server_error_names_the_url_and_the_manual_route(mirror, monkeypatch, tmp_path):
    serve(mirror, monkeypatch, "imagenette")
    mirror.status["imagenette2-160.tgz"] = 503
    with pytest.raises(fetch.FetchError) as err:
        fetch.fetch_dataset("imagenette", tmp_path)
    msg = str(err.value)
    assert "HTTP 503" in msg and f"{mirror.url}/imagenette2-160.tgz" in msg
    assert str(tmp_path / "downloads" / "imagenette2-160.tgz") in msg and "--dest" in msg


def test_download_restarts_when_the_server_ignores_range(tmp_path, monkeypatch):
    data = os.urandom(200_000)
    monkeypatch.delenv("TLBENCH_OFFLINE")
    with LocalServer({"f.bin": data}, ignore_range=True) as server:
        (tmp_path / "f.bin.part").write_bytes(data[:1000])
        download(f"{server.url}/f.bin", tmp_path / "f.bin", md5=hashlib.md5(data).hexdigest(), size=len(data))
    assert (tmp_path / "f.bin").read_bytes() == data and not (tmp_path / "f.bin.part").exists()


def test_download_md5_mismatch_removes_its_part(tmp_path, monkeypatch):
    monkeypatch.delenv("TLBENCH_OFFLINE")
    with LocalServer({"f.bin": b"x" * 5000}) as server, pytest.raises(DownloadFailed, match="md5"):
        download(f"{server.url}/f.bin", tmp_path / "f.bin", md5="0" * 32)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------ offline and manual


def test_offline_error_names_every_url_and_where_to_put_the_archives(tmp_path):
    assert os.environ["TLBENCH_OFFLINE"] == "1"  # the guard stays on
    with pytest.raises(fetch.FetchError) as err:
        fetch.fetch_dataset("oxford-pets", tmp_path)
    msg = str(err.value)
    for archive in fetch.DATASETS["oxford-pets"].archives:
        assert archive.url in msg and archive.md5 in msg
    assert "TLBENCH_OFFLINE" in msg and f"{tmp_path / 'downloads'}/" in msg
    assert f"tlbench fetch oxford-pets --dest {tmp_path}" in msg


def test_manual_archives_are_verified_and_used_offline(monkeypatch, tmp_path):
    files = fa.oxford_pets()
    register(monkeypatch, "oxford-pets", files)
    (tmp_path / "downloads").mkdir()
    for name, data in files.items():
        (tmp_path / "downloads" / name).write_bytes(data)
    result = fetch.fetch_dataset("oxford-pets", tmp_path)  # TLBENCH_OFFLINE is still set
    assert result["downloaded_bytes"] == 0 and {a["source"] for a in result["archives"]} == {"found"}
    assert all((tmp_path / "downloads" / n).exists() for n in files)  # the user's files are not deleted
    assert scan_dataset(result["path"]).layout == "oxford-pets"


def test_a_wrong_manual_archive_is_refused_and_left_alone(monkeypatch, tmp_path):
    files = fa.imagenette()
    register(monkeypatch, "imagenette", files)
    (tmp_path / "downloads").mkdir()
    wrong = tmp_path / "downloads" / "imagenette2-160.tgz"
    wrong.write_bytes(fa.oxford_pets()["images.tar.gz"])
    with pytest.raises(fetch.FetchError, match="left untouched") as err:
        fetch.fetch_dataset("imagenette", tmp_path)
    assert str(wrong) in str(err.value) and wrong.exists() and not (tmp_path / "imagenette2-160").exists()


def test_an_existing_folder_that_fetch_did_not_complete_is_not_touched(tmp_path):
    folder = tmp_path / "imagenette2-160"
    (folder / "train").mkdir(parents=True)
    (folder / "train" / "mine.txt").write_text("my notes")
    before = tree_hash(tmp_path)
    with pytest.raises(fetch.FetchError, match="not a complete `tlbench fetch`"):
        fetch.fetch_dataset("imagenette", tmp_path)
    assert tree_hash(tmp_path) == before


def test_leftovers_of_a_killed_extraction_are_cleaned(mirror, monkeypatch, tmp_path):
    serve(mirror, monkeypatch, "imagenette")
    stale = tmp_path / ".imagenette2-160.partial-deadbeef"
    (stale / "train").mkdir(parents=True)
    fetch.fetch_dataset("imagenette", tmp_path)
    assert not stale.exists()


def test_a_second_fetch_into_the_same_folder_waits_its_turn(tmp_path):
    fcntl = pytest.importorskip("fcntl")
    with open(tmp_path / ".tlbench-fetch.lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        with pytest.raises(fetch.FetchError, match="Another `tlbench fetch`"):
            fetch.fetch_dataset("imagenette", tmp_path)


def test_unknown_name_lists_the_allowed_ones_and_a_close_match():
    with pytest.raises(ConfigError) as err:
        fetch.resolve("oxford-petz")
    msg = str(err.value)
    assert "'oxford-pets'" in msg and "cats-vs-dogs" in msg and "imagenette" in msg
    assert fetch.resolve("Oxford_Pets").name == "oxford-pets"
    assert fetch.resolve("pets").name == "oxford-pets" and fetch.resolve("PetImages").name == "cats-vs-dogs"


def test_registry_lists_descriptions_sizes_and_official_sources():
    for name, src in fetch.DATASETS.items():
        info = src.to_json()
        assert info["name"] == name and info["description"] and info["download_bytes"] > 1_000_000
        assert all(a["url"].startswith("https://") for a in info["archives"])
    pets = fetch.DATASETS["oxford-pets"].archives
    assert [a.md5 for a in pets] == ["5c4f3ee8e5d25df40f4fd59a7f44e54c", "95a8c909bbe2e81eed6a22bccdf3f68f"]
    assert fetch.DATASETS["cats-vs-dogs"].archives[0].md5 is None


# ------------------------------------------------------------------------------------ hostile archives

OUTSIDE = "escaped.txt"  # what a hostile member tries to create next to the target


def hostile_tars() -> list[tuple[str, bytes, str, str]]:
    ok = {"data/ok.txt": b"fine"}
    return [
        ("dotdot", fa.tar_bytes({**ok, f"data/../../{OUTSIDE}": b"x"}, dirs=False), f"data/../../{OUTSIDE}",
         "contains '..'"),
        ("absolute", fa.tar_bytes({**ok, f"/tmp/{OUTSIDE}": b"x"}, dirs=False), f"/tmp/{OUTSIDE}", "absolute path"),
        ("symlink", fa.tar_bytes(ok, extra=[fa.tar_member("data/link", tarfile.SYMTYPE, f"../../{OUTSIDE}")]),
         "data/link", "pointing outside the target"),
        ("abs-symlink", fa.tar_bytes(ok, extra=[fa.tar_member("data/etc", tarfile.SYMTYPE, "/etc")]), "data/etc",
         "link to an absolute path"),
        ("hardlink", fa.tar_bytes(ok, extra=[fa.tar_member("data/h", tarfile.LNKTYPE, "../../etc/passwd")]),
         "data/h", "pointing outside the target"),
        ("device", fa.tar_bytes(ok, extra=[fa.tar_member("data/null", tarfile.CHRTYPE)]), "data/null", "device file"),
        ("fifo", fa.tar_bytes(ok, extra=[fa.tar_member("data/pipe", tarfile.FIFOTYPE)]), "data/pipe", "FIFO"),
        # two links that are each harmless, combined into an escape; then a file written through it
        ("link-chain", fa.tar_bytes(ok, extra=[fa.tar_member("data/l1", tarfile.SYMTYPE, "l2/../.."),
                                               fa.tar_member("data/l2", tarfile.SYMTYPE, "."),
                                               fa.tar_member(f"data/l1/{OUTSIDE}")]), f"data/l1/{OUTSIDE}",
         "through a link"),
    ]


def hostile_zips() -> list[tuple[str, bytes, str, str]]:
    ok = {"data/ok.txt": b"fine"}
    return [
        ("dotdot", fa.zip_bytes({**ok, f"data/../../{OUTSIDE}": b"x"}), f"data/../../{OUTSIDE}", "contains '..'"),
        ("absolute", fa.zip_bytes({**ok, f"/tmp/{OUTSIDE}": b"x"}), f"/tmp/{OUTSIDE}", "absolute path"),
        ("backslash", fa.zip_bytes({**ok, f"data\\..\\..\\{OUTSIDE}": b"x"}), f"data\\..\\..\\{OUTSIDE}",
         "contains '..'"),
        ("symlink", fa.zip_bytes(ok, links={"data/link": f"../../{OUTSIDE}"}), "data/link",
         "pointing outside the target"),
    ]


@pytest.mark.parametrize("kind, data, member, reason", hostile_tars() + hostile_zips(),
                         ids=[f"tar-{c[0]}" for c in hostile_tars()] + [f"zip-{c[0]}" for c in hostile_zips()])
def test_hostile_archive_is_refused_naming_the_member(tmp_path, kind, data, member, reason):
    box = tmp_path / "box"
    (box / "downloads").mkdir(parents=True)
    archive = box / "downloads" / ("a.zip" if data[:2] == b"PK" else "a.tgz")
    archive.write_bytes(data)
    outside_before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ArchiveError) as err:
        extract_archives([archive], box / "dataset")
    assert repr(member) in str(err.value) and reason in str(err.value), str(err.value)
    assert not (box / "dataset").exists() and not partial_dirs(box / "dataset")
    assert sorted(p.name for p in tmp_path.iterdir()) == outside_before
    assert not any(p.name == OUTSIDE for p in tmp_path.rglob("*")) and not os.path.exists(f"/tmp/{OUTSIDE}")


def test_fetch_refuses_a_hostile_archive_even_with_a_matching_checksum(mirror, monkeypatch, tmp_path):
    files = {"imagenette2-160.tgz": hostile_tars()[0][1]}
    mirror.files.update(files)
    register(monkeypatch, "imagenette", files)
    with pytest.raises(ArchiveError, match="contains '..'"):
        fetch.fetch_dataset("imagenette", tmp_path / "d")
    assert not (tmp_path / "d" / "imagenette2-160").exists() and not (tmp_path / OUTSIDE).exists()


def test_safe_links_inside_the_target_are_kept(tmp_path):
    data = fa.tar_bytes({"data/a.txt": b"a"}, extra=[fa.tar_member("data/b.txt", tarfile.SYMTYPE, "a.txt")])
    (tmp_path / "a.tgz").write_bytes(data)
    out = extract_archives([tmp_path / "a.tgz"], tmp_path / "out", inner="data")
    assert (out / "b.txt").is_symlink() and (out / "b.txt").read_bytes() == b"a"


# ------------------------------------------------------------------------------------ the CLI


def cli(capfd, *args) -> tuple[int, str, str]:
    from engine.cli import main

    code = main(["fetch", *map(str, args)])
    out, err = capfd.readouterr()
    return code, out, err


def test_cli_fetch_json_then_no_op(mirror, monkeypatch, tmp_path, capfd):
    _, files = serve(mirror, monkeypatch, "cats-vs-dogs")
    code, out, err = cli(capfd, "cats-vs-dogs", "--dest", tmp_path, "--json")
    assert code == 0, err
    result = json.loads(out)
    for key in ("dataset", "path", "command", "downloaded_bytes", "already_complete"):
        assert key in result
    assert result["downloaded_bytes"] == len(files["kagglecatsanddogs_5340.zip"])
    assert "download kagglecatsanddogs_5340.zip" in err  # progress on stderr, stdout kept for the JSON
    code, out, _ = cli(capfd, "cats-vs-dogs", "--dest", tmp_path)
    assert code == 0 and "already complete" in out and f"tlbench {tmp_path / 'cats-vs-dogs'}" in out


def test_cli_unknown_name_exits_2_with_a_close_match(capfd):
    code, out, err = cli(capfd, "imagenet", "--json")
    assert code == 2
    message = json.loads(out)["error"]["message"]
    assert "'imagenette'" in message and "oxford-pets" in message and "cats-vs-dogs" in message


def test_cli_offline_exits_1_with_the_manual_route(capfd, tmp_path):
    """A download that cannot happen is a failed job (exit 1), not bad input: the command was right."""
    code, out, err = cli(capfd, "imagenette", "--dest", tmp_path, "--json")
    assert code == 1
    message = json.loads(out)["error"]["message"]
    assert "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz" in message
    assert str(tmp_path / "downloads") in message


def test_cli_without_a_name_lists_the_datasets(capfd):
    code, out, _ = cli(capfd, "--json")
    assert code == 0
    names = [d["name"] for d in json.loads(out)["datasets"]]
    assert names == ["oxford-pets", "cats-vs-dogs", "imagenette"]


def test_cli_a_dest_that_is_a_file_or_a_foreign_folder_is_bad_input(capfd, tmp_path):
    """What the user named is wrong, so exit 2 (a failed download would be 1)."""
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    code, out, _ = cli(capfd, "imagenette", "--dest", a_file, "--json")
    assert code == 2 and json.loads(out)["error"]["exit_code"] == 2 and "is a file" in json.loads(out)["error"]["message"]
    (tmp_path / "mine" / "imagenette2-160").mkdir(parents=True)
    code, out, _ = cli(capfd, "imagenette", "--dest", tmp_path / "mine", "--json")
    assert code == 2 and "not a complete" in json.loads(out)["error"]["message"]
