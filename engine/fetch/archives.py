"""Extracting zip and tar archives safely, into a temporary folder that becomes the target only when complete.

Refused, naming the member: absolute paths, `..` components, links pointing outside the target, device files
and FIFOs, and any member whose destination would resolve outside the target (writing through a link that
an earlier member created). Tar members also pass Python's `filter="data"`; it repeats these checks and drops
setuid bits, but its messages are terse, so we check first and explain. Zip members are checked by us alone:
zipfile silently rewrites unsafe names, and we want to refuse, not guess.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tarfile
import uuid
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from engine.core.errors import TlbenchError
from engine.core.events import ProgressAdvanced

if TYPE_CHECKING:
    from engine.core.jobs import JobContext

DRIVE = re.compile(r"^[A-Za-z]:")


class ArchiveError(TlbenchError):
    title = "Archive refused"


def archive_kind(path: Path) -> str:
    """'zip' or 'tar' (any compression tarfile reads), by content rather than by name."""
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        if tarfile.is_tarfile(path):
            return "tar"
    except OSError:
        pass
    raise ArchiveError(f"{path} is neither a zip nor a tar archive (or it is damaged). Delete it and fetch again.")


def name_problem(name: str) -> str | None:
    """Why an archive member's name is unsafe, or None."""
    if not name or "\x00" in name:
        return "has an empty or invalid name"
    if name.startswith(("/", "\\")) or DRIVE.match(name):
        return "has an absolute path"
    if ".." in re.split(r"[\\/]", name):
        return "contains '..' (it would land outside the target)"
    return None


def link_problem(name: str, linkname: str, hard: bool = False) -> str | None:
    """Why a link member is unsafe: its target is absolute or resolves outside the extraction folder."""
    if not linkname or linkname.startswith(("/", "\\")) or DRIVE.match(linkname):
        return f"is a link to an absolute path ({linkname!r})"
    # a hard link names a member (relative to the archive root); a symlink is relative to its own folder
    base = "" if hard else os.path.dirname(name)
    resolved = os.path.normpath(os.path.join(base, linkname.replace("\\", "/")))
    if resolved == ".." or resolved.startswith("../") or os.path.isabs(resolved):
        return f"is a link pointing outside the target ({linkname!r})"
    return None


def _inside(root_real: str, path: str) -> bool:
    return os.path.commonpath([root_real, path]) == root_real


def _refuse(archive: Path, member: str, reason: str) -> ArchiveError:
    return ArchiveError(
        f"Refused to extract {archive.name}: member {member!r} {reason}. Nothing from it was kept. "
        "The archive is damaged or was tampered with: delete it and fetch again from the official source."
    )


def _check_destination(archive: Path, root_real: str, name: str) -> None:
    """The member's folder, with links followed, must still be inside the target."""
    parent = os.path.realpath(os.path.join(root_real, os.path.dirname(name.rstrip("/"))))
    if not _inside(root_real, parent):
        raise _refuse(archive, name, "would be written through a link that leads outside the target")


def _tar_problem(member: tarfile.TarInfo) -> str | None:
    problem = name_problem(member.name)
    if problem:
        return problem
    if member.issym():
        return link_problem(member.name, member.linkname)
    if member.islnk():
        return link_problem(member.name, member.linkname, hard=True)
    if member.ischr() or member.isblk():
        return "is a device file"
    if member.isfifo():
        return "is a FIFO (named pipe)"
    if not (member.isreg() or member.isdir()):
        return f"is a special file (tar type {member.type!r})"
    return None


def extract_tar(archive: Path, root: Path, ctx: JobContext | None = None, phase: str = "extract") -> None:
    """Extract a tar (.tar, .tar.gz, .tgz, …) into the existing folder `root`, member by member."""
    root_real = os.path.realpath(root)
    total = archive.stat().st_size
    try:
        with open(archive, "rb") as raw, tarfile.open(fileobj=raw, mode="r:*") as tar:
            for i, member in enumerate(tar):  # streaming: one pass over the compressed file
                problem = _tar_problem(member)
                if problem:
                    raise _refuse(archive, member.name, problem)
                _check_destination(archive, root_real, member.name)
                try:
                    tar.extract(member, root, filter="data")
                except tarfile.FilterError as err:  # something we did not foresee: still refuse, still say which
                    raise _refuse(archive, member.name, f"was refused by tarfile's data filter ({err})") from None
                if ctx is not None and i % 64 == 0:
                    ctx.progress(ProgressAdvanced(phase, raw.tell(), total, "bytes"))
                    ctx.check()
    except (tarfile.TarError, EOFError, OSError) as err:
        raise ArchiveError(f"{archive.name} is damaged ({type(err).__name__}: {err}). "
                           f"Delete {archive} and fetch again.") from None
    if ctx is not None:
        ctx.progress(ProgressAdvanced(phase, total, total, "bytes"), force=True)


