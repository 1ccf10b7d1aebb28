"""Messages the dashboard posts to itself. Anything off the event loop (the bus, a log handler,
the browser opener's thread) talks to widgets only through these."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

__all__ = ["BrowserOpened", "DaemonExited", "EventsPending", "LogLine", "ReplayRequested"]


@dataclass
class EventsPending(Message):
    """Events wait in the inbox; the app flushes them into the panels, at most every 100 ms."""


@dataclass
class DaemonExited(Message):
    """``Supervisor.run`` returned ``code``, or raised ``error`` (then ``code`` is 1)."""

    code: int
    error: BaseException | None = None


@dataclass
class LogLine(Message):
    """A record from Python logging, shown in the event log instead of scribbling on the screen."""

    text: str
    level: int
    ts: float  # when it was logged (``LogRecord.created``)


@dataclass
class BrowserOpened(Message):
    url: str
    opened: bool
    error: str = ""


@dataclass
class ReplayRequested(Message):
    """Send captured request ``id`` again (``p`` on the requests, ``r``/``e``/``u`` on a card).

    ``edit``: in the editor first; ``edited``: the text already edited (sent again unchanged
    after a replay that could not re-sign); ``unchanged``: the token as captured."""

    id: int
    edit: bool = False
    edited: str | None = None
    unchanged: bool = False
