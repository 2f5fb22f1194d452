"""6 Dream: render the image a class wants to see. Class (search; several, comma-separated, make a gallery),
steps, TV weight, jitter, recipe (maco by default; `l` switches to the lesson's recipe and says why it fools
only its own network); the image updating live, then the gallery's contact sheet.

The job saves the final image itself (also when stopped), into the run's dreams/ folder; the status line
names it. `w` keeps a snapshot of the image as it is now, while it forms (a preview every 25 steps), named
after the class and the step with a suffix that never overwrites an earlier one; once the job has saved its
final image, `w` says where instead of writing a second copy.

The job is engine.adversarial.dreams' (built by `job_function` on the worker thread, since it imports torch); the
model line (tui.widgets.model_line) runs its own.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, Select

from engine.adversarial.params import LESSON_WHY, DreamParams
from engine.core.events import ImageRendered, JobFailed, JobFinished, StepEnded
from engine.core.files import atomic_write_bytes
from engine.core.jobs import JobFn
from engine.core.runs import safe_name
from tui.engine_calls import dream_job
from tui.jobs import RunningJob, run_engine_job
from tui.messages import JobEvent
from tui.screen import WorkbenchScreen
from tui.state import display_path
from tui.widgets.curves import CurvePlot
from tui.widgets.fitline import FitLine, Part
from tui.widgets.form import FieldSpec, parse_value
from tui.widgets.image_view import ImageView
from tui.widgets.inputs import ChoiceSuggester, TextField
from tui.widgets.model_line import DEFAULT_BACKBONE, ModelInfo, ModelLine
from tui.widgets.text import middle_truncate
from tui.widgets.thumbnails import MemoryImage, rendered_image

# the plot before a step names its class (one dream, or an older engine's events)
ONE_CLASS = (("target_prob", "class"),)

RECIPES = [("maco", "maco"), ("robust", "robust"), ("lesson CE+TV", "lesson")]
DEFAULT_RECIPE = "maco"  # its dreams are the ones another network recognises (bench/attack_dream.py)


@dataclass
class DreamRequest:
    """What the form asks for; job_function turns it into engine.adversarial.dreams.DreamParams."""

    target: str  # one class, or several comma-separated (a gallery)
    steps: int | None  # None: the recipe's default
    tv_weight: float | None  # None: the recipe's default
    jitter: int
    recipe: str
    run_dir: str | None
    backbone: str


def job_function(request: DreamRequest) -> JobFn:
    """The engine call, made on the worker thread (engine.adversarial.dreams imports torch). Its job emits
    StepEnded("dream", …, {"target_prob", "loss"}) every step, ImageRendered("dream-preview", pixels) every
    25 steps and ImageRendered("dream", pixels, path) at the end; the summary has "probability" and "path"."""
    params = DreamParams(target=request.target, run_dir=request.run_dir,
                         backbone=None if request.run_dir else request.backbone, recipe=request.recipe,
                         steps=request.steps, tv_weight=request.tv_weight, jitter=request.jitter)
    return lambda ctx: dream_job(params, ctx)


def dream_file_stem(class_name: str, step: int) -> str:
    """"Bengal-step75": a file name part that stays inside its folder whatever the class name holds."""
    return f"{safe_name(class_name.replace(' ', '-')) or 'dream'}-step{step}"


def save_png_new(image, folder: Path, stem: str) -> Path:
    """Write `image` as folder/stem.png, or stem-2.png, stem-3.png … whichever is free: never overwrites.
    The free name is reserved by creating it exclusively, then the PNG replaces the empty reservation
    atomically (a reader never sees half a PNG; works where hard links do not)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, 10_000):
        path = folder / (f"{stem}.png" if i == 1 else f"{stem}-{i}.png")
        try:
            with open(path, "xb"):
                break
        except FileExistsError:
            continue
    else:
        raise OSError(f"no free file name for {stem}.png in {folder}")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    try:
        atomic_write_bytes(path, buf.getvalue())  # permissions as open() gives them, like every run file
    except BaseException:
        path.unlink(missing_ok=True)  # the reservation, still empty
        raise
    return path


def class_named(typed: str, classes: list[str]) -> str:
    """The model's own spelling of the class typed (any case, or its index), else the text as typed."""
    for name in classes:
        if name.casefold() == typed.casefold():
            return name
    if typed.isdigit() and int(typed) < len(classes):
        return classes[int(typed)]
    return typed


