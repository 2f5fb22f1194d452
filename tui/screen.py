"""The base of the seven screens: tab bar, body, footer; engine events in, job failures to the error modal."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, ClassVar

from textual import events, on
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Checkbox, Input, Select, TextArea
from textual.worker import Worker, WorkerState

from engine.core.events import Event, JobFailed
from engine.core.jobs import JobControl
from tui.jobs import RunningJob
from tui.messages import JobEvent
from tui.widgets.keybar import KeyBar
from tui.widgets.tabbar import TabBar

if TYPE_CHECKING:
    from tui.app import TlbenchApp
    from tui.state import Workbench


# Widgets that take typed keys: Esc leaves them so 1-7 and the screen's letters work again.
FIELDS = (Input, Select, Checkbox, TextArea)


class WorkbenchScreen(Screen):
    """Subclasses set TAB (the mode name) and TITLE, and implement compose_body."""

    # Keys go to the screen until you choose a field (tab, or the screen's key for it); escape leaves a field,
    # so 1-7 always switch screens once you are not typing.
    BINDINGS = [Binding("escape", "leave_field", "Leave field", show=False, id="screen.leave_field")]

    TAB: ClassVar[str] = ""
    TITLE: ClassVar[str] = ""
    HELP: ClassVar[str] = ""  # one line for the help screen

    def __init__(self) -> None:
        super().__init__(id=f"screen-{self.TAB}")
        self._seen_version = -1

    @property
    def workbench(self) -> Workbench:
        return self.tlbench.state

    @property
    def tlbench(self) -> TlbenchApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield TabBar(self.TAB)
        yield from self.compose_body()
        yield KeyBar()

    def compose_body(self) -> ComposeResult:
        yield from ()

    def _on_screen_resume(self, event: events.ScreenResume) -> None:
        """Shown (again): reload from the shared state when something changed meanwhile.

        Textual dispatches one handler per class (this one, then Screen's own), so this is not a super() call.
        Textual restyles the whole screen on every resume; ours did not change while hidden (a class change
        restyles at once, a theme change goes through refresh_css), and restyling a screen full of tables
        cost ~100 ms per key press when switching screens.
        """
        event.refresh_styles = False
        if self._seen_version != self.workbench.version:
            self._seen_version = self.workbench.version
            self.state_changed()

    def state_changed(self) -> None:
        """The shared state changed since this screen last looked (dataset, settings, chosen run)."""

    def action_leave_field(self) -> None:
        """Esc in a field gives the keys back to the screen. Anywhere else (a list) it does nothing here: the
        list keeps focus so arrows typed right after still move it, and Esc stays free for other bindings."""
        if not isinstance(self.focused, FIELDS):
            raise SkipAction()
        self.set_focus(None)

    @on(Input.Submitted)
    def _leave_field_on_enter(self, event: Input.Submitted) -> None:
        """Enter in a text field means "done typing": give the keys back to the screen (a to attack, …).
        A screen's own handler may have moved focus somewhere useful already; that is kept."""
        if self.focused is event.input:
            self.set_focus(None)

    def start_job(self, name: str) -> RunningJob:
        """Register a job on the UI thread before its worker starts, so quitting can always stop it."""
        return self.tlbench.jobs.begin(name, JobControl())

    @on(JobEvent)
    async def _job_event(self, message: JobEvent) -> None:
        message.stop()
        if isinstance(message.event, JobFailed):
            self.tlbench.show_error(message.event.error, message.event.title)
        result = self.job_event(message.job, message.event)
        if result is not None:  # a screen may handle events with a coroutine (to await a mount)
            await result

    def job_event(self, job: str, event: Event) -> Awaitable[None] | None:
        """One engine event of one of this screen's jobs, on the UI thread."""

    @on(Worker.StateChanged)
    def _worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place a worker's own failure is handled (a job's failure arrives as JobFailed instead)."""
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.tlbench.show_error(event.worker.error, f"{event.worker.name or 'worker'} failed")
