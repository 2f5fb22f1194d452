"""5 Attack: make the model see another class. Source image, target class, method, eps, steps; the target
probability plotted live; original | adversarial | perturbation with predictions; the robustness sweep.

The job is engine.attacks' (built by `job_function` on the worker thread, since it imports torch).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Label, Select, Static

from engine.events import Event, ImageRendered, JobFailed, JobFinished, StepEnded
from engine.jobs import JobFn
from tui.attack.common import ModelJobScreen, rendered_image
from tui.model.form import FieldSpec, parse_value
from tui.state import display_path
from tui.train.curves import CurvePlot
from tui.widgets.image_view import ImageView
from tui.widgets.inputs import TextField

# (label, "method-norm"): engine.attacks takes the method and the norm apart.
METHODS = [("PGD L∞", "pgd-linf"), ("PGD L2", "pgd-l2"), ("FGSM", "fgsm-linf"), ("lesson: gradient descent", "gd-linf")]
PANES = ("original", "adversarial", "perturbation")
PANE_HINTS = {"original": "p uses the picked image", "adversarial": "a attacks",
              "perturbation": "the difference, amplified"}


@dataclass
class AttackRequest:
    """What the form asks for; job_function turns it into engine.attacks.AttackParams."""

    image: str
    target: str | None
    method: str  # "pgd-linf" …
    eps: float
    steps: int
    run_dir: str | None
    backbone: str


def job_function(request: AttackRequest) -> JobFn:
    """The engine call, made on the worker thread (engine.attacks imports torch). Its job emits
    StepEnded("attack", …, {"target_prob", "label_prob", "loss"}) every step and ImageRendered
    ("attack-original" | "attack-adversarial" | "attack-perturbation", pixels) at the end; its summary
    holds per image the predictions before and after, success and the achieved norms."""
    from engine.attacks import AttackParams, attack_job

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
    ]

    def compose_body(self) -> ComposeResult:
        yield from self.compose_header()
        with Horizontal(id="attack-form", classes="job-form"):
            with Vertical(classes="field wide"):
                yield Label("source image")
                yield TextField(placeholder="path, or p for the picked image", id="attack-source", compact=True)
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
                    yield Static(pane, id=f"cap-{pane}", classes="caption", markup=False)
        with Horizontal(id="attack-bottom"):
            yield CurvePlot("target probability", [("target_prob", "target")], ylim=(0.0, 1.0), xlabel="step",
                            id="attack-plot")
            with Vertical(id="robustness-box"):
                yield Static("robustness sweep (val accuracy)", classes="caption")
                yield DataTable(id="robustness", cursor_type="row", show_cursor=False)
        yield Static("", id="attack-status", markup=False)

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
        self.query_one("#cap-original", Static).update(
            f"original · {os.path.basename(path)}" + (f" · label {label}" if label else ""))

    def show_robustness(self) -> None:
        table = self.query_one("#robustness", DataTable)
        table.clear()
        run_dir = self.workbench.run_dir
        report = run_dir / "report.json" if run_dir else None
        rows = []
        if report is not None and report.exists():
            from engine.runs import read_json

            try:
                rows = robustness_rows(read_json(report).get("robustness"))
            except Exception:  # noqa: BLE001 - a damaged report shows no sweep; Results says why
                rows = []
        for row in rows:
            table.add_row(*row)
        if not rows:
            table.add_row("-", "-", "none yet")

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
        if job != "attack":
            return
        status = self.query_one("#attack-status", Static)
        if isinstance(event, StepEnded):
            self.query_one("#attack-plot", CurvePlot).add({"epoch": event.step, **event.values})
            prob = event.values.get("target_prob", event.values.get("label_prob"))
            what = "target" if "target_prob" in event.values else "label"
            status.update(f"step {event.step}/{event.steps}" + (f" · {what} probability {prob:.3f}" if prob is not None else ""))
            self.tlbench.set_job_status("attack", f"attack {event.step}/{event.steps}")
        elif isinstance(event, ImageRendered) and event.kind.removeprefix("attack-") in PANES:
            pane = event.kind.removeprefix("attack-")
            self.query_one(f"#img-{pane}", ImageView).show(rendered_image(event))
        elif isinstance(event, JobFinished):
            self.tlbench.set_job_status("attack", "")
            self.finished(event)
        elif isinstance(event, JobFailed):
            self.tlbench.set_job_status("attack", "")
            status.update(f"failed: {event.title}")

    def finished(self, event: JobFinished) -> None:
        """Captions from the summary: the prediction before and after, and how far the image moved."""
        status = self.query_one("#attack-status", Static)
        results = event.result.get("results") or []
        result = results[0] if results else {}
        if "error" in result:
            status.update(f"{event.reason}: {result['error']}")
            return

        def top(key: str) -> str:
            preds = result.get(key) or []
            return f"{preds[0]['class']} {preds[0]['prob']:.2f}" if preds else "?"

        if result:
            self.query_one("#cap-original", Static).update(f"original · {top('before')}")
            verdict = "fooled" if result.get("success") else "held"
            self.query_one("#cap-adversarial", Static).update(f"adversarial · {top('after')} · {verdict}")
            self.query_one("#cap-perturbation", Static).update(
                f"perturbation · L∞ {result.get('linf_255', 0):.1f}/255 · L2 {result.get('l2', 0):.3f}")
        out = event.result.get("out_dir")
        status.update(f"{event.reason}" + (f" · {top('before')} → {top('after')}" if result else "")
                      + (f" · PNGs in {display_path(out)}" if out else ""))