class DreamScreen(WorkbenchScreen):
    TAB = "dream"
    TITLE = "Dream"
    HELP = ("Optimise an image from noise until the model sees the class in it; watch it form; w saves it. "
            "Several classes (a, b, c) make a gallery; l switches to the lesson's recipe.")

    BINDINGS = [
        Binding("d", "start", "Dream", id="dream.start", tooltip="Start dreaming the chosen class"),
        Binding("s", "stop", "Stop", id="dream.stop", tooltip="Stop dreaming"),
        Binding("w", "save", "Snapshot", id="dream.save",
                tooltip="Keep the image as it is now (the job saves the final one itself): dreams/<class>-step<N>.png"),
        Binding("c", "focus_class", "Class", id="dream.class", tooltip="Search the class to dream"),
        Binding("l", "lesson", "Lesson", id="dream.lesson",
                tooltip="Switch between the lesson's recipe (pixels, CE + TV) and maco"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.model: ModelInfo | None = None
        self.job: RunningJob | None = None
        self.frame: MemoryImage | None = None
        self.frame_step = 0
        self.dream_class = ""  # the class of the dream on screen
        self.saved: str | None = None  # where the job saved its final image

    @property
    def running(self) -> bool:
        return self.job is not None and not self.job.done.is_set()

    def compose_body(self) -> ComposeResult:
        yield ModelLine(id="model-line")
        with Horizontal(id="dream-form", classes="job-form"):
            with Vertical(classes="field wide"):
                yield Label("class")
                yield TextField(placeholder="type to search", id="dream-class", compact=True)
            with Vertical(classes="field narrow"):
                yield Label("steps")
                yield TextField(placeholder="recipe's", id="dream-steps", compact=True)
            with Vertical(classes="field narrow"):
                yield Label("TV weight")
                yield TextField(placeholder="recipe's", id="dream-tv", compact=True)
            with Vertical(classes="field narrow"):
                yield Label("jitter px")
                yield TextField("0", id="dream-jitter", compact=True)
            with Vertical(classes="field"):
                yield Label("recipe")
                yield Select(RECIPES, value=DEFAULT_RECIPE, allow_blank=False, id="dream-recipe", compact=True)
        with Horizontal(id="dream-body"):
            with Vertical(id="dream-image-box"):
                yield ImageView(self.tlbench.thumbnails, "the image appears here as it forms", id="dream-image")
                yield FitLine("", id="dream-caption", classes="caption")
            yield CurvePlot("class probability", list(ONE_CLASS), ylim=(0.0, 1.0), xlabel="step",
                            id="dream-plot")
        yield FitLine("", id="dream-status")

    def state_changed(self) -> None:
        self.query_one(ModelLine).load(self.workbench.run_dir, self.workbench.config.get("backbone") or DEFAULT_BACKBONE)

    def on_model_line_loaded(self, message: ModelLine.Loaded) -> None:
        """The model's classes become the class field's suggestions."""
        self.model = message.model
        self.query_one("#dream-class", TextField).suggester = ChoiceSuggester(self.model.classes)

    def read_params(self) -> DreamRequest | None:
        target = self.query_one("#dream-class", TextField).value.strip()
        try:
            steps = parse_value(FieldSpec("steps", "int", True, None, "steps"), self.query_one("#dream-steps", TextField).value)
            tv = parse_value(FieldSpec("tv_weight", "float", True, None, "TV weight"), self.query_one("#dream-tv", TextField).value)
            jitter = parse_value(FieldSpec("jitter", "int", False, None, "jitter"), self.query_one("#dream-jitter", TextField).value)
        except ValueError as err:
            self.notify(str(err), title="Invalid setting", severity="error")
            return None
        problems = []
        if not target:  # a near name or an index is the engine's to resolve (it suggests close names)
            problems.append("no class: type one (c), the suggestions come from the model's classes")
        if steps is not None and steps <= 0:
            problems.append(f"steps {steps} must be 1 or more")
        if tv is not None and tv < 0:
            problems.append(f"TV weight {tv:g} must be 0 or more")
        if jitter < 0:
            problems.append(f"jitter {jitter} must be 0 or more")
        if problems:
            self.notify("; ".join(problems) + ".", title="Cannot dream yet", severity="error")
            return None
        recipe = str(self.query_one("#dream-recipe", Select).value)
        return DreamRequest(target, steps, tv, jitter, recipe, self.model.run_dir if self.model else None,
                            self.model.backbone if self.model else "")

    def action_start(self) -> None:
        if self.running:
            self.notify("A job is running: s stops it.", severity="warning")
            return
        if self.model is None:
            self.notify("The model is still loading.", severity="warning")
            return
        request = self.read_params()
        if request is None:
            return
        self.prepare(request)
        plot = self.query_one("#dream-plot", CurvePlot)
        plot.series = list(ONE_CLASS)
        plot.set_history([])
        self.query_one("#dream-status", FitLine).update(f"Dreaming {self.dream_class} (loading the model) …")
        self.tlbench.set_job_status("dream", "dream")
        self.job = self.start_job("dream")
        self.run_dream(self.job, lambda ctx: job_function(request)(ctx))  # imports torch: on the worker thread

    def prepare(self, request: DreamRequest) -> None:
        """A new dream: its class in the model's spelling; no picture of the last one is kept or saved."""
        self.dream_class = class_named(request.target, self.model.classes if self.model else [])
        self.frame, self.frame_step, self.saved = None, 0, None

    @work(thread=True, exclusive=True, group="dream", exit_on_error=False)
    def run_dream(self, job: RunningJob, fn: JobFn) -> None:
        run_engine_job(self, job, fn, self.tlbench.jobs)

    def action_stop(self) -> None:
        if not self.running or self.job is None:
            self.notify("Nothing is running.", severity="warning")
            return
        self.job.control.stop()

    def action_lesson(self) -> None:
        """The lesson's recipe one key away (and back to maco), with why its dreams fool only their network."""
        select = self.query_one("#dream-recipe", Select)
        if select.value == "lesson":
            select.value = DEFAULT_RECIPE
            self.notify("Recipe: maco (phase-only Fourier, many crops per step).", title="Recipe")
        else:
            select.value = "lesson"
            self.notify(LESSON_WHY, title="Recipe: the lesson's")

    def action_focus_class(self) -> None:
        self.query_one("#dream-class", TextField).focus()

    def action_save(self) -> None:
        if self.saved is not None:
            self.notify(f"The dream is saved already: {display_path(self.saved)}", title="Already saved")
            return
        if self.frame is None:
            self.notify("No image yet: d starts a dream (a preview comes every 25 steps).", severity="warning")
            return
        folder = (self.workbench.run_dir or Path.cwd()) / "dreams"
        try:
            path = save_png_new(self.frame.image, folder, dream_file_stem(self.dream_class, self.frame_step))
        except OSError as err:
            self.tlbench.show_error(err, "Could not save the image")
            return
        self.notify(f"Saved {display_path(path)}", title="Snapshot saved")

    def on_job_dream_step_ended(self, message: JobEvent[StepEnded]) -> None:
        event = message.event
        self.query_one("#dream-plot", CurvePlot).add(self.plot_row(event))
        prob = event.values.get("target_prob")
        self.query_one("#dream-status", FitLine).update(
            f"step {event.step}/{event.steps}" + (f" · probability {prob:.3f}" if prob is not None else ""))
        self.tlbench.set_job_status("dream", f"dream {event.step}/{event.steps}")

    def plot_row(self, event: StepEnded) -> dict:
        """The step's probability under its class's own series, added to the plot's legend the first time the
        class is seen: a gallery draws one line per class, each named (not one line called "class")."""
        row = {"epoch": event.step, **event.values}
        index = event.values.get("class_index")
        classes = self.model.classes if self.model else []
        if index is None or not 0 <= int(index) < len(classes):
            return row
        plot = self.query_one("#dream-plot", CurvePlot)
        key = f"target_prob_{int(index)}"
        if plot.series == list(ONE_CLASS):
            plot.series = []
        if key not in dict(plot.series):
            plot.series.append((key, middle_truncate(classes[int(index)], 18)))
        row[key] = event.values.get("target_prob")
        return row

    def on_job_dream_image_rendered(self, message: JobEvent[ImageRendered]) -> None:
        """A preview as the image forms, the final image, or a gallery's contact sheet."""
        event = message.event
        if event.kind not in ("dream", "dream-preview", "dream-gallery"):
            return
        source = rendered_image(event)
        if isinstance(source, MemoryImage):
            self.frame, self.frame_step = source, event.step
        if event.kind == "dream-gallery":
            self.saved = event.path
        elif event.kind == "dream" and event.path:
            self.saved = event.path
        self.query_one("#dream-image", ImageView).show(source)
        caption = self.query_one("#dream-caption", FitLine)
        if event.kind == "dream-gallery":
            caption.set_parts(f"gallery of {event.step}", Part(" · contact sheet", optional=True))
            return
        prob = event.values.get("target_prob")
        index = event.values.get("class_index")
        if index is not None and self.model and 0 <= int(index) < len(self.model.classes):
            self.dream_class = self.model.classes[int(index)]  # in a gallery, the class being dreamed
        # the probability first: at 80 columns the step and "final" give way, then the class name shrinks
        parts: list[Part | str] = [Part(self.dream_class, shrink=True, least=8), " · "] if self.dream_class else []
        parts += [f"probability {prob:.3f}" if prob is not None else "", Part(f" · step {event.step}", optional=True)]
        if event.kind == "dream":
            parts.append(Part(" · final", optional=True))
        caption.set_parts(*parts)

    def on_job_dream_finished(self, message: JobEvent[JobFinished]) -> None:
        event = message.event
        self.tlbench.set_job_status("dream", "")
        r = event.result
        if r.get("path"):
            self.saved = r["path"]
        prob = f" · probability {r['probability']:.3f} (rank {r.get('rank', '?')})" if isinstance(
            r.get("probability"), (int, float)) else ""
        if "dreams" in r:  # a gallery: how many classes, and how many the judge recognised
            prob = f" · {len(r['dreams'])} dreams" + (f", {r['recognised']} ranked first by the judge"
                                                      if "recognised" in r else "")
        # the saved file's path shrinks from its middle (its end is the file name), never off the end
        self.query_one("#dream-status", FitLine).set_parts(
            f"{event.reason}{prob}",
            *((" · saved ", Part(display_path(r["path"]), shrink=True, least=16, tail=0.7)) if r.get("path") else ()))

    def on_job_dream_failed(self, message: JobEvent[JobFailed]) -> None:
        self.tlbench.set_job_status("dream", "")
        self.query_one("#dream-status", FitLine).update(f"failed: {message.event.title}")
