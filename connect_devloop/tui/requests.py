"""The request inspector: the newest proxied requests, newest at the bottom.

Rows arrive in batches (the app flushes at most every 100 ms) and the table keeps at most
``MAX_ROWS`` (and what it rendered, for one screen), so a flood costs one redraw per batch and
constant memory. The cursor follows the newest request unless the user moved it up to look at
one; then it stays on that request.

A filter (``/``, request_filter.py) hides the rows that do not match: the table still keeps
the newest ``MAX_ROWS`` requests, shown or not, so clearing the filter brings them back and the
memory stays bounded whatever the filter.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable

from ..events import RequestServed
from ..redact import mask_path
from ..state import MAX_RECENT_REQUESTS
from .format import clock, latency, truncate, verdict_label
from .layout import ESSENTIAL, Column, fit_columns
from .messages import ReplayRequested
from .request_filter import RequestFilter

__all__ = ["COLUMNS", "MAX_ROWS", "RequestTable"]

MAX_ROWS = MAX_RECENT_REQUESTS
# Rows to drop at once above which the table is rebuilt rather than trimmed row by row.
_REBUILD_AFTER = MAX_ROWS // 4
JWT_WIDTH = 22
# The path takes what the others leave; on a narrow terminal the latency goes first, then the
# time: the status and the JWT verdict always stay.
COLUMNS = (
    Column("time", "Time", keep=50),
    Column("method", "Method", keep=70),
    Column("path", "Path", keep=ESSENTIAL, fill=True, minimum=30),
    Column("status", "Status", keep=ESSENTIAL),
    Column("took", "Took", keep=30),
    Column("jwt", "JWT", keep=ESSENTIAL, maximum=JWT_WIDTH),
)
_CONTENT = {"time": 8, "method": 7, "status": 6, "took": 8}  # what these columns hold at most


class RequestTable(DataTable[Text]):
    DEFAULT_CSS = """
    RequestTable {
        overflow-x: hidden;  /* the columns are fitted to the width */
        height: 1fr;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
        scrollbar-size-vertical: 1;
    }
    RequestTable:focus {
        border: round $accent;
    }
    """
    BINDINGS = [
        Binding("enter", "select_cursor", "Details"),
        Binding("slash", "open_filter", "Filter", key_display="/"),
        Binding("p", "replay_selected", "Replay"),
        # Not in the footer: with a filter on, the 120-column footer would lose "q Quit". The
        # filter input (/) says "esc clears" and the title shows the filter (docs/tui.md).
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    @dataclass
    class FilterOpened(Message):
        """``/``: the app shows the filter input, holding ``text`` (the filter in force)."""

        text: str

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row")
        self._base_title = "Requests"
        self.border_title = self._base_title
        # The newest requests, shown or not, by their number (the app's count, not the id).
        self._requests: dict[int, RequestServed] = {}
        self._filter = RequestFilter.parse("")
        self._layout: dict[str, int] = {}
        self._verdict_width = 0  # the widest JWT verdict seen: the column is as wide

    # --- title and filter ---------------------------------------------------------------------

    def set_title(self, title: str) -> None:
        """The title the app gives (counts of all requests); the filter is said after it."""
        self._base_title = title
        self._show_title()

    def _show_title(self) -> None:
        if not self._filter:
            self.border_title = self._base_title
            return
        shown, kept = self.row_count, len(self._requests)
        self.border_title = (
            f"{self._base_title} · filter: {self._filter.text} · {shown:,} of {kept:,}"
        )

    @property
    def filter_text(self) -> str:
        return self._filter.text

    def set_filter(self, text: str) -> None:
        """Show only the requests that match ``text`` (all of them when it is empty)."""
        parsed = RequestFilter.parse(text)
        if parsed == self._filter:
            return
        self._filter = parsed
        self._rebuild_rows()
        self._show_title()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "clear_filter":
            return bool(self._filter)  # escape passes on when there is nothing to clear
        return True

    def action_open_filter(self) -> None:
        self.post_message(self.FilterOpened(self._filter.text))

    def action_clear_filter(self) -> None:
        self.set_filter("")

    def action_replay_selected(self) -> None:
        request = self.request_at_cursor()
        if request is not None:
            self.post_message(ReplayRequested(request.id))

    # --- rows ---------------------------------------------------------------------------------

    def on_mount(self) -> None:
        self._relayout()

    def on_resize(self, _: events.Resize) -> None:
        self._relayout()

    def _relayout(self) -> bool:
        """Columns for the width the table has now; the rows are redrawn only when they change.
        True when they did."""
        # Before the first layout the table has no size yet: assume a 120-column terminal.
        available = self.scrollable_content_region.width or 116
        content = {**_CONTENT, "jwt": self._verdict_width}
        layout = dict(fit_columns(COLUMNS, content, available))
        if layout == self._layout:
            return False
        selected = self._cursor_key()
        following = not self.has_focus or self.cursor_row >= self.row_count - 1
        self.clear(columns=True)
        self._layout = layout
        labels = {column.key: column.label for column in COLUMNS}
        for key, width in layout.items():
            self.add_column(labels[key], width=width, key=key)
        self._add_rows(self._requests.items())
        self._clear_caches()
        self._follow(following, selected)
        return True

    @property
    def shown_columns(self) -> tuple[str, ...]:
        return tuple(self._layout)

    def request_at_cursor(self) -> RequestServed | None:
        if self.row_count == 0:
            return None
        row_key = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0)).row_key
        return self._requests.get(int(row_key.value or 0))

    def add(self, requests: Sequence[RequestServed], last_number: int) -> None:
        """Append ``requests``, the last of which is request number ``last_number``."""
        if not requests:
            return
        following = not self.has_focus or self.cursor_row >= self.row_count - 1
        selected = None if following else self._cursor_key()
        requests = requests[-MAX_ROWS:]
        widest = max(cell_len(verdict_label(request.jwt)) for request in requests)
        if widest > self._verdict_width:
            self._verdict_width = widest
            self._relayout()
        numbered = list(enumerate(requests, start=last_number - len(requests) + 1))
        excess = len(self._requests) + len(numbered) - MAX_ROWS
        if excess > _REBUILD_AFTER:
            # A flood: most rows go. Removing rows one by one costs the table's size each (and
            # its cursor and hover handlers): 200 removals were 90 % of an 84 ms redraw, on the
            # proxy's event loop. Starting afresh with the newest rows costs the rows added.
            kept = [*self._requests.items(), *numbered][-MAX_ROWS:]
            self.clear()
            self._requests = {}
            numbered = kept
        for number, request in numbered:
            self._requests[number] = request
        self._add_rows(numbered)
        excess = len(self._requests) - MAX_ROWS
        if excess > 0:
            for number in list(self._requests)[:excess]:  # dicts keep insertion order
                del self._requests[number]
                if str(number) in self.rows:  # a filtered-out request has no row
                    self.remove_row(str(number))
        # DataTable keeps what it rendered in LRU caches of up to 10,000 cells, 1,000 rows and
        # 1,000 lines, keyed by row and by its update count, which every added row changes: in
        # a flood none of it is used again, yet it filled ~12 MiB before the caches were full.
        # Emptied here, they hold one screen at most; the next redraw renders it anyway.
        self._clear_caches()
        self._follow(following, selected)
        if self._filter:
            self._show_title()

    def _add_rows(self, numbered: Iterable[tuple[int, RequestServed]]) -> None:
        """Rows for those of ``numbered`` that the filter lets through, in order."""
        match, layout = self._filter.matches, self._layout
        for number, request in numbered:
            if match(request):
                self.add_row(*_cells(request, layout), key=str(number))

    def _rebuild_rows(self) -> None:
        """The rows again, after the filter changed: as cheap as a flood's rebuild."""
        following = self.cursor_row >= self.row_count - 1
        selected = None if following else self._cursor_key()
        self.clear()
        self._add_rows(self._requests.items())
        self._clear_caches()
        # The request looked at may be filtered out: then the newest one that matches.
        self._follow(following or selected not in self.rows, selected)

    def _follow(self, following: bool, selected: str | None) -> None:
        if following and self.row_count:
            self.move_cursor(row=self.row_count - 1, animate=False)
        elif selected is not None and selected in self.rows:
            self.move_cursor(row=self.get_row_index(selected), animate=False)

    def _cursor_key(self) -> str | None:
        if self.row_count == 0:
            return None
        return self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0)).row_key.value


