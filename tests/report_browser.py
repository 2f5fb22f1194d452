"""A real browser and a 37-class run for the report: headless Chromium (Debian's `chromium`) with the network
cut off, and the Oxford-sized run whose report it renders. Used by tests/engine/report/test_report_browser.py
and bench/report_screenshot.py (which keeps the screenshot in bench/results/)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlparse

from helpers.data import make_pets_like

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Chromium's own service calls (updates, clock, accounts), which it makes whatever page it shows; the dead
# proxy refuses them like everything else. Anything else in the network log was asked for by the page.
BROWSER_SERVICES = ("google.com", "googleapis.com", "gvt1.com", "gstatic.com")


def _offline_chromium(profile: Path) -> list[str]:
    assert CHROMIUM is not None
    return [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
            f"--user-data-dir={profile / 'profile'}", "--proxy-server=127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND"]


def chromium_screenshot(page: Path, png: Path, profile: Path, size: tuple[int, int] = (1280, 2400)) -> list[str]:
    """Render `page` to `png` with no network (every host unresolvable, every connection to a dead proxy);
    returns the URLs the page itself tried to load (from Chromium's network log)."""
    net = profile / "netlog.json"
    cmd = [*_offline_chromium(profile), f"--log-net-log={net}", f"--screenshot={png}",
           f"--window-size={size[0]},{size[1]}", page.resolve().as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert png.exists(), f"chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    urls = re.findall(r'"url":"([^"]*)"', net.read_text(errors="replace")) if net.exists() else []
    return sorted({u for u in urls if not u.startswith(("file:", "data:", "chrome:", "about:"))
                   and not (urlparse(u).hostname or "").endswith(BROWSER_SERVICES)})


def chromium_dom(page: Path, profile: Path) -> str:
    """The page's DOM after its scripts ran (what a test script added to it records what it saw)."""
    done = subprocess.run([*_offline_chromium(profile), "--dump-dom", page.resolve().as_uri()],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0 and "</html>" in done.stdout, done.stderr[-2000:]
    return done.stdout


def make_37_class_run(base: Path) -> Path:
    """The 37 Oxford breeds as generated photos (256 px, noisy: JPEG's worst case, so the size is an upper
    bound), the dataset audited, a probe trained on it in fp32: every section but attacks and dreams."""
    from engine.core.events import JobFinished
    from engine.core.jobs import run_job
    from engine.features.audit_job import AuditParams, audit_job
    from engine.train.config import TrainConfig
    from engine.train.job import train

    data = make_pets_like(base / "oxford-pets", per_class=8, size=256)
    audit = run_job("audit", lambda ctx: audit_job(AuditParams(str(data), img_size=32, workers=0,
                                                               runs_dir=str(base / "runs")), ctx))
    assert isinstance(audit, JobFinished) and audit.reason == "completed", audit
    # one hue per class: the audit groups most of a class as near duplicates, and grouping them would leave
    # almost nothing to validate on; off, the report lists the groups that straddle the split instead
    cfg = TrainConfig(dataset=str(data), img_size=32, epochs=30, lr=3e-2, precision="fp32", workers=0,
                      group_duplicates="off", runs_dir=str(base / "runs"))
    final = run_job("train", lambda ctx: train(cfg, ctx))
    assert isinstance(final, JobFinished) and final.reason == "completed", final
    return Path(final.result["run_dir"])


def write_report(run_dir: Path) -> dict:
    from engine.cli.reproduce import train_command
    from engine.core.events import JobFinished
    from engine.core.jobs import run_job
    from engine.report.render import report_job

    final = run_job("report", lambda ctx: report_job([run_dir], None, ctx, train_command))
    assert isinstance(final, JobFinished) and final.reason == "completed", final
    return dict(final.result)
