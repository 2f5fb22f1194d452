"""5 Attack: make the model see another class. Source image, target class, method, eps, steps; the
probabilities plotted live (targeted: the target's rising and the original class's falling; untargeted: the
original class's falling); original | adversarial | perturbation with predictions; the robustness sweep, run
with R.

The jobs are engine.adversarial.attacks' (built on the worker thread, since engine.adversarial.attacks imports torch).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Label, Select, Static

from engine.core.events import Event, ImageRendered, JobFailed, JobFinished, ProgressAdvanced, StepEnded
from engine.core.jobs import JobFn
from tui.attack.common import ModelJobScreen, rendered_image
from tui.data.heatmap import heatmap_overlay
from tui.jobs import RunningJob, run_engine_job
from tui.model.form import FieldSpec, parse_value
from tui.state import display_path
from tui.train.curves import CurvePlot
from tui.widgets.fitline import FitLine, Part
from tui.widgets.image_view import ImageView
from tui.widgets.inputs import PathSuggester, TextField

# (label, "method-norm"): engine.adversarial.attacks takes the method and the norm apart.
METHODS = [("PGD L∞", "pgd-linf"), ("PGD L2", "pgd-l2"), ("FGSM", "fgsm-linf"), ("lesson: gradient descent", "gd-linf")]
PANES = ("original", "adversarial", "perturbation")
PANE_HINTS = {"original": "p uses the picked image", "adversarial": "a attacks",
              "perturbation": "the difference, amplified"}
# The sweep R runs from the workbench: engine.adversarial.attacks' defaults (PGD L∞, eps 0 to 8/255, 10 steps) on at most
# this many validation images, so it takes minutes, not hours, on a CPU; `tlbench robustness` does any size.
SWEEP_LIMIT = 256


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


def sweep_job(run_dir: str, device: str) -> JobFn:
    """engine.adversarial.attacks' robustness job for a run (imported on the worker thread: it imports torch)."""
    def job(ctx):
        from engine.adversarial.robustness import RobustnessParams, robustness_job

        return robustness_job(RobustnessParams(run_dir=run_dir, limit=SWEEP_LIMIT, device=device), ctx)

    return job


def job_function(request: AttackRequest) -> JobFn:
    """The engine call, made on the worker thread (engine.adversarial.attacks imports torch). Its job emits
    StepEnded("attack", …, {"target_prob", "label_prob", "loss"}) every step and ImageRendered
    ("attack-original" | "attack-adversarial" | "attack-perturbation", pixels) at the end; its summary
    holds per image the predictions before and after, success and the achieved norms."""
    from engine.adversarial.attack_job import AttackParams, attack_job

    method, norm = request.method.split("-", 1)
    params = AttackParams(images=[request.image], run_dir=request.run_dir,
                          backbone=None if request.run_dir else request.backbone, method=method, norm=norm,
                          eps=request.eps, steps=request.steps, target=request.target)
    return lambda ctx: attack_job(params, ctx)


def robustness_rows(robustness) -> list[tuple[str, str, str]]:
    """(sweep, eps, accuracy) rows from report.json's "robustness": {"pgd-linf": {"eps": [...], "accuracy":
    [...]}, …} as `tlbench robustness` writes it (a single sweep without the key is read too)."""
    def eps_text(e) -> str:
        if isinstance(e, (int, float)) and 0 < e < 1:
            return f"{e * 255:g}/255"
        return str(e)

    if not isinstance(robustness, dict):
        return []
    sweeps = {"": robustness} if "eps" in robustness else robustness
    rows = []
    for key, sweep in sweeps.items():
        if isinstance(sweep, dict) and isinstance(sweep.get("eps"), list) and isinstance(sweep.get("accuracy"), list):
            for e, a in zip(sweep["eps"], sweep["accuracy"]):
                rows.append((str(key), eps_text(e), f"{a:.3f}" if isinstance(a, (int, float)) else str(a)))
    return rows


