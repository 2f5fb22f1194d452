"""The Data screen's jobs on whole datasets: open one, fetch one, audit it, and keep its duplicate groups on one
side of the split. A mixin of tui.data.screen.DataScreen (its state: `info`, `workbench`, the summary)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from textual import work
from textual.widgets import Static

from engine.core.paths import data_dir
from engine.data.exclude import load_audit
from tui.data.audit import AuditScreen
from tui.data.open_dataset import AskScreen
from tui.jobs import RunningJob, run_engine_job
from tui.screen import WorkbenchScreen
from tui.state import display_path

if TYPE_CHECKING:
    from engine.data.layouts import DatasetInfo


class DatasetActions(WorkbenchScreen):
    """The actions; DataScreen provides what is declared here."""

    info: DatasetInfo | None

    def start_scan(self, path: Path) -> None:
        raise NotImplementedError

    def refresh_split(self) -> None:
        raise NotImplementedError

    def _split_settings(self) -> tuple:
        raise NotImplementedError

    def action_open_dataset(self) -> None:
        def opened(value: str | None) -> None:
            if value:
                self.open_dataset(Path(os.path.expanduser(value)))

        current = str(self.workbench.dataset) + os.sep if self.workbench.dataset else os.getcwd() + os.sep
        self.app.push_screen(AskScreen("Open a dataset folder", "enter open · tab complete · escape cancel",
                                       current), opened)

    def open_dataset(self, path: Path) -> None:
        """Scan `path`; the dataset open now stays until the new one has opened."""
        self.start_scan(path)

    def action_fetch(self) -> None:
        """What `tlbench fetch` does, from a key: ask for a dataset name, download it, open it."""
        from engine.fetch.sources import DATASETS

        names = list(DATASETS)
        described = "; ".join(f"{n}: {src.title}" for n, src in DATASETS.items())

        def chosen(name: str | None) -> None:
            if name:
                self.query_one("#data-summary", Static).update(f"Fetching {name} …")
                self.tlbench.set_job_status("fetch", "fetch starting")
                self.run_fetch(self.start_job("fetch"), name)

        self.app.push_screen(AskScreen("Fetch a dataset into " + display_path(data_dir()), described, "", names),
                             chosen)

    def action_group_duplicates(self) -> None:
        """k: keep each duplicate group of the last audit on one side of the split (the default), or not."""
        config = dict(self.workbench.config)
        if config.get("group_duplicates", "auto") == "off":
            config.pop("group_duplicates", None)
        else:
            config["group_duplicates"] = "off"
        self.workbench.config = config
        self.workbench.changed()  # the Model screen's form follows when shown
        self._seen_version = self.workbench.version
        self.refresh_split()

    def action_audit(self) -> None:
        if self.info is not None:
            self.open_audit(load_audit(self.info.root))

    def open_audit(self, audit: dict | None) -> None:
        """The Audit view of the open dataset; its `r` asks for a new audit, run here (a job of this screen)."""
        if self.info is None:
            return
        root = self.info.root

        def closed(choice: str | None) -> None:
            self.refresh_split()  # marks made in the view change what the split holds
            if choice == "run" and not self.tlbench.jobs.running("audit"):
                self.query_one("#data-summary", Static).update(f"Auditing {self.info.name if self.info else ''} …")
                self.run_audit(self.start_job("audit"), root, self.workbench.config.get("backbone"),
                               self._split_settings()[:2])

        self.app.push_screen(AuditScreen(root, audit, self.tlbench.thumbnails), closed)

    @work(thread=True, exclusive=True, group="audit", exit_on_error=False)
    def run_audit(self, job: RunningJob, root: Path, backbone: str | None, split: tuple[float, int]) -> None:
        from engine.features.audit_job import AuditParams, audit_job  # imports torch: in the worker

        params = AuditParams(str(root), val_fraction=split[0], seed=split[1])
        if backbone:
            params.backbone = backbone
        run_engine_job(self, job, lambda ctx: audit_job(params, ctx), self.tlbench.jobs)

    @work(thread=True, exclusive=True, group="fetch", exit_on_error=False)
    def run_fetch(self, job: RunningJob, name: str) -> None:
        from engine.fetch.sources import fetch_dataset

        def fetch(ctx):
            result = fetch_dataset(name, data_dir(), ctx=ctx)
            return {"fetched": str(result["path"]), "command": result.get("command", "")}

        run_engine_job(self, job, fetch, self.tlbench.jobs)
