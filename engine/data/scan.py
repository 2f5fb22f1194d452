"""The integrity scan and the split.

`scan_dataset` opens every image the layout lists (engine.data.layouts), in threads or processes, and keeps a
per-folder cache keyed by (path, size, mtime), so a second scan only opens new or changed files. It never
modifies, moves or deletes anything: unusable files are listed with a reason and skipped.
`split_dataset` gives the validation split: the dataset's own when it has one, else a stratified split
decided per file by a hash of (seed, path).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import statistics
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING

from engine.core.errors import ConfigError, DatasetError
from engine.core.events import ProgressAdvanced
from engine.core.paths import cache_dir
from engine.data.images import MIN_SIDE, ImageProblem, check_image

if TYPE_CHECKING:
    from engine.core.jobs import JobContext
from engine.data.layouts import DatasetInfo, Sample, Unreadable, find_items

# ---------------------------------------------------------------------------------------------- scan


def _scan_cache_path(root: Path) -> Path:
    key = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:16]
    return cache_dir() / "scan" / f"{key}.json"


def _load_scan_cache(root: Path, min_side: int) -> dict:
    try:
        data = json.loads(_scan_cache_path(root).read_text())
        if data.get("version") == 1 and data.get("min_side") == min_side:
            return data["entries"]
    except (OSError, ValueError, KeyError):
        pass
    return {}


def _save_scan_cache(root: Path, min_side: int, entries: dict) -> None:
    from engine.core.files import atomic_write_text  # runs imports torch; keep the scan import light

    path = _scan_cache_path(root)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({"version": 1, "min_side": min_side, "entries": entries}))
    except OSError:
        pass  # a cache we cannot write only costs time


def _identity(path: str) -> list:
    try:
        st = os.stat(path)
        return [st.st_size, st.st_mtime_ns]
    except OSError:
        return [None, None]


def _check_one(path: str, min_side: int) -> tuple[str, list]:
    """(path, [size, mtime, width, height, format]) or (path, [size, mtime, reason])."""
    ident = _identity(path)
    try:
        w, h, fmt = check_image(path, min_side)
        return path, ident + [w, h, fmt]
    except ImageProblem as err:
        return path, ident + [str(err)]
    except Exception as err:  # noqa: BLE001 - an unexpected decoder failure is still just an unusable file
        return path, ident + [f"cannot decode ({type(err).__name__}: {err})"]


# Below this many files to check, threads (decoding releases the GIL; no start-up cost). Above it, processes:
# for small files the per-file Python work holds the GIL, so threads would leave all but one core idle.
PROCESS_POOL_MIN = 2000


def _quiet_worker() -> None:
    """Scan worker processes share the terminal: under the workbench a stray warning would tear the screen."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)


def _threads(workers: int | None) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 1) * 2))


def _checker(count: int, workers: int | None):
    cores = os.cpu_count() or 1
    if count >= PROCESS_POOL_MIN and cores > 1:
        import multiprocessing

        # spawn, not fork: the workbench scans from a thread, and forking a threaded process can deadlock
        pool = ProcessPoolExecutor(max_workers=workers or min(8, cores), initializer=_quiet_worker,
                                   mp_context=multiprocessing.get_context("spawn"))
        return pool, 256
    return _threads(workers), 1


def _check_all(todo: list[str], min_side: int, workers: int | None, results: dict, on_result, ctx) -> None:
    """Check `todo` into `results`; if worker processes cannot start, the rest is checked on threads."""
    pool = None
    try:
        pool, chunk = _checker(len(todo), workers)
        for path, res in pool.map(_check_one, todo, itertools.repeat(min_side), chunksize=chunk):
            results[path] = res
            on_result()
    except (OSError, ValueError, BrokenProcessPool) as err:
        # e.g. a host that replaced sys.stderr with an object without a real file descriptor (Textual does):
        # multiprocessing cannot start its helper process. Slower, but the scan still finishes.
        if isinstance(pool, ThreadPoolExecutor):
            raise
        if ctx is not None:
            ctx.log(f"scan: worker processes unavailable ({err}); checking on threads instead", "warning")
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        pool = _threads(workers)
        rest = [p for p in todo if p not in results]
        for path, res in pool.map(_check_one, rest, itertools.repeat(min_side)):
            results[path] = res
            on_result()
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)  # a stopped scan does not wait for the rest


