"""What the Attack and Dream screens share: the model they work on, its classes, and turning ImageRendered
events into pictures.

A screen supplies its form (`read_params`), its job (`job_for`) and its event handling (`model_job_event`).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from textual import work
from textual.app import ComposeResult
from textual.widgets import Static

from engine.core.events import Event, ImageRendered, JobFinished
from engine.core.jobs import JobFn
from tui.data.thumbnails import MemoryImage
from tui.jobs import RunningJob, run_engine_job
from tui.screen import WorkbenchScreen
from tui.train.curves import CurvePlot
from tui.widgets.fitline import FitLine, Part
from tui.widgets.inputs import ChoiceSuggester, TextField


def rendered_image(event: ImageRendered) -> MemoryImage | str | None:
    """The picture an ImageRendered event carries: raw HxWx3 bytes, or a file path."""
    if event.pixels and event.width and event.height:
        return MemoryImage(Image.frombytes("RGB", (event.width, event.height), event.pixels),
                           f"{event.kind} {event.step}")
    return event.path


def load_model_info(run_dir: Path | None, backbone: str) -> dict:
    """The job: the chosen run's name and classes, or the raw backbone's 1,000 ImageNet classes."""
    if run_dir is not None:
        from engine.core.runs import read_config_json

        config = read_config_json(run_dir)
        return {"model": f"run {run_dir.name}", "classes": list(config.get("classes", [])),
                "backbone": config.get("backbone", backbone), "run_dir": str(run_dir)}
    from engine.models.registry import imagenet_classes

    return {"model": f"{backbone} ImageNet head", "note": "no run chosen: 7 Runs, u", "classes": imagenet_classes(),
            "backbone": backbone, "run_dir": None}


class ModelJobScreen(WorkbenchScreen):
    """A screen that runs a job against a model: Attack and Dream."""

    JOB = ""  # "attack" / "dream": the job's name, its tab-bar status and the prefix of #JOB-plot, #JOB-status
    CLASS_FIELD = ""  # the text field whose suggestions are the model's classes

    def __init__(self) -> None:
        super().__init__()
        self.model: dict | None = None
        self.job: RunningJob | None = None

    @property
    def running(self) -> bool:
        return self.job is not None and not self.job.done.is_set()

    def state_changed(self) -> None:
        backbone = self.workbench.config.get("backbone") or "efficientnet_lite0"
        self.query_one("#model-line", FitLine).update("Model: loading …")
        self.run_model_info(self.start_job("model-info"), self.workbench.run_dir, backbone)

    @work(thread=True, exclusive=True, group="model-info", exit_on_error=False)
    def run_model_info(self, job: RunningJob, run_dir: Path | None, backbone: str) -> None:
        run_engine_job(self, job, lambda ctx: {"model_info": load_model_info(run_dir, backbone)}, self.tlbench.jobs)

    def job_event(self, job: str, event: Event) -> None:
        if job == "model-info":
            if isinstance(event, JobFinished) and "model_info" in event.result:
                self.model = event.result["model_info"]
                note = f" ({self.model['note']})" if self.model.get("note") else ""
                # the run's name gives way from its middle: its date and its mode are at its ends
                self.query_one("#model-line", FitLine).set_parts(
                    "Model: ", Part(self.model["model"], shrink=True, least=16, tail=0.6),
                    f" · {len(self.model['classes'])} classes", Part(note, optional=True))
                self.model_loaded()
            return
        self.model_job_event(job, event)

    def compose_header(self) -> ComposeResult:
        yield FitLine("Model: -", id="model-line")

    def model_loaded(self) -> None:
        """The model's classes are known: they become the class search's suggestions."""
        classes = self.model["classes"] if self.model else []
        self.query_one(self.CLASS_FIELD, TextField).suggester = ChoiceSuggester(classes)

    def model_job_event(self, job: str, event: Event) -> None:
        """Events of the attack or dream job."""

    def read_params(self):
        """The form as a request for job_for(), or None after telling the user what is wrong."""
        raise NotImplementedError

    def job_for(self, request) -> JobFn:
        raise NotImplementedError

    def starting_text(self, request) -> str:
        return "Starting (loading the model) …"

    def prepare(self, request) -> None:
        """A new job starts: reset what the screen shows of the last one (before its history is cleared)."""

    def action_start(self) -> None:
        if not self.check_startable():
            return
        request = self.read_params()
        if request is None:
            return
        self.prepare(request)
        self.query_one(f"#{self.JOB}-plot", CurvePlot).set_history([])
        self.query_one(f"#{self.JOB}-status", Static).update(self.starting_text(request))
        self.tlbench.set_job_status(self.JOB, self.JOB)
        self.job = self.start_job(self.JOB)
        self.run_model_job(self.job, self.job_for(request))

    @work(thread=True, exclusive=True, group="model-job", exit_on_error=False)
    def run_model_job(self, job: RunningJob, fn: JobFn) -> None:
        run_engine_job(self, job, fn, self.tlbench.jobs)

    def check_startable(self) -> bool:
        if self.running:
            self.notify("A job is running: s stops it.", severity="warning")
            return False
        if self.model is None:
            self.notify("The model is still loading.", severity="warning")
            return False
        return True

    def action_stop(self) -> None:
        if not self.running:
            self.notify("Nothing is running.", severity="warning")
            return
        self.job.control.stop()
