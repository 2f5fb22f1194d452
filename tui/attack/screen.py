"""5 Attack: make the model see another class. Source image, target class, method, eps, steps; the
probabilities plotted live (targeted: the target's rising and the original class's falling; untargeted: the
original class's falling); original | adversarial | perturbation with predictions; the robustness sweep, run
with R.

The jobs are engine.adversarial.attacks' (built on the worker thread, since engine.adversarial.attacks imports torch);
the model line (tui.widgets.model_line) and the robustness panel (tui.attack.robustness) run their own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, Select

from engine.adversarial.params import AttackParams
from engine.core.events import ImageRendered, JobFailed, JobFinished, StepEnded
from engine.core.jobs import JobFn
from tui.attack.robustness import SWEEP_LIMIT, RobustnessPanel
from tui.engine_calls import attack_job
from tui.heatmap import HeatCaption, heatmap_overlay
from tui.jobs import RunningJob, run_engine_job
from tui.messages import JobEvent
from tui.screen import WorkbenchScreen
from tui.state import display_path
from tui.widgets.curves import CurvePlot
from tui.widgets.fitline import FitLine, Part
from tui.widgets.form import FieldSpec, parse_value
from tui.widgets.image_view import ImageView
from tui.widgets.inputs import ChoiceSuggester, PathSuggester, TextField
from tui.widgets.model_line import DEFAULT_BACKBONE, ModelInfo, ModelLine
from tui.widgets.thumbnails import rendered_image

# (label, "method-norm"): engine.adversarial.attacks takes the method and the norm apart.
METHODS = [("PGD L∞", "pgd-linf"), ("PGD L2", "pgd-l2"), ("FGSM", "fgsm-linf"), ("lesson: gradient descent", "gd-linf")]
PANES = ("original", "adversarial", "perturbation")
PANE_HINTS = {"original": "p uses the picked image", "adversarial": "a attacks",
              "perturbation": "the difference, amplified"}
@dataclass
class AttackRequest:
    """What the form asks for; job_function turns it into engine.adversarial.attack_job.AttackParams."""

    image: str
    target: str | None
    method: str  # "pgd-linf" …
    eps: float
    steps: int
    run_dir: str | None
    backbone: str


def plot_series(targeted: bool) -> tuple[str, list[tuple[str, str]]]:
    """(title, series) of the probability plot: StepEnded("attack") always carries "label_prob" (the class the
    model saw before the attack) and, when targeted, "target_prob"."""
    if targeted:
        return "probability per step", [("target_prob", "target"), ("label_prob", "original class")]
    return "original class probability", [("label_prob", "original class")]


def job_function(request: AttackRequest) -> JobFn:
    """The engine call, made on the worker thread (engine.adversarial.attacks imports torch). Its job emits
    StepEnded("attack", …, {"target_prob", "label_prob", "loss"}) every step and ImageRendered
    ("attack-original" | "attack-adversarial" | "attack-perturbation", pixels) at the end; its summary
    holds per image the predictions before and after, success and the achieved norms."""
    method, norm = request.method.split("-", 1)
    params = AttackParams(images=[request.image], run_dir=request.run_dir,
                          backbone=None if request.run_dir else request.backbone, method=method, norm=norm,
                          eps=request.eps, steps=request.steps, target=request.target)
    return lambda ctx: attack_job(params, ctx)


class AttackScreen(WorkbenchScreen):
    TAB = "attack"
    TITLE = "Attack"
    HELP = "Adversarial examples: push an image toward a target class and watch the probability climb."

    BINDINGS = [
        Binding("a", "start", "Attack", id="attack.start", tooltip="Run the attack with these settings"),
        Binding("s", "stop", "Stop", id="attack.stop", tooltip="Stop the attack"),
        Binding("p", "use_picked", "Picked", id="attack.picked",
                tooltip="Use the image last highlighted on Data or Results as the source"),
        Binding("c", "focus_target", "Target", id="attack.target", tooltip="Search the target class"),
        Binding("R", "robustness", "Sweep", id="attack.robustness",
                tooltip=f"Robustness sweep of the run: PGD L∞ accuracy at eps 0 to 8/255 on up to {SWEEP_LIMIT} "
                        "validation images, saved in its report"),
        Binding("h", "heatmap", "Heatmap", id="attack.heatmap", show=False,  # the 80-column key bar is full
                tooltip="Grad-CAM over the original and the adversarial image: does the attack move the evidence?"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.model: ModelInfo | None = None
        self.job: RunningJob | None = None
        self.heatmap = False  # `h`: Grad-CAM overlays on the original and adversarial panes
        self.pane_sources: dict[str, object] = {}  # what each pane shows without the heatmap
        self.shown_run: Path | None = None  # the run whose attack the panes, plot and status line show

    @property
    def running(self) -> bool:
        return self.job is not None and not self.job.done.is_set()

    @property
    def robustness(self) -> RobustnessPanel:
        return self.query_one(RobustnessPanel)

    def compose_body(self) -> ComposeResult:
        yield ModelLine(id="model-line")
        with Horizontal(id="attack-form", classes="job-form"):
            with Vertical(classes="field wide"):
                yield Label("source image")
                yield TextField(placeholder="path, or p for the picked image", id="attack-source", compact=True,
                                suggester=PathSuggester())
            with Vertical(classes="field"):
                yield Label("target class")
                yield TextField(placeholder="untargeted", id="attack-target", compact=True)
            with Vertical(classes="field"):
                yield Label("method")
                yield Select(METHODS, value="pgd-linf", allow_blank=False, id="attack-method", compact=True)
            with Vertical(classes="field narrow"):
                yield Label("eps")
                yield TextField("4/255", id="attack-eps", compact=True)
            with Vertical(classes="field narrow"):
                yield Label("steps")
                yield TextField("10", id="attack-steps", compact=True)
        with Horizontal(id="attack-images"):
            for pane in PANES:
                with Vertical(classes="pane"):
                    yield ImageView(self.tlbench.thumbnails, PANE_HINTS[pane], id=f"img-{pane}")
                    yield FitLine(pane, id=f"cap-{pane}", classes="caption")
        with Horizontal(id="attack-bottom"):
            title, series = plot_series(False)
            yield CurvePlot(title, series, ylim=(0.0, 1.0), xlabel="step", id="attack-plot")
            yield RobustnessPanel(id="robustness-box")
        yield FitLine("", id="attack-status")

    def state_changed(self) -> None:
        if self.workbench.run_dir != self.shown_run:
            self.forget_run(self.shown_run)
            self.shown_run = self.workbench.run_dir
        self.query_one(ModelLine).load(self.workbench.run_dir, self.workbench.config.get("backbone") or DEFAULT_BACKBONE)
        picked = self.workbench.picked_image
        if picked is not None and picked.origin in ("results", "preview"):
            self.set_source(picked.path, picked.label)
        self.robustness.show()

    def forget_run(self, old: Path | None) -> None:
        """Another run is in use: the attack's images, plot, captions and status line were the old run's, so
        they go (the source image stays: it is the user's choice, not a result). An attack still running
        finishes for the run it started with, and its status line names that run."""
        if old is None or self.running:
            return
        for pane in ("adversarial", "perturbation"):
            self.pane_sources.pop(pane, None)
            self.query_one(f"#img-{pane}", ImageView).show(None, PANE_HINTS[pane])
            self.query_one(f"#cap-{pane}", FitLine).update(pane)
        original = self.pane_sources.get("original")
        self.heatmap = False
        if isinstance(original, str):
            self.set_source(original, None)
        self.query_one("#attack-plot", CurvePlot).set_history([])
        self.query_one("#attack-status", FitLine).set_parts(
            "Cleared the attack of ", Part(old.name, shrink=True, least=10, tail=0.6),
            Part(": another run is in use", optional=True))

    def on_model_line_loaded(self, message: ModelLine.Loaded) -> None:
        """The model's classes become the target field's suggestions."""
        self.model = message.model
        self.query_one("#attack-target", TextField).suggester = ChoiceSuggester(self.model.classes)

    def on_robustness_panel_reported(self, message: RobustnessPanel.Reported) -> None:
        self.query_one("#attack-status", FitLine).set_parts(*message.parts)

    def set_source(self, path: str, label: str | None) -> None:
        field = self.query_one("#attack-source", TextField)
        field.value = path
        # the field scrolled to its end: a long path shows its file name, not only its start (issue 24); after
        # the refresh, once the field knows the new value's width
        field.cursor_position = len(path)
        self.call_after_refresh(lambda: field.scroll_to(x=field.max_scroll_x, animate=False, immediate=True))
        self.query_one("#img-original", ImageView).show(path)
        self.pane_sources["original"] = path
        self.query_one("#cap-original", FitLine).set_parts(
            "original · ", Part(os.path.basename(path), shrink=True, least=8, tail=0.7),
            Part(f" · label {label}" if label else "", optional=True))

    # ------------------------------------------------------------------------------------ actions

    def read_params(self) -> AttackRequest | None:
        source = self.query_one("#attack-source", TextField).value.strip()
        target = self.query_one("#attack-target", TextField).value.strip() or None
        try:
            eps = parse_value(FieldSpec("eps", "float", False, None, "perturbation budget"),
                              self.query_one("#attack-eps", TextField).value)
            steps = parse_value(FieldSpec("steps", "int", False, None, "attack steps"),
                                self.query_one("#attack-steps", TextField).value)
        except ValueError as err:
            self.notify(str(err), title="Invalid setting", severity="error")
            return None
        problems = []
        if not source or not os.path.isfile(os.path.expanduser(source)):
            problems.append(f"source image {source!r} is not a file: type a path, or p for the picked image")
        # an unknown target class is the engine's to judge: it accepts indices and near names, and suggests
        if not 0 <= eps <= 1:
            problems.append(f"eps {eps:g} is out of range: use 0 to 1 in pixel units, e.g. 4/255")
        if steps <= 0:
            problems.append(f"steps {steps} must be 1 or more")
        if problems:
            self.notify("; ".join(problems) + ".", title="Cannot attack yet", severity="error")
            return None
        method = self.query_one("#attack-method", Select).value
        return AttackRequest(os.path.expanduser(source), target, str(method), float(eps), int(steps),
                             self.model.run_dir if self.model else None, self.model.backbone if self.model else "")

    def action_start(self) -> None:
        if self.robustness.running:
            self.notify("The robustness sweep is running: s stops it.", severity="warning")
            return
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
        self.query_one("#attack-plot", CurvePlot).set_history([])
        self.query_one("#attack-status", FitLine).update("Attacking (loading the model) …")
        self.tlbench.set_job_status("attack", "attack")
        self.job = self.start_job("attack")
        self.run_attack(self.job, lambda ctx: job_function(request)(ctx))  # imports torch: on the worker thread

    def prepare(self, request: AttackRequest) -> None:
        """A new attack: the plot follows the probabilities it will report (targeted or not)."""
        plot = self.query_one("#attack-plot", CurvePlot)
        plot.title, plot.series = plot_series(request.target is not None)

    @work(thread=True, exclusive=True, group="attack", exit_on_error=False)
    def run_attack(self, job: RunningJob, fn: JobFn) -> None:
        run_engine_job(self, job, fn, self.tlbench.jobs)

    def action_stop(self) -> None:
        if self.robustness.running:
            self.robustness.stop()
        elif self.running and self.job is not None:
            self.job.control.stop()
        else:
            self.notify("Nothing is running.", severity="warning")

    def action_robustness(self) -> None:
        run_dir = self.workbench.run_dir
        if run_dir is None:
            self.notify("A sweep measures a trained run: choose one on the Runs screen (7), u.", severity="warning")
            return
        if self.running or self.robustness.running:
            self.notify("A job is running: s stops it.", severity="warning")
            return
        self.robustness.start(run_dir, self.workbench.config.get("device") or "auto")

    def action_use_picked(self) -> None:
        picked = self.workbench.picked_image
        if picked is None:
            self.notify("Highlight an image on the Data (1) or Results (4) screen first.", severity="warning")
            return
        self.set_source(picked.path, picked.label)

    def action_focus_target(self) -> None:
        self.query_one("#attack-target", TextField).focus()

    # ------------------------------------------------------------------------------------ events

    def on_job_attack_step_ended(self, message: JobEvent[StepEnded]) -> None:
        event = message.event
        self.query_one("#attack-plot", CurvePlot).add({"epoch": event.step, **event.values})
        parts = [f"step {event.step}/{event.steps}"]
        if isinstance(event.values.get("target_prob"), (int, float)):
            parts.append(f" · target {event.values['target_prob']:.3f}")
        if isinstance(event.values.get("label_prob"), (int, float)):
            parts.append(f" · original class {event.values['label_prob']:.3f}")
        self.query_one("#attack-status", FitLine).set_parts(*parts)
        self.tlbench.set_job_status("attack", f"attack {event.step}/{event.steps}")

    def on_job_attack_image_rendered(self, message: JobEvent[ImageRendered]) -> None:
        """The original, the adversarial image and the perturbation, once the attack has them."""
        pane = message.event.kind.removeprefix("attack-")
        if pane in PANES:
            self.pane_sources[pane] = rendered_image(message.event)
            self.query_one(f"#img-{pane}", ImageView).show(self.pane_sources[pane])

    def on_job_attack_finished(self, message: JobEvent[JobFinished]) -> None:
        self.tlbench.set_job_status("attack", "")
        self.finished(message.event)

    def on_job_attack_failed(self, message: JobEvent[JobFailed]) -> None:
        self.tlbench.set_job_status("attack", "")
        self.query_one("#attack-status", FitLine).update(f"failed: {message.event.title}")

    def action_heatmap(self) -> None:
        """Toggle Grad-CAM overlays (of each image's predicted class) on the original and adversarial panes."""
        self.heatmap = not self.heatmap
        panes = [(pane, self.pane_sources[pane]) for pane in ("original", "adversarial") if pane in self.pane_sources]
        if not self.heatmap or not panes:  # off, or nothing to explain yet
            self.heatmap = self.heatmap and bool(panes)
            for pane, source in panes:
                self.query_one(f"#img-{pane}", ImageView).show(source)
            return
        run_dir = self.model.run_dir if self.model else self.workbench.run_dir
        backbone = (self.model.backbone if self.model else None) or self.workbench.config.get("backbone")
        self.compute_heatmaps(panes, Path(run_dir) if run_dir else None, backbone)

    @work(thread=True, exclusive=True, group="attack-heatmap", exit_on_error=False)
    def compute_heatmaps(self, panes: list, run_dir: Path | None, backbone: str | None) -> None:
        for pane, source in panes:
            try:
                image, caption = heatmap_overlay(source, run_dir, backbone)
            except Exception as err:  # noqa: BLE001 - shown as a notification; the panes keep their images
                self.app.call_from_thread(self.notify, str(err), title="No heatmap", severity="warning")
                return
            self.app.call_from_thread(self.heatmap_ready, pane, source, image, caption)

    def heatmap_ready(self, pane: str, source, image, caption: str) -> None:
        if self.heatmap and self.pane_sources.get(pane) is source:  # still on, and still that image
            self.query_one(f"#img-{pane}", ImageView).show(image)
            # the class and its probability stay; the words and the model's name give way (issue 24)
            parts = caption.parts() if isinstance(caption, HeatCaption) else [Part(caption, shrink=True, least=8)]
            self.query_one(f"#cap-{pane}", FitLine).set_parts(Part(f"{pane} · ", optional=True), *parts)

    def finished(self, event: JobFinished) -> None:
        """Captions from the summary: the prediction before and after, and how far the image moved."""
        status = self.query_one("#attack-status", FitLine)
        results = event.result.get("results") or []
        result = results[0] if results else {}
        if "error" in result:
            status.update(f"{event.reason}: {result['error']}")
            return

        def top(key: str) -> list[Part]:
            """The top prediction: its class (shrinks from the middle) and its probability (never)."""
            preds = result.get(key) or []
            if not preds:
                return [Part("?")]
            return [Part(str(preds[0]["class"]), shrink=True, least=7), Part(f" {preds[0]['prob']:.2f}")]

        if result:
            # the pane's name gives way first: the panes keep their order (original | adversarial | perturbation)
            self.query_one("#cap-original", FitLine).set_parts(Part("original · ", optional=True), *top("before"))
            verdict = "fooled" if result.get("success") else "held"
            self.query_one("#cap-adversarial", FitLine).set_parts(
                Part("adversarial · ", optional=True), *top("after"), f" · {verdict}")
            self.query_one("#cap-perturbation", FitLine).set_parts(
                Part("perturbation · ", optional=True), f"L∞ {result.get('linf_255', 0):.1f}/255",
                Part(f" · L2 {result.get('l2', 0):.3f}", optional=True))
        out = event.result.get("out_dir")
        # class names and the path shrink from their middles (the path's end names the attack's folder), so
        # the line never loses the path off its end
        parts: list[Part | str] = [event.reason]
        if result:
            parts += [" · ", *top("before"), " → ", *top("after")]
        if out:
            parts += [" · PNGs in ", Part(display_path(out), shrink=True, least=16, tail=0.7)]
        status.set_parts(*parts)
