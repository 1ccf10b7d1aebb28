"""The top line: add-on key, descriptor file, revision digest, validity, and the run's phase."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from ..state import State

__all__ = ["DescriptorHeader"]


class DescriptorHeader(Static):
    DEFAULT_CSS = """
    DescriptorHeader {
        height: 1;
        padding: 0 1;
        background: $panel;
    }
    """

    def __init__(self, descriptor: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._descriptor = descriptor
        self._shown: tuple[object, ...] | None = None

    def show(self, state: State, phase: Text) -> None:
        shown = (
            state.key,
            state.digest,
            state.descriptor_valid,
            len(state.descriptor_errors),
            phase.plain,
            str(phase.style),
        )
        if shown == self._shown:
            return
        self._shown = shown
        left = Text.assemble(("connect-dev", "bold"), "  ")
        left.append(state.key or "no valid descriptor yet", "bold" if state.key else "dim")
        left.append("  ")
        left.append(self._descriptor)
        if state.digest:
            stale = state.descriptor_valid is False
            left.append("  digest ", "dim")
            left.append(state.digest, "dim" if stale else "")
            if stale:
                left.append(" (last good)", "dim")
        left.append("  ")
        left.append_text(validity(state))
        grid = Table.grid(expand=True)
        grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        grid.add_column(justify="right", no_wrap=True)
        grid.add_row(left, phase)
        self.update(grid)


def validity(state: State) -> Text:
    if state.descriptor_valid is None:
        return Text("… loading", "dim")
    if state.descriptor_valid:
        return Text("✔ valid", "green")
    count = len(state.descriptor_errors)
    return Text(f"✖ invalid: {count} problem{'s' if count != 1 else ''}", "bold red")
