"""The descriptor's problems, each with its location, while the saved file is invalid."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from ..state import State

__all__ = ["ValidationPanel"]


class ValidationPanel(Static):
    """Hidden while the descriptor is valid. Problems are listed in file order, as saved."""

    DEFAULT_CSS = """
    ValidationPanel {
        display: none;
        height: auto;
        max-height: 14;
        border: round $error;
        border-title-color: $error;
        border-title-style: bold;
        padding: 0 1;
    }
    ValidationPanel.-invalid {
        display: block;
    }
    """

    def __init__(self, descriptor: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._descriptor = descriptor
        self._shown: tuple[object, ...] | None = None

    def show(self, state: State) -> None:
        shown = (state.descriptor_valid, state.descriptor_errors, state.digest)
        if shown == self._shown:
            return
        self._shown = shown
        invalid = state.descriptor_valid is False
        self.set_class(invalid, "-invalid")
        if not invalid:
            return
        count = len(state.descriptor_errors)
        self.border_title = f"{self._descriptor}: {count} problem{'s' if count != 1 else ''}"
        self.border_subtitle = (
            "the last good revision stays installed; fix it and save"
            if state.digest
            else "nothing is installed until it is valid; fix it and save"
        )
        self.update(problems_table(state.descriptor_errors))


def problems_table(errors: tuple[dict[str, Any], ...]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(no_wrap=True, style="bold")  # line:column
    table.add_column(no_wrap=True, style="cyan")  # JSON path
    table.add_column(ratio=1)  # message
    for error in errors:
        table.add_row(location(error), str(error.get("path") or "$"), message(error))
    return table


def location(error: dict[str, Any]) -> str:
    line, column = error.get("line"), error.get("column")
    if line is None:
        return "—"
    return f"{line}:{column}" if column is not None else str(line)


def message(error: dict[str, Any]) -> Text:
    text = Text(str(error.get("message", "")))
    if error.get("severity") == "warning":
        text = Text.assemble(("warning: ", "yellow"), text)
    return text
