"""`report_job(run_dirs, out, ctx)`: read the runs, build every section, render the Jinja2 templates into one
HTML file (written atomically) and say where it went, with the `scp` line that fetches it from this machine.

The templates ship as package data (engine/report/templates). Autoescaping is on for every template, always:
class names and file names come from the user's folders, and a class called `<script>` is text.
"""

from __future__ import annotations

import os
import shlex
import socket
import time
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined

from engine import __version__
from engine.core.errors import ConfigError
from engine.core.events import JobStarted, ProgressAdvanced
from engine.core.files import atomic_write_text
from engine.core.jobs import JobContext
from engine.core.outputs import timestamped
from engine.core.runs import safe_name
from engine.report import results, sections
from engine.report.compare import comparison
from engine.report.sections import Reproduce
from engine.report.sources import RunFiles, find_run, read_run

REPORT_NAME = "report.html"


def jinja_environment() -> Environment:
    # autoescape=True for every template whatever its name (select_autoescape would go by extension)
    return Environment(loader=PackageLoader("engine.report", "templates"), autoescape=True,
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def output_path(run_dirs: list[Path], out: str | os.PathLike | None) -> Path:
    """--out as given (a folder gets report.html inside); by default RUN/report.html for one run, and
    <runs folder>/<time>-compare-N-runs.html for several (no run owns a comparison)."""
    if out is None:
        if len(run_dirs) == 1:
            return run_dirs[0] / REPORT_NAME
        return timestamped(run_dirs[0].parent, f"compare-{len(run_dirs)}-runs", suffix=".html")
    path = Path(out).expanduser()
    if path.is_dir():
        return path / REPORT_NAME
    if path.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"--out {out}: give a file name ending in .html (or an existing folder), e.g. "
                          f"--out {path.with_suffix('.html')}")
    if not path.parent.is_dir():
        raise ConfigError(f"--out {out}: the folder {path.parent} does not exist. Create it first, or pass a file "
                          "in an existing folder.")
    return path


def scp_line(path: Path) -> str:
    """The command that copies the report from this machine to the reader's current folder."""
    return f"scp {socket.gethostname()}:{shlex.quote(str(path.resolve()))} ."


def run_context(files: RunFiles, anchor: str, reproduce: Reproduce | None, gradcam: bool,
                ctx: JobContext) -> dict:
    """Every section of one run, as the template reads it."""
    losses, losses_note = results.top_losses(files, gradcam, ctx.check)
    return {
        "name": files.name, "anchor": anchor, "run_dir": str(files.run_dir), "notes": files.notes,
        "overview": sections.overview(files), "recipe": sections.recipe(files, reproduce),
        "dataset": sections.dataset(files), "environment": sections.environment(files),
        "curves": results.curves(files), "confusion": results.confusion(files),
        "per_class": results.per_class(files), "most_confused": results.most_confused(files),
        "top_losses": losses, "top_losses_note": losses_note, "robustness": results.robustness(files),
        "attacks": results.attacks(files), "dreams": results.dreams(files), "audit": results.audit(files),
        "has_report": files.report is not None,
    }


def report_job(run_dirs: list[str | os.PathLike], out: str | os.PathLike | None, ctx: JobContext,
               reproduce: Reproduce | None = None, gradcam: bool = True) -> dict:
    """Write the report of one run, or the comparison of several followed by each run's sections.

    `reproduce(config) -> str` builds the `tlbench train …` command of a run (engine.cli.reproduce: it needs
    TrainConfig, a layer this one may not import); without it the recipe section has no command."""
    if not run_dirs:
        raise ConfigError("No run given: pass one or more run folders, e.g. tlbench report runs/<run>.")
    dirs = list(dict.fromkeys(find_run(d).resolve() for d in run_dirs))
    path = output_path(dirs, out)
    ctx.emit(JobStarted("report", f"report of {len(dirs)} run(s)", str(dirs[0]) if len(dirs) == 1 else None))
    runs, contexts = [], []
    for i, d in enumerate(dirs):
        ctx.check()
        files = read_run(d)
        anchor = f"run-{i + 1}-{safe_name(d.name)}"
        ctx.log(f"{d.name}: {len(files.metrics)} epoch(s), "
                + ("report.json" if files.report else "no report.json (tlbench eval adds one)")
                + (f", Grad-CAM of {len((files.report or {}).get('top_losses') or [])} top losses on the CPU"
                   if gradcam and files.report else ""))
        runs.append(files)
        contexts.append(run_context(files, anchor, reproduce, gradcam, ctx))
        ctx.progress(ProgressAdvanced("report", i + 1, len(dirs), "runs"), force=True)
    page = {
        "title": runs[0].name if len(runs) == 1 else f"{len(runs)} runs compared",
        "runs": contexts, "compare": comparison(runs, [c["anchor"] for c in contexts]) if len(runs) > 1 else None,
        "made": time.strftime("%Y-%m-%d %H:%M:%S %z"), "host": socket.gethostname(), "version": __version__,
    }
    html = jinja_environment().get_template("report.html").render(page=page)
    atomic_write_text(path, html)
    size = path.stat().st_size
    ctx.log(f"wrote {path} ({size / 1e6:.2f} MB)")
    return {"path": str(path.resolve()), "bytes": size, "runs": [str(d) for d in dirs], "scp": scp_line(path)}
