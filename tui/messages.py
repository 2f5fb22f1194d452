"""Messages that cross into the UI: engine events from job threads, and the app's own facts."""

from __future__ import annotations

import threading
import types
from typing import Any, Generic, TypeVar

from textual.message import Message

from engine.core.events import BatchEnded, Event, ProgressAdvanced

# Per-batch progress: only the newest one matters, so a newer one replaces an older one still queued.
REPLACEABLE = (BatchEnded, ProgressAdvanced)

E = TypeVar("E", bound=Event, covariant=True)


class JobEvent(Message, Generic[E]):
    """An engine event from a job's worker thread (post_message is thread-safe and never blocks the job).

    Handled by name, as Textual handles every message: `on_job_<job>_<event>`, the job's name and the event's
    class in snake case, without the event's "Job" prefix. A StepEnded of job "lr-find" goes to
    `on_job_lr_find_step_ended(self, message: JobEvent[StepEnded])`, its JobFinished to `on_job_lr_find_finished`;
    so each widget handles its jobs' events one typed method each, and an event it has no method for bubbles on
    (the screen shows every JobFailed in the error modal). `JobEvent(job, event)` is an instance of the subclass
    for that job and that kind of event, made on first use.

    Progress events of the same job and phase coalesce: when the UI falls behind, the queue keeps only the
    latest. Epoch, log, checkpoint and final events are never replaced.
    """

    job: str
    event: E

    def __new__(cls, job: str, event: Event) -> Any:
        kind = message_class(job, type(event)) if cls is JobEvent else cls
        return object.__new__(kind)

    def __init__(self, job: str, event: E) -> None:
        super().__init__()
        self.job = job
        self.event = event

    def can_replace(self, message: Message) -> bool:
        if not isinstance(message, JobEvent) or message.job != self.job:
            return False
        mine, theirs = self.event, message.event
        return (isinstance(mine, REPLACEABLE) and type(mine) is type(theirs)
                and getattr(mine, "phase", None) == getattr(theirs, "phase", None))


_classes: dict[tuple[str, type[Event]], type[JobEvent]] = {}
_classes_lock = threading.Lock()  # job threads make their events' messages


def message_class(job: str, event_type: type[Event]) -> type[JobEvent]:
    """The JobEvent subclass whose handler is on_job_<job>_<event> (Textual names it from the namespace)."""
    key = (job, event_type)
    with _classes_lock:
        kind = _classes.get(key)
        if kind is None:
            name = event_type.__name__.removeprefix("Job")  # JobFinished -> on_job_<job>_finished
            namespace = "job_" + job.replace("-", "_")
            kind = _classes[key] = types.new_class(name, (JobEvent,), {"namespace": namespace},
                                                   lambda body: body.update(__module__=__name__))
        return kind


class ThumbnailsReady(Message):
    """Some thumbnails finished rendering off the UI thread; the widget repaints once for all of them."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ThumbnailsReady)
