"""`tlbench fetch`: the lesson's datasets (engine.fetch.catalog) from their official sources, verified,
resumable, unpacked safely.

The job (`fetch_dataset`) for a dataset NAME and a destination DEST (default: engine.core.paths.data_dir()):
  1. DEST/<folder>/.tlbench-fetch.json exists: the dataset is complete, nothing to do.
  2. Each archive: DEST/downloads/<archive> if it is there (a manual download, or a previous run's),
     else downloaded into DEST/downloads/<archive>.part, resuming, and renamed only once verified.
  3. Verified before extraction: size and md5 (the md5s torchvision publishes), or, where no checksum is
     published, size and the archive's own CRC-32s.
  4. Extracted safely (engine.fetch.archives) into a temporary folder beside DEST/<folder>; the layout is
     checked, the completion marker written, and the folder renamed into place in one step.
Set TLBENCH_FETCH_MIRROR=URL to download from a mirror that holds the same archive names.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.core.errors import EXIT_BAD_INPUT, TlbenchError
from engine.core.jobs import JobStopped
from engine.core.paths import data_dir
from engine.data.layouts import find_items
from engine.fetch.archives import extract_archives, partial_dirs, verify_integrity
from engine.fetch.catalog import DATASETS, Archive, DatasetSource, resolve  # noqa: F401 - the workbench reads DATASETS here
from engine.fetch.downloads import DownloadFailed, download, human_bytes, offline, verify_file

if TYPE_CHECKING:
    from engine.core.jobs import JobContext

MARKER = ".tlbench-fetch.json"
MIRROR_ENV = "TLBENCH_FETCH_MIRROR"


class FetchError(TlbenchError):
    title = "Fetch failed"


def archive_url(archive: Archive) -> str:
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    return f"{mirror.rstrip('/')}/{archive.filename}" if mirror else archive.url


def dataset_path(name: str, dest: str | os.PathLike | None = None) -> Path:
    return _dest(dest) / resolve(name).folder


def read_marker(folder: Path) -> dict | None:
    """The completion marker's content, or None when the folder is not a complete fetch."""
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_complete(name: str, dest: str | os.PathLike | None = None) -> bool:
    src = resolve(name)
    marker = read_marker(_dest(dest) / src.folder)
    return marker is not None and marker.get("dataset") == src.name


def _dest(dest: str | os.PathLike | None) -> Path:
    return Path(dest).expanduser().absolute() if dest is not None else data_dir().absolute()


def _log(ctx: JobContext | None, text: str, level: str = "info") -> None:
    if ctx is not None:
        ctx.log(text, level)


