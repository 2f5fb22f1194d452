"""The Model screen's leaderboard (C): which backbone fits this dataset, at what speed.

A dialog asks for the candidates (prefilled with the backbones whose weights are here: shipped or cached) and
the folds; the leaderboard then runs engine.features.compare as a job and fills its table row by row as each
candidate is scored (a CandidateScored event each), best first. Enter on a row picks that backbone in the
Model screen's form; `r` times every backbone again (the features stay cached); escape closes (and stops a
comparison still running). Each speed says when it was timed ("timed": today, 3 d, busy: on a loaded machine,
old: before timings recorded their date); the job runs un-niced, as `tlbench compare` does (issue 24 item 4).
"""

from __future__ import annotations

import re
import threading
import time
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Static

from engine.core.events import CandidateScored, JobFailed, JobFinished, LogLine, ProgressAdvanced
from tui.base_app import workbench_of
from tui.engine_calls import compare
from tui.jobs import RUNNING, RunningJob, run_engine_job
from tui.messages import JobEvent
from tui.widgets.inputs import TextField
from tui.widgets.text import middle_truncate

if TYPE_CHECKING:
    from tui.model.screen import ModelScreen

JOB = "compare"
STARTED = re.compile(r"^\[\d+/\d+\] (\S+)$")  # the job's log line as it starts a candidate
OFFLINE = ("shipped", "cached")  # weights a comparison can use with no download
WEIGHTS_STYLE = {"shipped": "green", "cached": "green", "download": "yellow", "missing": "red"}
COLUMNS = ("backbone", "accuracy", "top-5", "img/s", "latency", "timed", "params", "weights")
NARROW = 100  # terminal columns below which the params column is left out


def offline_backbones(rows: list[dict] | None) -> list[str]:
    """The registry's backbones whose weights are here (the dialog's first suggestion)."""
    return [r["name"] for r in rows or [] if r.get("weights") in OFFLINE]


