"""The requests' filter input, under the table: opened with ``/``, hidden otherwise.

It only edits text; the app hands each change to ``RequestTable.set_filter`` (live), Enter
keeps the filter and goes back to the table, Esc clears it. The filter in force stays in the
table's title once the input is closed.
"""

from __future__ import annotations

from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Input

__all__ = ["FilterBar"]

PLACEHOLDER = (
    "filter: words · status:4xx · method:post · jwt:expired · tenant:… · path:/… · "
    "-word excludes  (enter keeps, esc clears)"
)


class FilterBar(Input):
    DEFAULT_CSS = """
    FilterBar {
        display: none;
        margin: 0 1;
    }
    FilterBar.-open {
        display: block;
    }
    """
    BINDINGS = [Binding("escape", "cancel", "Clear filter")]

    class Cancelled(Message):
        """Esc: clear the filter and close."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(placeholder=PLACEHOLDER, compact=True, id=id)

    @property
    def is_open(self) -> bool:
        return self.has_class("-open")

    def open(self, text: str) -> None:
        self.value = text
        self.cursor_position = len(text)
        self.add_class("-open")
        self.focus()

    def close(self) -> None:
        self.remove_class("-open")

    def action_cancel(self) -> None:
        self.post_message(self.Cancelled())

    def on_blur(self, _: events.Blur) -> None:
        # Tab or a click elsewhere: the filter stays, as after Enter; the title says it.
        self.close()
