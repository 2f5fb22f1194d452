"""The Runs screen's small dialogs: what to predict, which export format, and the predictions themselves."""

from __future__ import annotations

import os

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Static

from tui.widgets.fitline import FitLine, Part, shorten_middle
from tui.widgets.inputs import PathSuggester, TextField

EXPORT_CHOICES = (("p", "pt2", "torch.export: RUN/export/model.pt2 (torch.export.load), the default"),
                  ("t", "torchscript", "TorchScript: RUN/export/model.pt, legacy (deprecated upstream)"),
                  ("o", "onnx", "ONNX: RUN/export/model.onnx, for onnxruntime (needs tlbench[onnx])"))


class PredictDialog(ModalScreen[str | None]):
    """A path to classify: an image, or a folder (every image inside it). Enter runs it, escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="predict.cancel")]
    AUTO_FOCUS = "#predict-path"

    def __init__(self, run_name: str, value: str = "") -> None:
        super().__init__()
        self.run_name, self.value = run_name, value

    def compose(self) -> ComposeResult:
        with Vertical(id="predict-box", classes="runs-dialog"):
            yield FitLine("Predict with ", Part(self.run_name, shrink=True, least=12, tail=0.6),
                          classes="dialog-title")
            yield TextField(self.value, placeholder="an image or a folder of images", id="predict-path",
                            suggester=PathSuggester())
            yield Static("enter classifies it (a folder: every image inside, sorted) · escape cancels",
                         classes="dialog-hint", markup=False)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        value = event.value.strip()
        if not value:
            self.notify("Type a path to an image or a folder.", severity="warning")
            return
        if not os.path.exists(os.path.expanduser(value)):
            self.notify(f"{value} does not exist: type the path of an image or a folder of images.",
                        severity="error")
            return
        self.dismiss(os.path.expanduser(value))

    def action_cancel(self) -> None:
        self.dismiss(None)


class ExportDialog(ModalScreen[str | None]):
    """Choose the export format with one key."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="export.cancel")] + [
        Binding(key, f"choose('{fmt}')", fmt, id=f"export.{fmt}") for key, fmt, _ in EXPORT_CHOICES]

    def __init__(self, run_name: str) -> None:
        super().__init__()
        self.run_name = run_name

    def compose(self) -> ComposeResult:
        with Vertical(id="export-box", classes="runs-dialog"):
            yield FitLine("Export ", Part(self.run_name, shrink=True, least=12, tail=0.6), classes="dialog-title")
            for key, _fmt, text in EXPORT_CHOICES:
                yield Static(Text.assemble((f" {key} ", "bold reverse"), " " + text))
            yield Static("the export is checked against the run's model before it is reported · escape cancels",
                         classes="dialog-hint", markup=False)

    def action_choose(self, fmt: str) -> None:
        self.dismiss(fmt)

    def action_cancel(self) -> None:
        self.dismiss(None)


class PredictionsScreen(ModalScreen[None]):
    """Each image with its top predictions (class and probability); escape closes."""

    BINDINGS = [Binding("escape,q", "close", "Close", id="predictions.close")]
    AUTO_FOCUS = "#predictions"

    def __init__(self, title: list[Part | str], results: list[dict]) -> None:
        super().__init__()
        self.title_parts, self.results = title, results

    def compose(self) -> ComposeResult:
        with Vertical(id="predictions-box", classes="runs-dialog"):
            yield FitLine(*self.title_parts, classes="dialog-title")
            yield DataTable(id="predictions", cursor_type="row")
            yield Static("escape closes", classes="dialog-hint", markup=False)

    def on_mount(self) -> None:
        table = self.query_one("#predictions", DataTable)
        wide = self.app.size.width >= 100
        name_w, file_w = (22, 30) if wide else (14, 18)
        k = max((len(r.get("predictions", [])) for r in self.results), default=1)
        table.add_columns("image", *(["prediction"] + [f"#{i + 1}" for i in range(1, k)]))
        for r in self.results:
            name = shorten_middle(os.path.basename(r["path"]), file_w, tail=0.6)
            if "error" in r:
                table.add_row(name, Text(shorten_middle(r["error"], name_w * k), "red"), *[""] * (k - 1))
                continue
            preds = [f"{shorten_middle(p['class'], name_w)} {p['prob']:.2f}" for p in r["predictions"]]
            table.add_row(name, *(preds + [""] * (k - len(preds))))

    def action_close(self) -> None:
        self.dismiss(None)