class AttackScreen(ModelJobScreen):
    TAB = "attack"
    TITLE = "Attack"
    HELP = "Adversarial examples: push an image toward a target class and watch the probability climb."
    JOB = "attack"
    CLASS_FIELD = "#attack-target"

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
        self.sweep: RunningJob | None = None
        self.heatmap = False  # `h`: Grad-CAM overlays on the original and adversarial panes
        self.pane_sources: dict[str, object] = {}  # what each pane shows without the heatmap

    @property
    def sweeping(self) -> bool:
        return self.sweep is not None and not self.sweep.done.is_set()

    def compose_body(self) -> ComposeResult:
        yield from self.compose_header()
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
            with Vertical(id="robustness-box"):
                yield Static("robustness (val accuracy) · R runs", classes="caption", id="robustness-title")
                yield DataTable(id="robustness", cursor_type="row", show_cursor=False)
        yield FitLine("", id="attack-status")

    def on_mount(self) -> None:
        self.query_one("#robustness", DataTable).add_columns("sweep", "eps", "accuracy")

    def state_changed(self) -> None:
        super().state_changed()
        picked = self.workbench.picked_image
        if picked is not None and picked.origin in ("results", "preview"):
            self.set_source(picked.path, picked.label)
        self.show_robustness()

    def set_source(self, path: str, label: str | None) -> None:
        self.query_one("#attack-source", TextField).value = path
        self.query_one("#img-original", ImageView).show(path)
        self.pane_sources["original"] = path
        self.query_one("#cap-original", FitLine).set_parts(
            "original · ", Part(os.path.basename(path), shrink=True, least=8, tail=0.7),
            Part(f" · label {label}" if label else "", optional=True))

    def show_robustness(self) -> None:
        table = self.query_one("#robustness", DataTable)
        table.clear()
        run_dir = self.workbench.run_dir
        report = run_dir / "report.json" if run_dir else None
        rows = []
        if report is not None and report.exists():
            from engine.core.files import read_json

            try:
                rows = robustness_rows(read_json(report).get("robustness"))
            except Exception:  # noqa: BLE001 - a damaged report shows no sweep; Results says why
                rows = []
        for row in rows:
            table.add_row(*row)
        if not rows:
            table.add_row("-", "-", "none yet: R" if run_dir else "no run")

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
                             self.model.get("run_dir") if self.model else None,
                             self.model.get("backbone", "") if self.model else "")

    def job_for(self, request: AttackRequest) -> JobFn:
        return lambda ctx: job_function(request)(ctx)  # job_function imports torch: on the worker thread

    def starting_text(self, request: AttackRequest) -> str:
        return "Attacking (loading the model) …"

    def prepare(self, request: AttackRequest) -> None:
        plot = self.query_one("#attack-plot", CurvePlot)
        plot.title, plot.series = plot_series(request.target is not None)

    def check_startable(self) -> bool:
        if self.sweeping:
            self.notify("The robustness sweep is running: s stops it.", severity="warning")
            return False
        return super().check_startable()

    def action_stop(self) -> None:
        if self.sweeping:
            self.sweep.control.stop()
            self.query_one("#attack-status", FitLine).update("Stopping the sweep after this batch …")
            return
        super().action_stop()

    def action_robustness(self) -> None:
        run_dir = self.workbench.run_dir
        if run_dir is None:
            self.notify("A sweep measures a trained run: choose one on the Runs screen (7), u.", severity="warning")
            return
        if self.running or self.sweeping:
            self.notify("A job is running: s stops it.", severity="warning")
            return
        self.query_one("#attack-status", FitLine).set_parts(
            "Robustness sweep of ", Part(run_dir.name, shrink=True, least=12, tail=0.6),
            Part(" (loading the model and the validation split) …", optional=True))
        self.tlbench.set_job_status("robustness", "sweep")
        self.sweep = self.start_job("robustness")
        self.run_sweep(self.sweep, sweep_job(str(run_dir), self.workbench.config.get("device") or "auto"))

    @work(thread=True, exclusive=True, group="robustness", exit_on_error=False)
    def run_sweep(self, job: RunningJob, fn: JobFn) -> None:
        run_engine_job(self, job, fn, self.tlbench.jobs)

    def sweep_event(self, event: Event) -> None:
        status = self.query_one("#attack-status", FitLine)
        if isinstance(event, ProgressAdvanced) and event.phase == "robustness" and event.total:
            share = event.done / event.total
            status.set_parts(f"Robustness sweep: {share:.0%} ({event.done:.0f}/{event.total:.0f} image-attacks)",
                             Part(" · s stops", optional=True))
            self.tlbench.set_job_status("robustness", f"sweep {share:.0%}")
        elif isinstance(event, JobFinished):
            self.tlbench.set_job_status("robustness", "")
            self.show_robustness()
            r = event.result
            if event.reason == "completed" and r.get("rows"):
                first, last = r["rows"][0], r["rows"][-1]  # the panel lists every eps; the line, the range
                status.set_parts(f"Robustness {r.get('key', '')} on {r.get('images')} images: "
                                 f"{first['accuracy']:.3f} at {first['eps_text']} → {last['accuracy']:.3f} at "
                                 f"{last['eps_text']}", Part(" · saved in ", optional=True),
                                 Part(display_path(Path(r.get("run_dir", "")) / "report.json"), shrink=True, least=12,
                                      tail=0.7, optional=True))
            else:
                status.update("Robustness sweep stopped: nothing saved.")
        elif isinstance(event, JobFailed):
            self.tlbench.set_job_status("robustness", "")
            status.update(f"Robustness sweep failed: {event.title}")

    def action_use_picked(self) -> None:
        picked = self.workbench.picked_image
        if picked is None:
            self.notify("Highlight an image on the Data (1) or Results (4) screen first.", severity="warning")
            return
        self.set_source(picked.path, picked.label)

    def action_focus_target(self) -> None:
        self.query_one("#attack-target", TextField).focus()

    # ------------------------------------------------------------------------------------ events

    def model_job_event(self, job: str, event: Event) -> None:
        if job == "robustness":
            self.sweep_event(event)
            return
        if job != "attack":
            return
        status = self.query_one("#attack-status", FitLine)
        if isinstance(event, StepEnded):
            self.query_one("#attack-plot", CurvePlot).add({"epoch": event.step, **event.values})
            parts = [f"step {event.step}/{event.steps}"]
            if isinstance(event.values.get("target_prob"), (int, float)):
                parts.append(f" · target {event.values['target_prob']:.3f}")
            if isinstance(event.values.get("label_prob"), (int, float)):
                parts.append(f" · original class {event.values['label_prob']:.3f}")
            status.set_parts(*parts)
            self.tlbench.set_job_status("attack", f"attack {event.step}/{event.steps}")
        elif isinstance(event, ImageRendered) and event.kind.removeprefix("attack-") in PANES:
            pane = event.kind.removeprefix("attack-")
            self.pane_sources[pane] = rendered_image(event)
            self.query_one(f"#img-{pane}", ImageView).show(self.pane_sources[pane])
        elif isinstance(event, JobFinished):
            self.tlbench.set_job_status("attack", "")
            self.finished(event)
        elif isinstance(event, JobFailed):
            self.tlbench.set_job_status("attack", "")
            status.update(f"failed: {event.title}")

    def action_heatmap(self) -> None:
        """Toggle Grad-CAM overlays (of each image's predicted class) on the original and adversarial panes."""
        self.heatmap = not self.heatmap
        panes = [(pane, self.pane_sources[pane]) for pane in ("original", "adversarial") if pane in self.pane_sources]
        if not self.heatmap or not panes:  # off, or nothing to explain yet
            self.heatmap = self.heatmap and bool(panes)
            for pane, source in panes:
                self.query_one(f"#img-{pane}", ImageView).show(source)
            return
        run_dir = self.model.get("run_dir") if self.model else self.workbench.run_dir
        backbone = (self.model or {}).get("backbone") or self.workbench.config.get("backbone")
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
            self.query_one(f"#cap-{pane}", FitLine).set_parts(f"{pane} · ", Part(caption, shrink=True, least=8))

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
