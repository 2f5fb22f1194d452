"""Downloading one file: resumable, verified, with progress as engine events.

torch.hub and torchvision's helpers print a tqdm bar and cannot resume; tlbench needs progress events for
the workbench and a partial file that never counts as complete, so the transfer loop lives here.
"""

from __future__ import annotations

import hashlib
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from engine.events import ProgressAdvanced

if TYPE_CHECKING:
    from engine.jobs import JobContext

CHUNK = 1 << 16


class DownloadFailed(Exception):
    """The transfer did not complete (network, server or checksum). The message says which."""


def offline() -> bool:
    """TLBENCH_OFFLINE=1 forbids every network access (tests set it; so can air-gapped users)."""
    return os.environ.get("TLBENCH_OFFLINE", "").strip() not in ("", "0", "false", "no")


def sha256_file(path: str | os.PathLike, limit: int | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:limit] if limit else h.hexdigest()


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    ctx: JobContext | None = None,
    phase: str = "download",
    timeout: float = 30.0,
) -> Path:
    """Fetch `url` to `dest` via `dest.part`, resuming a partial file; verify `sha256` (full or a prefix)."""
    dest = Path(dest)
    if offline():
        raise DownloadFailed(f"network access is disabled (TLBENCH_OFFLINE is set); cannot fetch {url}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "tlbench"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - http(s) URLs from our registry
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # the part file already holds everything
            response = None
        else:
            raise DownloadFailed(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DownloadFailed(f"{url}: {reason}") from None
    if response is not None:
        with response:
            if have and response.status != 206:  # the server ignored Range: start over
                have = 0
            total = response.length
            total = (total + have) if total is not None else None
            done, start = have, time.monotonic()
            try:
                with open(part, "ab" if have else "wb") as f:
                    while True:
                        block = response.read(CHUNK)
                        if not block:
                            break
                        f.write(block)
                        done += len(block)
                        if ctx is not None:
                            rate = (done - have) / max(time.monotonic() - start, 1e-6)
                            ctx.progress(ProgressAdvanced(phase, done, total, "bytes", rate))
                            ctx.check()
            except (OSError, urllib.error.URLError) as err:
                raise DownloadFailed(f"{url}: transfer interrupted after {done:,} bytes ({err}); "
                                     "run again to resume") from None
            if total is not None and done < total:
                raise DownloadFailed(f"{url}: transfer ended early ({done:,} of {total:,} bytes); run again to resume")
            if ctx is not None:
                ctx.progress(ProgressAdvanced(phase, done, total, "bytes"), force=True)
    if sha256:
        digest = sha256_file(part)
        if not digest.startswith(sha256.lower()):
            part.unlink(missing_ok=True)  # our own partial file, never user data
            raise DownloadFailed(f"{url}: checksum mismatch (expected sha256 {sha256}…, got {digest[:len(sha256)]}…)")
    os.replace(part, dest)
    return dest