def scan_dataset(
    root: str | os.PathLike,
    *,
    check: bool = True,
    min_side: int = MIN_SIDE,
    workers: int | None = None,
    ctx: JobContext | None = None,
) -> DatasetInfo:
    """Find the layout and check every image. Reads only; results are cached by (path, size, mtime)."""
    root = Path(root).expanduser()
    layout, items, notes = find_items(root)
    classes = sorted({c for _, c, _ in items})
    index = {c: i for i, c in enumerate(classes)}
    paths = [p for p, _, _ in items]

    results: dict[str, list] = {}
    if check:
        cached = _load_scan_cache(root, min_side)
        todo = []
        for path in paths:
            hit = cached.get(path)
            if hit is not None and hit[0] is not None and hit[:2] == _identity(path):
                results[path] = hit
            else:
                todo.append(path)
        total, done = len(paths), len(results)
        if ctx is not None:
            ctx.progress(ProgressAdvanced("scan", done, total, "files"), force=True)
        if todo:
            def advanced() -> None:
                nonlocal done
                done += 1
                if ctx is not None and (done % 64 == 0 or done == total):
                    ctx.progress(ProgressAdvanced("scan", done, total, "files"), force=done == total)
                    ctx.check()

            _check_all(todo, min_side, workers, results, advanced, ctx)
        if results != cached:
            _save_scan_cache(root, min_side, results)

    samples, unreadable, sides = [], [], []
    for path, cls, split in items:
        res = results.get(path)
        if res is not None and len(res) == 3:
            unreadable.append(Unreadable(path, res[2]))
            continue
        if res is not None:
            sides.append(min(res[2], res[3]))
        samples.append(Sample(path, index[cls], split))
    used = sorted({classes[s.label] for s in samples})
    if used != classes:  # a class whose every image is unusable
        gone = [c for c in classes if c not in used]
        notes.append(f"No usable images left in class(es): {', '.join(gone)}.")
        index = {c: i for i, c in enumerate(used)}
        samples = [Sample(s.path, index[classes[s.label]], s.split) for s in samples]
        classes = used
    if unreadable:
        notes.append(f"{len(unreadable)} unusable file(s) skipped (listed; nothing was changed on disk).")
    median = int(statistics.median(sides)) if sides else None
    # abspath, like the samples' paths: resolving symlinks here would put a linked dataset's files outside it
    return DatasetInfo(Path(os.path.abspath(root)), layout, classes, samples, unreadable, notes, median)


# ---------------------------------------------------------------------------------------------- split


def scan_run_dataset(recorded: str, given: str | os.PathLike | None = None,
                     ctx: JobContext | None = None) -> DatasetInfo:
    """The dataset a run was trained on (or `given` instead), with a fix when it has moved since."""
    if given is None and not os.path.isdir(recorded):
        raise DatasetError(f"The run's dataset {recorded} is no longer there (moved or deleted). "
                           "Pass where it is now with --data PATH.")
    return scan_dataset(given if given is not None else recorded, ctx=ctx)


def _order_key(seed: int, path: str, root: Path) -> str:
    rel = os.path.relpath(path, root)
    return hashlib.sha1(f"{seed}:{rel}".encode()).hexdigest()


def split_dataset(info: DatasetInfo, val_fraction: float = 0.2, seed: int = 0) -> tuple[list[Sample], list[Sample]]:
    """A stratified train/validation split.

    Each file's side is decided by a hash of (seed, relative path): the same files and seed always give the
    same split, on any machine, and adding files does not reshuffle the others. A layout that carries its
    own split (train/ + val/, the Pets annotations) is used as is.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"--val-fraction {val_fraction} is out of range: use a value between 0 and 1, e.g. 0.2.")
    counts = info.counts()
    if len(info.classes) < 2:
        found = f"1 class ({info.classes[0]!r})" if info.classes else "no classes"
        raise DatasetError(
            f"Found {found} with usable images in {info.root}; a classifier needs at least 2. "
            f"Add one folder per class: {info.root}/<class>/image.jpg."
        )
    if any(s.split for s in info.samples):
        train = [s for s in info.samples if s.split == "train"]
        val = [s for s in info.samples if s.split == "val"]
        train_labels = {s.label for s in train}
        missing = [info.classes[i] for i in range(len(info.classes)) if i not in train_labels]
        if missing:
            raise DatasetError(f"Class(es) {', '.join(missing)} have no training images in {info.root}.")
        if not val:
            raise DatasetError(f"The validation folder of {info.root} has no usable images.")
        return train, val
    few = [f"{c} ({n})" for c, n in zip(info.classes, counts) if n < 2]
    if few:
        raise DatasetError(
            f"Class(es) with fewer than 2 usable images: {', '.join(few)}. Each class needs at least 2 "
            "(one to train on, one to validate). Add images or remove the folder."
        )
    train, val = [], []
    for label in range(len(info.classes)):
        members = sorted((s for s in info.samples if s.label == label), key=lambda s: _order_key(seed, s.path, info.root))
        n_val = min(len(members) - 1, max(1, round(len(members) * val_fraction)))
        val.extend(members[:n_val])
        train.extend(members[n_val:])
    return train, val
