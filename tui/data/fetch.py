"""Fetching a dataset from the Data screen (f): what `tlbench fetch` does, from a key. A widget with its job and
nothing to show of its own: it asks for a dataset's name, downloads it (the "fetch" job) and says how it goes in
messages for the screen's summary; Fetched names the folder to open."""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.message import Message
from textual.widget import Widget

from engine.core.events import JobFailed, JobFinished, ProgressAdvanced
from engine.core.paths import data_dir
from engine.fetch.sources import DATASETS, fetch_dataset
from tui.base_app import workbench_of
from tui.data.open_dataset import AskScreen
from tui.jobs import RunningJob, run_engine_job
from tui.messages import JobEvent
from tui.state import display_path

JOB = "fetch"


class DatasetFetch(Widget):
    """`ask()` starts it; posts Progressed (the summary line while it runs), Ended (why it stopped) and Fetched."""

    DEFAULT_CSS = "DatasetFetch { display: none; }"

    class Progressed(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class Ended(Message):
        """Stopped or failed: the line says which, and what happens next time."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class Fetched(Message):
        def __init__(self, path: Path) -> None:
            super().__init__()
            self.path = path

    def ask(self) -> None:
        """Ask for a dataset name (each with its title), then fetch it."""
        names = list(DATASETS)
        described = "; ".join(f"{n}: {src.title}" for n, src in DATASETS.items())

        def chosen(name: str | None) -> None:
            if name:
                self.post_message(self.Progressed(f"Fetching {name} …"))
                app = workbench_of(self)
                app.set_job_status(JOB, "fetch starting")
                self.run_fetch(app.begin_job(JOB), name)

        self.app.push_screen(AskScreen("Fetch a dataset into " + display_path(data_dir()), described, "", names),
                             chosen)

    @work(thread=True, exclusive=True, group=JOB, exit_on_error=False)
    def run_fetch(self, job: RunningJob, name: str) -> None:
        def fetch(ctx):
            result = fetch_dataset(name, data_dir(), ctx=ctx)
            return {"fetched": str(result["path"]), "command": result.get("command", "")}

        run_engine_job(self, job, fetch, workbench_of(self).jobs)

    def on_job_fetch_progress_advanced(self, message: JobEvent[ProgressAdvanced]) -> None:
        event = message.event
        if event.total:
            rate = f" · {event.rate / 1e6:.1f} MB/s" if event.rate and event.unit == "bytes" else ""
            self.post_message(self.Progressed(
                f"Fetching  … {event.phase} {event.done:.0f}/{event.total:.0f} {event.unit}{rate}"))
            workbench_of(self).set_job_status(JOB, f"fetch {100 * event.done / event.total:.0f}%")

    def on_job_fetch_finished(self, message: JobEvent[JobFinished]) -> None:
        event = message.event
        workbench_of(self).set_job_status(JOB, "")
        if event.reason == "stopped":
            self.post_message(self.Ended("Fetching stopped (a partial download is resumed next time)."))
        elif event.result.get("fetched"):
            self.notify(f"Fetched into {display_path(event.result['fetched'])}", title="Dataset ready")
            self.post_message(self.Fetched(Path(event.result["fetched"])))

    def on_job_fetch_failed(self, message: JobEvent[JobFailed]) -> None:
        workbench_of(self).set_job_status(JOB, "")
        self.post_message(self.Ended(f"✗ Fetching failed: {message.event.title.lower()} (the error says why)."))