def _cells(request: RequestServed, widths: dict[str, int]) -> list[Text]:
    """The cells of the columns in ``widths``, each cut to its width."""
    verdict = request.jwt
    jwt_style = "" if verdict is None else "green" if verdict.get("verified") is True else "red"
    cells = {
        "time": Text(clock(request.ts), "dim"),
        "method": Text(request.method),
        "path": _path_cell(request, widths.get("path", 0)),
        "status": Text(str(request.status), _status_style(request.status)),
        "took": Text(latency(request.duration_ms), justify="right"),
        "jwt": Text(truncate(verdict_label(verdict), widths.get("jwt", 0)), jwt_style),
    }
    return [cells[key] for key in widths]


def _path_cell(request: RequestServed, width: int) -> Text:
    """The path; a replay's starts with what it replays (``↻ #5``), in the room of the path."""
    path = mask_path(request.path)
    replay_of = getattr(request, "replay_of", 0)
    if not replay_of:
        return Text(truncate(path, width))
    mark = f"↻ #{replay_of} "
    return Text.assemble((mark, "magenta"), truncate(path, width - cell_len(mark)))


def _status_style(status: int) -> str:
    if status >= 500:
        return "bold red"
    if status >= 400:
        return "yellow"
    if status >= 300:
        return "cyan"
    return "green"
