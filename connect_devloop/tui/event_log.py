"""The event log: the text log's lines (``render.text.format_event``), without the requests,
which have their own inspector. Bounded, so a long day does not grow memory."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from rich.table import Table
from rich.text import Text
from textual.widgets import RichLog

from ..events import (
    DeregistrationFailed,
    DescriptorInvalid,
    Error,
    Event,
    HostAnswering,
    RegistrationFailed,
    RequestServed,
    Warning,
)
from ..render.text import STOP_DASHBOARD, format_event
from .format import clock

__all__ = ["MAX_LOG_LINES", "EventLog", "event_line"]

MAX_LOG_LINES = 1000


class EventLog(RichLog):
    DEFAULT_CSS = """
    EventLog {
        height: 1fr;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
        scrollbar-size-vertical: 1;
        padding: 0 1;
    }
    EventLog:focus {
        border: round $accent;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(max_lines=MAX_LOG_LINES, wrap=True, markup=False, min_width=20, id=id)
        self.border_title = "Events"

    def add(self, events: Iterable[Event]) -> None:
        for event in events:
            if not isinstance(event, RequestServed):
                self.write(event_line(event), expand=True)

    def log_record(self, text: str, level: int, ts: float) -> None:
        """A Python log record (a warning, or debug lines with -v), under its time."""
        style = (
            "bold red"
            if level >= logging.ERROR
            else "yellow"
            if level >= logging.WARNING
            else "dim"
        )
        self.write(_entry(Text(clock(ts), "dim"), Text(text, style)), expand=True)

    def note(self, text: str, style: str = "dim") -> None:
        """A line that is not an event (the demo's addresses, a log record)."""
        self.write(Text(text, style), expand=True)


def event_line(event: Event) -> Table:
    """Time in its own column, so a wrapped line or a hint stays indented under the text."""
    first, *rest = format_event(event, stop=STOP_DASHBOARD).split("\n")
    text = Text(first, _style(event))
    for more in rest:
        text.append("\n" + more.strip(), "italic")
    return _entry(Text(clock(event.ts), "dim"), text)


def _entry(when: Text, text: Text) -> Table:
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(width=8, no_wrap=True)
    grid.add_column(ratio=1, overflow="fold")
    grid.add_row(when, text)
    return grid


def _style(event: Event) -> str:
    if isinstance(event, RegistrationFailed | DeregistrationFailed | DescriptorInvalid | Error):
        return "bold red"
    if isinstance(event, Warning) or (isinstance(event, HostAnswering) and not event.answering):
        return "yellow"
    return ""
