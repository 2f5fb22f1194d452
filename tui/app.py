"""The tlbench workbench (Textual). Talks to the engine only through jobs and events."""

from __future__ import annotations

import argparse
from pathlib import Path

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Static
from textual.worker import Worker, WorkerState

from engine.datasets import DatasetInfo, scan_dataset
from engine.events import Event, JobFailed, JobFinished
from engine.jobs import JobContext, JobControl, run_job
from engine.paths import demo_dataset


class EngineEvent(Message):
    """An engine event crossing from a worker thread into the app (post_message is thread-safe)."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class TlbenchApp(App):
    TITLE = "tlbench"
    BINDINGS = [Binding("q", "quit", "Quit", id="quit")]

    def __init__(self, dataset: Path, runs_dir: str | None = None):
        super().__init__()
        self.dataset = dataset
        self.runs_dir = runs_dir
        self.info: DatasetInfo | None = None
        self.control = JobControl()

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"Scanning {self.dataset} …", id="summary")
        yield DataTable(id="classes", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = str(self.dataset)
        self.scan()

    @work(thread=True, exclusive=True, group="scan", exit_on_error=False)
    def scan(self) -> None:
        def job(ctx: JobContext):
            return {"info": scan_dataset(self.dataset, ctx=ctx)}

        run_job("scan", job, lambda e: self.post_message(EngineEvent(e)), self.control)

    @on(EngineEvent)
    def handle_event(self, message: EngineEvent) -> None:
        event = message.event
        if isinstance(event, JobFinished) and "info" in event.result:
            self.show_dataset(event.result["info"])
        elif isinstance(event, JobFailed):
            self.query_one("#summary", Static).update(f"[b red]{event.title}[/]\n{event.error}")
            self.notify(str(event.error), title=event.title, severity="error", timeout=10)

    def show_dataset(self, info: DatasetInfo) -> None:
        self.info = info
        self.query_one("#summary", Static).update(
            f"[b]{info.root.name}[/]  layout {info.layout} · {len(info.samples)} images · "
            f"{len(info.classes)} classes · {len(info.unreadable)} unusable"
        )
        table = self.query_one("#classes", DataTable)
        table.clear(columns=True)
        table.add_columns("class", "images")
        for name, count in zip(info.classes, info.counts()):
            table.add_row(name, str(count))

    @on(Worker.StateChanged)
    def worker_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.notify(str(event.worker.error), title="Unexpected error", severity="error")

    def on_unmount(self) -> None:
        self.control.stop()


def run_app(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tlbench", description="Open the workbench on a dataset "
                                     "(the bundled demo digits when none is given). Subcommands: tlbench --help.")
    parser.add_argument("dataset", nargs="?", default=None)
    parser.add_argument("--runs-dir", default=None)
    args = parser.parse_args(argv)
    dataset = Path(args.dataset).expanduser() if args.dataset else demo_dataset()
    TlbenchApp(dataset, args.runs_dir).run()
    return 0
