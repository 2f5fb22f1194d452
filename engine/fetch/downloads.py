"""Downloading one file: resumable, verified, with progress as engine events.

Why the transfer loop is ours and not torchvision's `download_url` or torch.hub's: those print a tqdm bar and
always start from byte 0. tlbench needs (1) progress as `ProgressAdvanced` events, so the workbench and the
CLI show size, speed and ETA from the same stream, and stop/pause between chunks; (2) resuming an interrupted
transfer with an HTTP Range request into `dest.part`, which never counts as complete: it is renamed to `dest`
only after its size and checksum are verified. Checksums themselves use torchvision's helpers
(`calculate_md5`), since torchvision publishes the md5s of the archives we fetch.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from engine.core.events import ProgressAdvanced

if TYPE_CHECKING:
    from engine.core.jobs import JobContext

CHUNK = 1 << 16
# How long the network check before a download may take. A machine without network often has a resolver
# that times out only after ~10 s per attempt; a download should fail at once there, not seconds into a job.
NETWORK_CHECK_SECONDS = 3.0
_NETWORK_MEMO_SECONDS = 30.0
_network_memo: dict[tuple[str, int], tuple[float, str | None]] = {}


class DownloadFailed(Exception):
    """The transfer did not complete (network, server or checksum). The message says which."""


def offline() -> bool:
    """TLBENCH_OFFLINE=1 forbids every network access (tests set it; so can air-gapped users)."""
    return os.environ.get("TLBENCH_OFFLINE", "").strip() not in ("", "0", "false", "no")


def _endpoint(url: str) -> tuple[str, int]:
    """The host and port a request for `url` first connects to: its proxy's when one is configured."""
    parts = urllib.parse.urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        proxied = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        return proxied.hostname or "", proxied.port or 80
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def network_problem(url: str, timeout: float = NETWORK_CHECK_SECONDS) -> str | None:
    """None when `url`'s host (or proxy) resolves and accepts a connection within `timeout` seconds, else why not.

    The name lookup runs in a daemon thread because getaddrinfo takes no timeout; the answer is remembered for
    30 s, so a registry listing checks once, not once per row.
    """
    host, port = _endpoint(url)
    now = time.monotonic()
    memo = _network_memo.get((host, port))
    if memo is not None and now - memo[0] < _NETWORK_MEMO_SECONDS:
        return memo[1]
    answer: dict = {}

    def resolve() -> None:
        try:
            answer["addresses"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as err:
            answer["error"] = err

    started = time.monotonic()
    resolver = threading.Thread(target=resolve, name="tlbench-dns", daemon=True)
    resolver.start()
    resolver.join(timeout)
    problem: str | None = None
    if resolver.is_alive():
        problem = f"looking up {host} took more than {timeout:.0f} s"
    elif "error" in answer:
        err = answer["error"]
        problem = f"cannot look up {host}: {getattr(err, 'strerror', None) or err}"
    else:
        problem = f"cannot connect to {host}:{port}"
        for family, kind, proto, _, address in answer["addresses"]:  # IPv6 may fail where IPv4 works
            try:
                with socket.socket(family, kind, proto) as sock:
                    sock.settimeout(max(0.5, timeout - (time.monotonic() - started)))
                    sock.connect(address)
                problem = None
                break
            except OSError as err:
                problem = f"cannot connect to {host}:{port}: {getattr(err, 'strerror', None) or err}"
    _network_memo[(host, port)] = (now, problem)
    return problem


def human_bytes(n: float | None) -> str:
    """1234567 -> '1.2 MB' (decimal units, like the download sizes sites publish)."""
    if n is None:
        return "? bytes"
    for unit in ("bytes", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover - loop always returns


def sha256_file(path: str | os.PathLike, limit: int | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:limit] if limit else h.hexdigest()


def md5_file(path: str | os.PathLike) -> str:
    # usedforsecurity=False, as torchvision's calculate_md5: md5 is a checksum here, so FIPS systems allow it
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_file(path: str | os.PathLike, *, size: int | None = None, md5: str | None = None,
                sha256: str | None = None) -> str | None:
    """None when `path` matches every given expectation, else what is wrong (size first: it is free)."""
    path = Path(path)
    if not path.is_file():
        return f"{path} is missing"
    have = path.stat().st_size
    if size is not None and have != size:
        return f"size {have:,} bytes, expected {size:,}"
    if md5:
        digest = md5_file(path)
        if digest != md5.lower():
            return f"md5 {digest}, expected {md5}"
    if sha256:
        digest = sha256_file(path)
        if not digest.startswith(sha256.lower()):
            return f"sha256 {digest[:len(sha256)]}…, expected {sha256}…"
    return None


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    size: int | None = None,
    ctx: JobContext | None = None,
    phase: str = "download",
    timeout: float = 30.0,
) -> Path:
    """Fetch `url` to `dest` via `dest.part`, resuming a partial file; verify `size`, `md5` and `sha256`
    (full or a prefix) before the file takes its final name."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:  # not a prefix of the file we want: start over
        part.unlink()
        have = 0
    if size is None or have < size:
        if offline():
            raise DownloadFailed(f"network access is disabled (TLBENCH_OFFLINE is set); cannot fetch {url}")
        problem = network_problem(url)
        if problem:
            raise DownloadFailed(f"no network: {problem}; cannot fetch {url}")
        _transfer(url, part, have, size, ctx, phase, timeout)
    problem = verify_file(part, size=size, md5=md5, sha256=sha256)
    if problem:
        part.unlink(missing_ok=True)  # our own partial file, never user data
        raise DownloadFailed(f"{url}: the downloaded file failed verification ({problem}); it was removed, "
                             "run again to download it afresh")
    os.replace(part, dest)
    return dest


def _transfer(url: str, part: Path, have: int, size: int | None, ctx: JobContext | None, phase: str,
              timeout: float) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "tlbench"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - http(s) URLs from our registry
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # the part file already holds everything
            return
        raise DownloadFailed(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DownloadFailed(f"{url}: {reason}") from None
    with response:
        if have and response.status != 206:  # the server ignored Range: start over
            have = 0
        total = response.length
        total = (total + have) if total is not None else size
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
        except (OSError, urllib.error.URLError, http.client.HTTPException) as err:
            # http.client raises IncompleteRead (not an OSError) when the server closes early
            raise DownloadFailed(f"{url}: transfer interrupted after {done:,} bytes ({type(err).__name__}: "
                                 f"{err}); run again to resume") from None
        if total is not None and done < total:
            raise DownloadFailed(f"{url}: transfer ended early ({done:,} of {total:,} bytes); run again to resume")
        if ctx is not None:
            rate = (done - have) / max(time.monotonic() - start, 1e-6)
            ctx.progress(ProgressAdvanced(phase, done, total, "bytes", rate), force=True)