def _zip_problem(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> str | None:
    problem = name_problem(info.filename)
    if problem:
        return problem
    mode = info.external_attr >> 16
    if info.create_system != 3 or not mode:  # only Unix-made zips carry file types
        return None
    if stat.S_ISLNK(mode):
        target = zf.read(info).decode("utf-8", "replace")
        return link_problem(info.filename, target)
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device file"
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        return "is a FIFO or socket"
    return None


def extract_zip(archive: Path, root: Path, ctx: JobContext | None = None, phase: str = "extract") -> None:
    """Extract a zip into the existing folder `root`; every name is checked before anything is written."""
    root_real = os.path.realpath(root)
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            for info in infos:  # the central directory lists every member up front
                problem = _zip_problem(zf, info)
                if problem:
                    raise _refuse(archive, info.filename, problem)
            total, done = sum(i.file_size for i in infos), 0
            for i, info in enumerate(infos):
                _check_destination(archive, root_real, info.filename)
                zf.extract(info, root)  # reading verifies each member's CRC-32
                done += info.file_size
                if ctx is not None and i % 64 == 0:
                    ctx.progress(ProgressAdvanced(phase, done, total, "bytes"))
                    ctx.check()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as err:
        raise ArchiveError(f"{archive.name} is damaged ({type(err).__name__}: {err}). "
                           f"Delete {archive} and fetch again.") from None
    if ctx is not None:
        ctx.progress(ProgressAdvanced(phase, total, total, "bytes"), force=True)


def extract(archive: Path, root: Path, ctx: JobContext | None = None, phase: str = "extract") -> None:
    archive = Path(archive)
    (extract_zip if archive_kind(archive) == "zip" else extract_tar)(archive, Path(root), ctx, phase)


def verify_integrity(archive: Path, ctx: JobContext | None = None, phase: str = "verify") -> None:
    """Read the whole archive without writing anything: every zip member's CRC-32, or the whole compressed
    tar stream (gzip carries a CRC-32 of its content). For archives that have no published checksum."""
    archive = Path(archive)
    try:
        if archive_kind(archive) == "zip":
            with zipfile.ZipFile(archive) as zf:
                bad = zf.testzip()
            if bad is not None:
                raise ArchiveError(f"{archive.name} is damaged: member {bad!r} fails its CRC-32 check. "
                                   f"Delete {archive} and fetch again.")
        else:
            total = archive.stat().st_size
            with open(archive, "rb") as raw, tarfile.open(fileobj=raw, mode="r:*") as tar:
                for i, member in enumerate(tar):
                    if member.isreg():
                        f = tar.extractfile(member)
                        assert f is not None  # a regular member always has a file object
                        with f:
                            while f.read(1 << 20):
                                pass
                    if ctx is not None and i % 64 == 0:
                        ctx.progress(ProgressAdvanced(phase, raw.tell(), total, "bytes"))
                        ctx.check()
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as err:
        raise ArchiveError(f"{archive.name} is damaged ({type(err).__name__}: {err}). "
                           f"Delete {archive} and fetch again.") from None



def _sweep_links(root: Path) -> None:
    """After extraction: every symlink in the tree must resolve inside it. Links that were each safe alone
    can combine into an escape (a link created later changes what an earlier one points to)."""
    root_real = os.path.realpath(root)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path) and not _inside(root_real, os.path.realpath(path)):
                rel = os.path.relpath(path, root)
                raise ArchiveError(f"Refused the extracted tree: {rel!r} is a link pointing outside the target "
                                   f"({os.readlink(path)!r}). Nothing was kept.")


def partial_dirs(target: Path) -> list[Path]:
    """Temporary folders an interrupted extraction into `target` left behind (named by us, safe to remove)."""
    return sorted(target.parent.glob(f".{target.name}.partial-*"))


def extract_archives(
    archives: Sequence[Path],
    target: Path,
    *,
    inner: str = "",
    ctx: JobContext | None = None,
    prepare: Callable[[Path], None] | None = None,
) -> Path:
    """Extract `archives` into a temporary folder beside `target`, then rename it (or its sub-folder `inner`,
    the archive's own top folder) to `target`. `prepare(folder)` runs on the complete tree just before the
    rename (checks, a completion marker). Either `target` appears complete, or it does not appear at all."""
    target = Path(target)
    if target.exists():
        raise ArchiveError(f"{target} already exists; refusing to extract over it. Move it away first.")
    tmp = target.parent / f".{target.name}.partial-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        for archive in archives:
            extract(Path(archive), tmp, ctx, phase=f"extract {Path(archive).name}")
        _sweep_links(tmp)
        folder = tmp / inner if inner else tmp
        if not folder.is_dir() or folder.is_symlink():
            names = ", ".join(sorted(p.name for p in tmp.iterdir())[:10]) or "nothing"
            raise ArchiveError(f"The archives do not contain the folder {inner!r} (found: {names}). "
                               "They are not the expected download: delete them and fetch again.")
        if prepare is not None:
            prepare(folder)
        os.rename(folder, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