def speed_text(value: float) -> str:
    """A speed in at most 5 cells, never cut: 0.43, 6.8, 151, 1514."""
    return f"{value:.2f}" if value < 1 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def timed_label(row: dict, now: float | None = None) -> str:
    """When a row's speed was timed: "today", "3 d", or the engine's note ("busy", "40 d old", "old")."""
    if row.get("speed_note"):
        return str(row["speed_note"])
    try:
        measured = time.mktime(time.strptime(str(row["speed_measured"])[:19], "%Y-%m-%dT%H:%M:%S"))
    except (KeyError, ValueError):
        return "old"
    days = int(((now if now is not None else time.time()) - measured) // 86400)
    return "today" if days < 1 else f"{days} d"


class CompareDialog(ModalScreen[dict | None]):
    """The candidates (comma-separated; a+b concatenates) and the folds. Enter starts, escape cancels."""

    DEFAULT_CSS = """
    CompareDialog { align: center middle; }
    #compare-box { width: 90; max-width: 96%; height: auto; border: round $accent; background: $surface;
                   padding: 0 1; }
    #compare-box .dialog-title { text-style: bold; }
    #compare-box .dialog-hint { color: $text-muted; }
    #compare-folds { width: 12; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="compare.cancel")]
    AUTO_FOCUS = "#compare-backbones"

    def __init__(self, dataset: str, backbones: list[str], folds: int = 5) -> None:
        super().__init__()
        self.dataset, self.backbones, self.folds = dataset, backbones, folds

    def compose(self) -> ComposeResult:
        with Vertical(id="compare-box"):
            yield Static(f"Compare backbones on {self.dataset}", classes="dialog-title", markup=False)
            yield Static("backbones (comma-separated; a+b concatenates their features)", markup=False)
            yield TextField(",".join(self.backbones), id="compare-backbones")
            yield Static("folds of the cross-validation", markup=False)
            yield TextField(str(self.folds), id="compare-folds")
            yield Static("enter starts · escape cancels · the weights must be here (shipped or cached)",
                         classes="dialog-hint", markup=False)

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        event.stop()
        names = [n.strip() for n in self.query_one("#compare-backbones", Input).value.split(",") if n.strip()]
        folds_text = self.query_one("#compare-folds", Input).value.strip()
        if not names:
            self.notify("Name at least one backbone, e.g. efficientnet_lite0,efficientnet_lite1.", severity="error")
            return
        if not folds_text.isdigit() or int(folds_text) < 2:
            self.notify(f"folds {folds_text!r}: a whole number, 2 or more (5 is usual).", severity="error")
            return
        self.dismiss({"backbones": names, "folds": int(folds_text)})

    def action_cancel(self) -> None:
        self.dismiss(None)


class Leaderboard(ModalScreen[str | None]):
    """The comparison's rows, live; enter picks the highlighted backbone, escape closes."""

    DEFAULT_CSS = """
    Leaderboard { align: center middle; }
    #leaderboard-box { width: 100%; height: 100%; border: round $accent; background: $surface; padding: 0 1; }
    #leaderboard-box .dialog-title { text-style: bold; }
    #leaderboard-status { height: auto; max-height: 2; }
    #leaderboard { height: 1fr; }
    #leaderboard-box .dialog-hint { color: $text-muted; }
    """
    BINDINGS = [Binding("escape,q", "close", "Close", id="leaderboard.close"),
                Binding("s", "stop", "Stop", id="leaderboard.stop"),
                Binding("r", "remeasure", "Re-time", id="leaderboard.remeasure")]
    AUTO_FOCUS = "#leaderboard"

    def __init__(self, settings: dict) -> None:
        super().__init__()
        self.settings = settings  # dataset, backbones, folds, img_size, weights, seed, device, batch_size, workers
        known = settings.get("registry_weights") or {}  # the registry's status, until the row is scored
        self.rows: dict[str, dict] = {name: {"backbone": name, "weights": known.get(name)}
                                      for name in settings["backbones"]}
        self.current = ""
        self.job: RunningJob | None = None
        self.result: dict = {}
        self.columns: list[str] = list(COLUMNS)

    def compose(self) -> ComposeResult:
        with Vertical(id="leaderboard-box"):
            yield Static(f"Leaderboard · {self.settings['folds']}-fold cross-validated probe accuracy and speed",
                         classes="dialog-title", markup=False)
            yield Static("starting …", id="leaderboard-status", markup=False)
            yield DataTable(id="leaderboard", cursor_type="row", zebra_stripes=True)
            yield Static("enter picks · r times again · s stops · escape closes · bold: Pareto front",
                         classes="dialog-hint", markup=False)

    def on_mount(self) -> None:
        table = self.query_one("#leaderboard", DataTable)
        # 80 columns: params (also on the Model screen's table) gives way, so weights is not cut off
        self.columns = [c for c in COLUMNS if c != "params" or self.app.size.width >= NARROW]
        table.add_columns(*self.columns)
        self.show_rows()
        # registered on the UI thread before the worker starts, so quitting can always stop it
        self.job = workbench_of(self).begin_job(JOB)
        self.run_compare(self.job)

    def run_compare(self, job: RunningJob) -> None:
        """The comparison on a thread of its own, started here on the UI thread so that it has the UI's
        priority: a Textual thread worker comes from a pool whose threads keep the nice +10 of earlier jobs
        (tui.jobs.yield_cpu_to_the_ui), and a niced thread times the machine's load, not the backbone (the
        1,514 ms of issue 24). Quitting still stops and joins it (the registry waits on the job, not on a
        worker)."""
        s = dict(self.settings)
        remeasure = bool(s.get("remeasure"))

        def compare_job(ctx):
            return compare(s["dataset"], s["backbones"], ctx, folds=s["folds"], img_size=s.get("img_size"),
                           weights=s.get("weights"), seed=s.get("seed") or 0, device=s.get("device") or "auto",
                           batch_size=s.get("batch_size") or 64, workers=s.get("workers"),
                           runs_dir=s.get("runs_dir"), remeasure=remeasure)

        jobs = workbench_of(self).jobs
        threading.Thread(target=run_engine_job, args=(self, job, compare_job, jobs), kwargs={"nice": False},
                         name="tlbench-compare", daemon=True).start()

    # ------------------------------------------------------------------------------------ showing

    def ordered(self) -> list[dict]:
        """Scored rows best first (accuracy, then speed), failed ones after them, waiting ones last."""
        def key(r: dict) -> tuple:
            state = 0 if r.get("accuracy") is not None else (1 if r.get("error") else 2)
            return state, -(r.get("accuracy") or 0.0), -(r.get("images_per_s") or 0.0)
        return sorted(self.rows.values(), key=key)

    def show_rows(self) -> None:
        table = self.query_one("#leaderboard", DataTable)
        chosen = self.highlighted()
        table.clear()
        for r in self.ordered():
            cells: dict[str, object] = dict(zip(COLUMNS, self.cells(r)))
            table.add_row(*(cells[c] for c in self.columns), key=r["backbone"])
        keys = [r["backbone"] for r in self.ordered()]
        if chosen in keys:
            table.move_cursor(row=keys.index(chosen))

    def cells(self, r: dict) -> list:
        name = Text(r["backbone"], "bold" if r.get("pareto") else "")
        weights = Text(r.get("weights") or "", WEIGHTS_STYLE.get(r.get("weights") or "", ""))
        if r.get("error"):
            return [name, Text(r["error"][:60], "red"), "", "", "", "", "", weights]
        if r.get("accuracy") is None:
            waiting = "running …" if r["backbone"] == self.current else "waiting"
            return [name, Text(waiting, "dim"), "", "", "", "", "", weights]
        when = timed_label(r)
        info = workbench_of(self).state.info
        # top-5 of 5 classes or fewer is 1.000 by construction
        top5 = f"{r['top5']:.3f}" if info is None or len(info.classes) > 5 else "-"
        return [name, Text(f"{r['accuracy']:.3f} ± {r['accuracy_std']:.3f}", justify="right"),
                Text(top5, justify="right"), Text(speed_text(r['images_per_s']), justify="right"),
                Text(f"{speed_text(r['latency_ms'])} ms", justify="right"),
                Text(when, "yellow" if when in ("busy", "old") or when.endswith("old") else "dim"),
                Text(f"{(r.get('params') or 0) / 1e6:.1f}M", justify="right"), weights]

    def highlighted(self) -> str | None:
        table = self.query_one("#leaderboard", DataTable)
        if not table.row_count:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def status(self, text: str) -> None:
        self.query_one("#leaderboard-status", Static).update(text)

    # ------------------------------------------------------------------------------------ events

    def on_job_compare_candidate_scored(self, message: JobEvent[CandidateScored]) -> None:
        event = message.event
        self.rows[event.row["backbone"]] = dict(event.row)
        self.show_rows()
        self.status(f"{event.index}/{event.total} scored")
        workbench_of(self).set_job_status(JOB, f"compare {event.index}/{event.total}")

    def on_job_compare_log_line(self, message: JobEvent[LogLine]) -> None:
        text = message.event.text
        started = STARTED.match(text)
        if started:  # "[2/3] name": the job moved on to the next candidate
            self.current = started.group(1)
            self.show_rows()
        elif text.startswith(("timing ", "extracting features", "feature cache hit")):
            self.status(text)

    def on_job_compare_progress_advanced(self, message: JobEvent[ProgressAdvanced]) -> None:
        event = message.event
        if event.phase == "extract" and event.total:
            self.status(f"{self.current or 'features'}: extracting {event.done:.0f}/{event.total:.0f} images")

    def on_job_compare_finished(self, message: JobEvent[JobFinished]) -> None:
        event = message.event
        workbench_of(self).set_job_status(JOB, "")
        self.result = dict(event.result)
        best = self.result.get("best")
        where = self.result.get("run_dir", "")
        head = "stopped" if event.reason == "stopped" else f"done · best {best or 'none'}"
        rows = self.result.get("results") or []
        device = next((r["speed_device"] for r in rows if r.get("speed_device")), "")
        width = max(20, self.query_one("#leaderboard-status", Static).size.width or 76)
        first = f"{head} · speeds timed on {device}" if device else head
        self.status(f"{first}\nsaved in {middle_truncate(str(where), width - len('saved in '))}")

    def on_job_compare_failed(self, message: JobEvent[JobFailed]) -> None:
        event = message.event
        workbench_of(self).set_job_status(JOB, "")
        self.status(f"{event.title}: {event.error}")
        workbench_of(self).show_error(event.error, event.title)

    @on(JobEvent)
    def _job_event_handled(self, message: JobEvent) -> None:
        message.stop()  # a comparison's events end here, as a screen's do

    @on(DataTable.RowSelected, "#leaderboard")
    def picked(self, event: DataTable.RowSelected) -> None:
        name = str(event.row_key.value)
        if "+" in name:
            self.notify(f"{name} is a concatenation of features: train one of its backbones, or compare them "
                        "alone.", severity="warning")
            return
        self.stop_job()
        self.dismiss(name)

    def stop_job(self) -> None:
        """On leaving: a comparison still running stops at its next step; its last events go nowhere, so the
        tab bar's status is cleared here."""
        if self.job is not None and self.job.state == RUNNING:
            self.job.control.stop()
        workbench_of(self).set_job_status(JOB, "")

    def action_stop(self) -> None:
        if self.job is not None and self.job.state == RUNNING:
            self.job.control.stop()
            self.status("stopping after the current step …")

    def action_remeasure(self) -> None:
        """r: the same comparison again, timing every backbone anew (its features come from the cache)."""
        if self.job is not None and self.job.state == RUNNING:
            self.notify("The comparison is still running: s stops it, then r times again.", severity="warning")
            return
        self.settings = {**self.settings, "remeasure": True}
        self.result = {}
        for name in self.rows:
            self.rows[name] = {"backbone": name, "weights": self.rows[name].get("weights")}
        self.current = ""
        self.show_rows()
        self.status("timing again …")
        self.job = workbench_of(self).begin_job(JOB)
        self.run_compare(self.job)

    def action_close(self) -> None:
        self.stop_job()
        self.dismiss(None)


def open_leaderboard(screen: ModelScreen) -> None:
    """C on the Model screen: the dialog, then the leaderboard; a picked backbone goes into the form."""
    workbench = screen.workbench
    if workbench.dataset is None:
        screen.notify("Open a dataset on the Data screen (1) first.", severity="error")
        return
    running = screen.tlbench.jobs.running(JOB)
    if running:
        screen.notify("A comparison is already running.", severity="warning")
        return
    config = workbench.config
    suggested = offline_backbones(screen.rows) or ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]

    def start(choice: dict | None) -> None:
        if choice is None:
            return
        settings = {"dataset": str(workbench.dataset), "runs_dir": workbench.runs_dir, **choice,
                    "registry_weights": {r["name"]: r["weights"] for r in screen.rows or []},
                    **{k: config.get(k) for k in ("img_size", "weights", "seed", "device", "batch_size", "workers")}}
        screen.app.push_screen(Leaderboard(settings), lambda name: screen.pick_backbone(name) if name else None)

    screen.app.push_screen(CompareDialog(workbench.info.name if workbench.info else str(workbench.dataset),
                                         suggested), start)
