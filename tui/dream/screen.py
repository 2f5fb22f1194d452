"""6 Dream: render the image a class wants to see. Class (search), steps, TV weight, jitter, recipe; the
image updating live; save.

The job is engine.dreams' (built by `job_function` on the worker thread, since it imports torch).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, Select, Static

from engine.events import Event, ImageRendered, JobFailed, JobFinished, StepEnded
from engine.jobs import JobFn
from tui.attack.common import ModelJobScreen, rendered_image
from tui.data.thumbnails import MemoryImage
from tui.model.form import FieldSpec, parse_value
from tui.state import display_path
from tui.train.curves import CurvePlot
from tui.widgets.image_view import ImageView
from tui.widgets.inputs import TextField

RECIPES = [("robust", "robust"), ("lesson CE+TV", "lesson")]


@dataclass
class DreamRequest:
    """What the form asks for; job_function turns it into engine.dreams.DreamParams."""

    target: str
    steps: int
    tv_weight: float | None  # None: the recipe's default
    jitter: int
    recipe: str
    run_dir: str | None
    backbone: str


def job_function(request: DreamRequest) -> JobFn:
    """The engine call, made on the worker thread (engine.dreams imports torch). Its job emits
    StepEnded("dream", …, {"target_prob", "loss"}) every step, ImageRendered("dream-preview", pixels) every
    25 steps and ImageRendered("dream", pixels, path) at the end; the summary has "probability" and "path"."""
    from engine.dreams import DreamParams, dream_job

    params = DreamParams(target=request.target, run_dir=request.run_dir,
                         backbone=None if request.run_dir else request.backbone, recipe=request.recipe,
                         steps=request.steps, tv_weight=request.tv_weight, jitter=request.jitter)
    return lambda ctx: dream_job(params, ctx)


def dream_save_path(folder: Path, class_name: str) -> Path:
    """Where `w` saves a dream: inside `folder`, whatever the class name holds ("../x", "a/b")."""
    from engine.runs import safe_name

    return folder / f"{safe_name(class_name.replace(' ', '-')) or 'dream'}.png"


class DreamScreen(ModelJobScreen):
    TAB = "dream"
    TITLE = "Dream"
    HELP = "Optimise an image from noise until the model sees the class in it; watch it form; w saves it."
    JOB = "dream"
    CLASS_FIELD = "#dream-class"

    BINDINGS = [
        Binding("d", "start", "Dream", id="dream.start", tooltip="Start dreaming the chosen class"),
        Binding("s", "stop", "Stop", id="dream.stop", tooltip="Stop dreaming"),
        Binding("w", "save", "Save", id="dream.save", tooltip="Save the current image as PNG in the run"),
        Binding("c", "focus_class", "Class", id="dream.class", tooltip="Search the class to dream"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.frame: MemoryImage | None = None

    def compose_body(self) -> ComposeResult:
        yield from self.compose_header()
        with Horizontal(id="dream-form", classes="job-form"):
            with Vertical(classes="field wide"):
                yield Label("class")
                yield TextField(placeholder="type to search", id="dream-class", compact=True)
            with Vertical(classes="field narrow"):
                yield Label("steps")
                yield TextField("300", id="dream-steps", compact=True)
            with Vertical(classes="field narrow"):
                yield Label("TV weight")
                yield TextField(placeholder="recipe's", id="dream-tv", compact=True)
            with Vertical(classes="field narrow"):
                yield Label("jitter px")
                yield TextField("0", id="dream-jitter", compact=True)
            with Vertical(classes="field"):
                yield Label("recipe")
                yield Select(RECIPES, value="robust", allow_blank=False, id="dream-recipe", compact=True)
        with Horizontal(id="dream-body"):
            with Vertical(id="dream-image-box"):
                yield ImageView(self.tlbench.thumbnails, "the image appears here as it forms", id="dream-image")
                yield Static("", id="dream-caption", classes="caption", markup=False)
            yield CurvePlot("class probability", [("target_prob", "class")], ylim=(0.0, 1.0), xlabel="step",
                            id="dream-plot")
        yield Static("", id="dream-status", markup=False)

    def read_params(self) -> DreamRequest | None:
        target = self.query_one("#dream-class", TextField).value.strip()
        try:
            steps = parse_value(FieldSpec("steps", "int", False, None, "steps"), self.query_one("#dream-steps").value)
            tv = parse_value(FieldSpec("tv_weight", "float", True, None, "TV weight"), self.query_one("#dream-tv").value)
            jitter = parse_value(FieldSpec("jitter", "int", False, None, "jitter"), self.query_one("#dream-jitter").value)
        except ValueError as err:
            self.notify(str(err), title="Invalid setting", severity="error")
            return None
        problems = []
        if not target:  # a near name or an index is the engine's to resolve (it suggests close names)
            problems.append("no class: type one (c), the suggestions come from the model's classes")
        if steps <= 0:
            problems.append(f"steps {steps} must be 1 or more")
        if tv is not None and tv < 0:
            problems.append(f"TV weight {tv:g} must be 0 or more")
        if jitter < 0:
            problems.append(f"jitter {jitter} must be 0 or more")
        if problems:
            self.notify("; ".join(problems) + ".", title="Cannot dream yet", severity="error")
            return None
        recipe = str(self.query_one("#dream-recipe", Select).value)
        return DreamRequest(target, steps, tv, jitter, recipe, self.model.get("run_dir"), self.model.get("backbone", ""))

    def job_for(self, request: DreamRequest) -> JobFn:
        return lambda ctx: job_function(request)(ctx)  # job_function imports torch: on the worker thread

    def starting_text(self, request: DreamRequest) -> str:
        return f"Dreaming {request.target} (loading the model) …"

    def action_focus_class(self) -> None:
        self.query_one("#dream-class", TextField).focus()

    def action_save(self) -> None:
        if self.frame is None:
            self.notify("No image yet: d starts a dream.", severity="warning")
            return
        folder = (self.workbench.run_dir or Path.cwd()) / "dreams"
        path = dream_save_path(folder, self.frame.name)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".dream.", suffix=".png", dir=folder)
            with os.fdopen(fd, "wb") as f:
                self.frame.image.save(f, format="PNG")
            os.replace(tmp, path)  # atomic: a reader never sees half a PNG
        except OSError as err:
            self.tlbench.show_error(err, "Could not save the image")
            return
        self.notify(f"Saved {path}", title="Dream saved")

    def model_job_event(self, job: str, event: Event) -> None:
        if job != "dream":
            return
        status = self.query_one("#dream-status", Static)
        if isinstance(event, StepEnded):
            self.query_one("#dream-plot", CurvePlot).add({"epoch": event.step, **event.values})
            prob = event.values.get("target_prob")
            status.update(f"step {event.step}/{event.steps}" + (f" · probability {prob:.3f}" if prob is not None else ""))
            self.tlbench.set_job_status("dream", f"dream {event.step}/{event.steps}")
        elif isinstance(event, ImageRendered) and event.kind in ("dream", "dream-preview"):
            source = rendered_image(event)
            if isinstance(source, MemoryImage):
                self.frame = source
            self.query_one("#dream-image", ImageView).show(source)
            prob = event.values.get("target_prob")
            self.query_one("#dream-caption", Static).update(
                f"step {event.step}" + (f" · probability {prob:.3f}" if prob is not None else "")
                + (" · final" if event.kind == "dream" else ""))
        elif isinstance(event, JobFinished):
            self.tlbench.set_job_status("dream", "")
            r = event.result
            extra = f" · saved {display_path(r['path'])}" if r.get("path") else ""
            prob = f" · probability {r['probability']:.3f} (rank {r.get('rank', '?')})" if isinstance(
                r.get("probability"), (int, float)) else ""
            status.update(f"{event.reason}{prob}{extra}")
        elif isinstance(event, JobFailed):
            self.tlbench.set_job_status("dream", "")
            status.update(f"failed: {event.title}")
