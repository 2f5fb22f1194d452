"""5 Attack: make the model see another class. Source image, target class, method, eps, steps; the target
probability plotted live; original | adversarial | perturbation with predictions; the robustness sweep.

The engine (engine/attacks.py) arrives with issue 7. Until then the screen shows its layout and says so;
wiring it is `job_function` below — the event handling (StepEnded, ImageRendered, JobFinished) is done.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.suggester import SuggestFromList
from textual.widgets import DataTable, Label, Select, Static

from engine.events import Event, ImageRendered, JobFailed, JobFinished, StepEnded
from engine.jobs import JobFn
from tui.attack.common import ModelJobScreen, rendered_image
from tui.jobs import RunningJob, run_engine_job
from tui.model.form import FieldSpec, parse_value
from tui.train.curves import CurvePlot
from tui.widgets.image_view import ImageView
from tui.widgets.inputs import TextField

METHODS = [("PGD L∞", "pgd"), ("PGD L2", "pgd-l2"), ("FGSM", "fgsm"), ("gradient descent (lesson)", "gd")]
PANES = ("original", "adversarial", "perturbation")
PANE_HINTS = {"original": "p uses the picked image", "adversarial": "a attacks",
              "perturbation": "the difference, amplified"}


@dataclass
class AttackParams:
    image: str
    target: str | None
    method: str
    eps: float
    steps: int
    run_dir: str | None
    backbone: str


def job_function(params: AttackParams) -> JobFn:
    """The engine call, made on the worker thread. Contract expected from issue 7:
    engine.attacks.attack_job(**params) -> a job function fn(ctx) emitting StepEnded("attack", …,
    values={"target_prob": …}) and ImageRendered(kind="original"|"adversarial"|"perturbation", pixels, values=
    {"class": …, "prob": …}), returning {"before": …, "after": …, "linf": …, "l2": …}."""
    from engine.attacks import attack_job  # noqa: F401 - ModuleNotFoundError until issue 7 lands

    return attack_job(**asdict(params))


def robustness_rows(robustness) -> list[tuple[str, str]]:
    """(eps, accuracy) rows from report.json's robustness entry, whichever shape it takes."""
    def eps_text(e) -> str:
        if isinstance(e, (int, float)) and 0 < e < 1:
            return f"{e * 255:g}/255"
        return str(e)

    if isinstance(robustness, dict):
        if isinstance(robustness.get("eps"), list) and isinstance(robustness.get("accuracy"), list):
            return [(eps_text(e), f"{a:.3f}") for e, a in zip(robustness["eps"], robustness["accuracy"])]
        rows = robustness.get("results") or robustness.get("sweep")
        if isinstance(rows, list):
            return robustness_rows(rows)
        return [(eps_text(k), f"{v:.3f}" if isinstance(v, (int, float)) else str(v)) for k, v in robustness.items()
                if not isinstance(v, (dict, list))]
    if isinstance(robustness, list):
        return [(eps_text(r.get("eps")), f"{r.get('accuracy', r.get('robust_accuracy', 0)):.3f}")
                for r in robustness if isinstance(r, dict)]
    return []


class AttackScreen(ModelJobScreen):
    TAB = "attack"
    TITLE = "Attack"
    HELP = "Adversarial examples: push an image toward a target class and watch the probability climb."
    ENGINE_MODULE = "engine.attacks"

    BINDINGS = [
        Binding("a", "start", "Attack", id="attack.start", tooltip="Run the attack with these settings"),
        Binding("s", "stop", "Stop", id="attack.stop", tooltip="Stop the attack"),
        Binding("p", "use_picked", "Picked", id="attack.picked",
                tooltip="Use the image last highlighted on Data or Results as the source"),
        Binding("c", "focus_target", "Target", id="attack.target", tooltip="Search the target class"),
    ]

    def compose_body(self) -> ComposeResult:
        yield Static("Model: -", id="model-line", markup=False)
        yield Static("", id="coming", markup=False)
        with Horizontal(id="attack-form", classes="job-form"):
            with Vertical(classes="field wide"):
                yield Label("source image")
                yield TextField(placeholder="path, or p for the picked image", id="attack-source", compact=True)
            with Vertical(classes="field"):
                yield Label("target class")
                yield TextField(placeholder="untargeted", id="attack-target", compact=True)
            with Vertical(classes="field"):
                yield Label("method")
                yield Select(METHODS, value="pgd", allow_blank=False, id="attack-method", compact=True)
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
        super().on_mount()
        self.query_one("#robustness", DataTable).add_columns("eps", "accuracy")

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
        for eps, acc in rows:
            table.add_row(eps, acc)
        if not rows:
            table.add_row("-", "no sweep yet (issue 7)")

    def model_loaded(self) -> None:
        classes = self.model["classes"] if self.model else []
        self.query_one("#attack-target", TextField).suggester = SuggestFromList(classes, case_sensitive=False)

    # ------------------------------------------------------------------------------------ actions

    def read_params(self) -> AttackParams | None:
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
        classes = self.model["classes"] if self.model else []
        if target is not None and classes and target not in classes:
            problems.append(f"unknown target class {target!r}: type to search the model's {len(classes)} classes")
        if not 0 <= eps <= 1:
            problems.append(f"eps {eps:g} is out of range: use 0 to 1 in pixel units, e.g. 4/255")
        if steps <= 0:
            problems.append(f"steps {steps} must be 1 or more")
        if problems:
            self.notify("; ".join(problems) + ".", title="Cannot attack yet", severity="error")
            return None
        method = self.query_one("#attack-method", Select).value
        return AttackParams(os.path.expanduser(source), target, str(method), float(eps), int(steps),
                            self.model.get("run_dir") if self.model else None,
                            self.model.get("backbone", "") if self.model else "")

    def action_start(self) -> None:
        if not self.check_startable():
            return
        params = self.read_params()
        if params is None:
            return
        self.query_one("#attack-plot", CurvePlot).set_history([])
        self.query_one("#attack-status", Static).update("Attacking …")
        self.job = self.start_job("attack")
        self.run_attack(self.job, params)

    @work(thread=True, exclusive=True, group="attack", exit_on_error=False)
    def run_attack(self, job: RunningJob, params: AttackParams) -> None:
        run_engine_job(self, job, lambda ctx: job_function(params)(ctx), self.tlbench.jobs)

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
            prob = event.values.get("target_prob")
            status.update(f"step {event.step}/{event.steps}" + (f" · target probability {prob:.3f}" if prob is not None else ""))
        elif isinstance(event, ImageRendered) and event.kind in PANES:
            source = rendered_image(event)
            self.query_one(f"#img-{event.kind}", ImageView).show(source)
            v = event.values
            label = f"{event.kind}"
            if "class" in v or "prob" in v:
                label += f" · {v.get('class', '?')} {float(v.get('prob', 0)):.2f}"
            self.query_one(f"#cap-{event.kind}", Static).update(label)
        elif isinstance(event, JobFinished):
            r = event.result
            parts = [event.reason]
            for key in ("before", "after"):
                if key in r:
                    parts.append(f"{key} {r[key]}")
            for key in ("linf", "l2"):
                if isinstance(r.get(key), (int, float)):
                    parts.append(f"{key} {r[key]:.4f}")
            status.update(" · ".join(parts))
        elif isinstance(event, JobFailed):
            status.update(f"failed: {event.title}")
