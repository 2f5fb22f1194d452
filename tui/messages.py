"""Messages that cross into the UI: engine events from job threads, and the app's own facts."""

from __future__ import annotations

from textual.message import Message

from engine.core.events import BatchEnded, Event, ProgressAdvanced

# Per-batch progress: only the newest one matters, so a newer one replaces an older one still queued.
REPLACEABLE = (BatchEnded, ProgressAdvanced)


class JobEvent(Message):
    """An engine event from a job's worker thread (post_message is thread-safe and never blocks the job).

    Progress events of the same job and phase coalesce: when the UI falls behind, the queue keeps only the
    latest. Epoch, log, checkpoint and final events are never replaced.
    """

    def __init__(self, job: str, event: Event) -> None:
        super().__init__()
        self.job = job
        self.event = event

    def can_replace(self, message: Message) -> bool:
        if not isinstance(message, JobEvent) or message.job != self.job:
            return False
        mine, theirs = self.event, message.event
        return (isinstance(mine, REPLACEABLE) and type(mine) is type(theirs)
                and getattr(mine, "phase", None) == getattr(theirs, "phase", None))


class ThumbnailsReady(Message):
    """Some thumbnails finished rendering off the UI thread; the widget repaints once for all of them."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ThumbnailsReady)