@contextlib.contextmanager
def _locked(dest: Path):
    """One fetch per destination at a time (the workbench and a shell may both try); released by the OS
    even when the process is killed."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here; concurrent fetches are the user's call
        yield
        return
    with open(dest / ".tlbench-fetch.lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise FetchError(f"Another `tlbench fetch` is writing to {dest} right now. Wait for it to finish, "
                             "or use another --dest.") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def fetch_dataset(name: str, dest: str | os.PathLike | None = None, *, ctx: JobContext | None = None,
                  keep_archives: bool = False) -> dict[str, Any]:
    """Download, verify and extract dataset `name` into DEST/<folder>; a job function (use with run_job).

    Returns {"dataset", "title", "path", "command", "downloaded_bytes", "already_complete", "layout",
    "classes", "image_files", "archives", "notes", "seconds"}. Idempotent: a complete dataset is left as is.
    """
    start = time.monotonic()
    src = resolve(name)
    root = _dest(dest)
    rerun = f"tlbench fetch {src.name}" + (f" --dest {shlex.quote(str(root))}" if dest is not None else "")
    target = root / src.folder
    marker = read_marker(target)
    if marker is not None and marker.get("dataset") == src.name:
        _log(ctx, f"{src.title} is already complete in {target}")
        return _result(src, target, marker, downloaded=0, complete=True, archives=[], start=start)
    if target.exists():
        raise FetchError(
            f"{target} already exists but is not a complete `tlbench fetch` of {src.name} (no {MARKER} in it). "
            f"If you put the dataset there yourself, open it with `tlbench {shlex.quote(str(target))}`; "
            f"otherwise move it away and run `{rerun}` again, or choose another --dest.",
            exit_code=EXIT_BAD_INPUT,
        )
    if root.exists() and not root.is_dir():
        raise FetchError(f"--dest {root} is a file; give a folder (it is created if missing).",
                         exit_code=EXIT_BAD_INPUT)
    downloads = root / "downloads"
    try:
        downloads.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FetchError(f"Cannot create {downloads}: {err.strerror or err}. Choose a writable --dest.",
                         exit_code=EXIT_BAD_INPUT) from None

    with _locked(root):
        for stale in partial_dirs(target):  # an extraction killed mid-way; ours by name, and we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        records, downloaded = _gather_archives(src, downloads, rerun, ctx)
        paths = [downloads / a.filename for a in src.archives]
        for archive, path in zip(src.archives, paths):
            if archive.md5 is None:  # no published checksum: the archive's own CRC-32s, before extracting
                _log(ctx, f"checking every file's CRC-32 in {path.name} (no published checksum)")
                verify_integrity(path, ctx, phase=f"verify {path.name}")
        info: dict[str, Any] = {}
        _log(ctx, f"extracting into {target}")
        extract_archives(paths, target, inner=src.inner, ctx=ctx,
                         prepare=lambda folder: info.update(_finish(src, folder, records)))
        for record, path in zip(records, paths):
            if record["source"] == "downloaded" and not keep_archives:
                path.unlink(missing_ok=True)
                record["kept"] = False
        with contextlib.suppress(OSError):
            downloads.rmdir()  # only when empty
    return _result(src, target, info, downloaded=downloaded, complete=False, archives=records, start=start)


def _gather_archives(src: DatasetSource, downloads: Path, rerun: str,
                     ctx: JobContext | None) -> tuple[list[dict], int]:
    """Every archive verified in DEST/downloads/, found there or downloaded; returns records and bytes fetched."""
    records, missing = [], []
    for archive in src.archives:
        path = downloads / archive.filename
        record = {"name": archive.filename, "url": archive_url(archive), "bytes": archive.size, "md5": archive.md5,
                  "path": str(path), "source": "found", "kept": True}
        records.append(record)
        if path.exists():
            _log(ctx, f"verifying {path} ({human_bytes(archive.size)})")
            problem = verify_file(path, size=archive.size, md5=archive.md5)
            if problem:
                raise FetchError(
                    f"{path} is not the expected {archive.filename} ({problem}). It was left untouched: "
                    f"delete it (or replace it with the file from {archive_url(archive)}) and run `{rerun}` again."
                )
        else:
            missing.append((archive, record))
    if not missing:
        return records, 0
    if offline():
        raise FetchError(_manual_help(src, downloads, [a for a, _ in missing], rerun,
                                      "network access is disabled (TLBENCH_OFFLINE is set)"))
    _check_space(src, downloads, [a for a, _ in missing])
    downloaded = 0
    for archive, record in missing:
        path = downloads / archive.filename
        part = path.with_name(path.name + ".part")
        had = part.stat().st_size if part.exists() else 0
        url = archive_url(archive)
        resume = f", resuming at {human_bytes(had)}" if 0 < had < archive.size else ""
        _log(ctx, f"downloading {archive.filename} ({human_bytes(archive.size)}) from {url}{resume}")
        try:
            download(url, path, md5=archive.md5, size=archive.size, ctx=ctx, phase=f"download {archive.filename}")
        except DownloadFailed as err:
            kept = part.stat().st_size if part.exists() else 0
            resume_note = (f" Running `{rerun}` again resumes from the {human_bytes(kept)} kept in {part}."
                           if kept else f" Run `{rerun}` again to retry.")
            raise FetchError(f"Downloading {archive.filename} for {src.name} failed: {err}.{resume_note} "
                             + _manual_hint(downloads, archive, rerun)) from None
        except JobStopped:
            if part.exists():
                _log(ctx, f"stopped; {human_bytes(part.stat().st_size)} kept in {part}, resumed by `{rerun}`")
            raise
        downloaded += max(archive.size - had, 0)
        record["source"] = "downloaded"
    return records, downloaded


def _manual_hint(downloads: Path, archive: Archive, rerun: str) -> str:
    return (f"Or download {archive_url(archive)} on another machine, copy it to {downloads / archive.filename} "
            f"and run `{rerun}`: it is verified, then used.")


def _manual_help(src: DatasetSource, downloads: Path, missing: list[Archive], rerun: str, why: str) -> str:
    lines = [f"Cannot download {src.title} ({src.name}): {why}. Missing:"]
    for a in missing:
        check = f"md5 {a.md5}" if a.md5 else "no published checksum; its size is checked"
        lines.append(f"  {archive_url(a)}\n    ({a.filename}, {human_bytes(a.size)} = {a.size:,} bytes, {check})")
    lines.append(f"Download them on a machine with internet, copy them into {downloads}/ under the same names, "
                 f"and run `{rerun}` again: they are verified before use. Or allow network access "
                 "(unset TLBENCH_OFFLINE).")
    return "\n".join(lines)


def _check_space(src: DatasetSource, downloads: Path, missing: list[Archive]) -> None:
    # Images are already compressed: extracting takes about the archives' size again.
    need = sum(a.size for a in missing) + src.download_bytes
    free = shutil.disk_usage(downloads).free
    if free < need:
        raise FetchError(f"{src.title} needs about {human_bytes(need)} free in {downloads.parent} (downloads plus "
                         f"extracted files); only {human_bytes(free)} is free. Free space or choose another --dest.")


def _finish(src: DatasetSource, folder: Path, records: list[dict]) -> dict[str, Any]:
    """On the complete extracted tree, before it takes its name: check it is the dataset, write the marker."""

    for rel in src.expect:
        if not (folder / rel).exists():
            raise FetchError(f"The archives for {src.name} do not contain {rel}: they are not the expected "
                             f"download. Delete them from the downloads folder and fetch again.")
    try:
        layout, items, _ = find_items(folder)
    except TlbenchError as err:
        raise FetchError(f"The extracted {src.name} is not a readable dataset ({err}). Nothing was kept.") from None
    if layout != src.layout:
        raise FetchError(f"The extracted {src.name} has the layout {layout!r}, expected {src.layout!r}. "
                         "Nothing was kept; the archives are not the expected download.")
    info = {
        "dataset": src.name, "version": 1, "layout": layout, "classes": len({c for _, c, _ in items}),
        "image_files": len(items), "completed": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "archives": [{k: r[k] for k in ("name", "url", "bytes", "md5")} for r in records],
    }
    (folder / MARKER).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def _result(src: DatasetSource, target: Path, info: dict, *, downloaded: int, complete: bool,
            archives: list[dict], start: float) -> dict[str, Any]:
    quoted = shlex.quote(str(target))
    return {
        "dataset": src.name,
        "title": src.title,
        "path": str(target),
        "command": f"tlbench {quoted}",
        "scan_command": f"tlbench scan {quoted}",
        "downloaded_bytes": downloaded,
        "already_complete": complete,
        "layout": info.get("layout", src.layout),
        "classes": info.get("classes"),
        "image_files": info.get("image_files"),
        "archives": archives,
        "notes": list(src.notes),
        "seconds": round(time.monotonic() - start, 3),
    }
