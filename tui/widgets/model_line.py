"""The model the Attack and Dream screens work on, in one line: the chosen run's (its name and classes), or with
no run the raw backbone's ImageNet head. A widget with its job: `load()` reads the model on a worker ("model-info";
no torch for a run), and Loaded tells the screen its classes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual import work
from textual.message import Message

from engine.core.events import JobFinished
from engine.core.runs import read_config_json
from tui.base_app import workbench_of
from tui.engine_calls import imagenet_classes
from tui.jobs import RunningJob, finished_value, run_engine_job, value_job
from tui.messages import JobEvent
from tui.widgets.fitline import FitLine, Part

JOB = "model-info"
DEFAULT_BACKBONE = "efficientnet_lite0"  # with no backbone chosen: the one that ships its weights


@dataclass(frozen=True)
class ModelInfo:
    name: str  # "run <run folder>", or "<backbone> ImageNet head"
    classes: list[str]
    backbone: str
    run_dir: str | None  # None: the backbone's own head
    note: str = ""  # why it is not a run's


def load_model_info(run_dir: Path | None, backbone: str) -> ModelInfo:
    """The chosen run's name and classes, or the raw backbone's 1,000 ImageNet classes."""
    if run_dir is not None:
        config = read_config_json(run_dir)
        return ModelInfo(f"run {run_dir.name}", list(config.get("classes", [])), config.get("backbone", backbone),
                         str(run_dir))
    return ModelInfo(f"{backbone} ImageNet head", imagenet_classes(), backbone, None, "no run chosen: 7 Runs, u")


class ModelLine(FitLine):
    """"Model: <run> · 37 classes" once loaded; posts Loaded."""

    class Loaded(Message):
        def __init__(self, model: ModelInfo) -> None:
            super().__init__()
            self.model = model

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("Model: -", id=id)

    def load(self, run_dir: Path | None, backbone: str) -> None:
        self.update("Model: loading …")
        self.run_load(workbench_of(self).begin_job(JOB), run_dir, backbone)

    @work(thread=True, exclusive=True, group=JOB, exit_on_error=False)
    def run_load(self, job: RunningJob, run_dir: Path | None, backbone: str) -> None:
        run_engine_job(self, job, value_job(lambda ctx: load_model_info(run_dir, backbone)), workbench_of(self).jobs)

    def on_job_model_info_finished(self, message: JobEvent[JobFinished]) -> None:
        model = finished_value(message.event, ModelInfo)
        if model is None:
            return
        note = f" ({model.note})" if model.note else ""
        # the run's name gives way from its middle: its date and its mode are at its ends
        self.set_parts("Model: ", Part(model.name, shrink=True, least=16, tail=0.6),
                       f" · {len(model.classes)} classes", Part(note, optional=True))
        self.post_message(self.Loaded(model))
