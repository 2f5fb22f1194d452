"""The base of the seven screens: tab bar, body, footer; the shared state in and out; job failures to the error
modal; a worker's own failure too."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Unpack

from textual import events, on
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Select, TextArea
from textual.worker import Worker, WorkerState

from engine.core.events import JobFailed
from tui.base_app import WorkbenchApp, workbench_of
from tui.jobs import RunningJob
from tui.messages import JobEvent
from tui.widgets.image_view import ImageView
from tui.widgets.keybar import KeyBar
from tui.widgets.tabbar import TabBar

if TYPE_CHECKING:
    from tui.state import Changes, Workbench


# Widgets that take typed keys: Esc leaves them so 1-7 and the screen's letters work again.
FIELDS = (Input, Select, Checkbox, TextArea)


class WorkbenchScreen(Screen):
    """Subclasses set TAB (the mode name) and TITLE, and implement compose_body."""

    # Keys go to the screen until you choose a field (tab, or the screen's key for it); escape leaves a field,
    # so 1-7 always switch screens once you are not typing.
    BINDINGS = [Binding("escape", "leave_field", "Leave field", show=False, id="screen.leave_field"),
                Binding("z", "zoom_picture", "Zoom", show=False, id="screen.zoom",
                        tooltip="The picture on the screen as large as the screen allows (a click picks one)")]

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
    def tlbench(self) -> WorkbenchApp:
        return workbench_of(self)

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

    def share(self, **changes: Unpack[Changes]) -> None:
        """Change the shared state from this screen: the other screens reload when shown next and the app saves
        the settings and the run; this screen shows the change already, so it does not reload for it."""
        self.workbench.update(**changes)
        self._seen_version = self.workbench.version

    def action_leave_field(self) -> None:
        """Esc in a field gives the keys back to the screen. Anywhere else (a list) it does nothing here: the
        list keeps focus so arrows typed right after still move it, and Esc stays free for other bindings."""
        if not isinstance(self.focused, FIELDS):
            raise SkipAction()
        self.set_focus(None)

    def action_zoom_picture(self) -> None:
        """z where no grid has the focus (a grid zooms its highlighted picture): the first picture shown on the
        screen (Attack's original, Dream's image, the Audit's first of a pair); a click zooms any other."""
        shown = [v for v in self.query(ImageView) if v.source is not None and v.display and v.region.area]
        if not shown:
            raise SkipAction()
        shown[0].zoom()

    @on(Input.Submitted)
    def _leave_field_on_enter(self, event: Input.Submitted) -> None:
        """Enter in a text field means "done typing": give the keys back to the screen (a to attack, …).
        A screen's own handler may have moved focus somewhere useful already; that is kept."""
        if self.focused is event.input:
            self.set_focus(None)

    def start_job(self, name: str) -> RunningJob:
        """Register a job on the UI thread before its worker starts, so quitting can always stop it."""
        return self.tlbench.begin_job(name)

    @on(JobEvent)
    def _job_failed(self, message: JobEvent) -> None:
        """Every job's events end here, after the handlers of the widget that runs the job (on_job_<job>_<event>):
        a failure opens the error modal, with the cause and the fix."""
        message.stop()
        if isinstance(message.event, JobFailed):
            self.tlbench.show_error(message.event.error, message.event.title)

    @on(Worker.StateChanged)
    def _worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place a worker's own failure is handled (a job's failure arrives as JobFailed instead)."""
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.tlbench.show_error(event.worker.error, f"{event.worker.name or 'worker'} failed")


def copy_command(node: Widget | Screen, command: str) -> None:
    """Copy the line to the terminal's clipboard (OSC 52; not every terminal honours it) and show it whole, so it
    can be selected by hand where the copy does not reach."""
    node.app.copy_to_clipboard(command)
    node.notify(command, title="Copied: the command that runs it again", timeout=12, markup=False)
