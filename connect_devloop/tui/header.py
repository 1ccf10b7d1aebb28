"""The top line: add-on key, descriptor file, revision digest, validity, and the run's phase.

On a narrow terminal it gives up, in this order, the word ``digest`` and the digest's last
digits, the long form of the phase, ``connect-dev`` itself and then the digest; the descriptor's
path is shortened in the middle to what is left, down to its file name. The validity mark and
the phase always stay, and so does ``⟳ restart needed`` while a saved connect-dev.toml has
changes that apply only after a restart of ``up``.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.table import Table
from rich.text import Text
from textual import events
from textual.widgets import Static

from ..state import State
from .layout import elide_middle

__all__ = ["DescriptorHeader", "header_line", "validity"]

GAP = "  "
_SHORT_DIGEST = 7  # as the hosts table's Rev column
_SOME_OF_THE_PATH = 20


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
        self._state: State | None = None
        self._phases = (Text(), Text())
        self._shown: tuple[object, ...] | None = None

    def show(self, state: State, phase: Text, short_phase: Text | None = None) -> None:
        """``short_phase``: the phase in fewer words, for a narrow terminal."""
        self._state = state
        self._phases = (phase, short_phase or phase)
        self._draw()

    def on_resize(self, _: events.Resize) -> None:
        self._draw()

    def _draw(self) -> None:
        state = self._state
        if state is None:
            return
        phase, short_phase = self._phases
        width = self.content_region.width or 118
        shown = (
            state.key,
            state.digest,
            state.descriptor_valid,
            len(state.descriptor_errors),
            state.restart_needed,
            phase.markup,
            short_phase.markup,
            width,
        )
        if shown == self._shown:
            return
        self._shown = shown
        left, right = header_line(state, self._descriptor, phase, short_phase, width)
        grid = Table.grid(expand=True)
        grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        grid.add_column(justify="right", no_wrap=True)
        grid.add_row(left, right)
        self.update(grid)


def header_line(
    state: State, descriptor: str, phase: Text, short_phase: Text, width: int
) -> tuple[Text, Text]:
    """The line's left part and its right (the phase), in ``width`` cells when they fit."""
    name = descriptor.rpartition("/")[2]
    attempts = (
        (True, "long", phase),
        (True, "short", phase),
        (True, "short", short_phase),
        (False, "short", short_phase),
        (False, "none", short_phase),
    )
    for brand, digest, right in attempts:
        without_path = _left(state, "", brand=brand, digest=digest)
        room = width - cell_len(without_path.plain) - cell_len(right.plain) - cell_len(GAP)
        # Worth showing: the whole path, or the file name and some of where it is.
        enough = min(cell_len(descriptor), cell_len(name) + _SOME_OF_THE_PATH)
        if room >= enough or (brand, digest) == (False, "none"):
            path = elide_middle(descriptor, max(room, 0))
            return _left(state, path, brand=brand, digest=digest), right
    raise AssertionError("unreachable")  # the last attempt always returns


def _left(state: State, path: str, *, brand: bool, digest: str) -> Text:
    left = Text.assemble(("connect-dev", "bold"), GAP) if brand else Text()
    left.append(state.key or "no valid descriptor yet", "bold" if state.key else "dim")
    left.append(GAP)
    left.append(path)
    if state.digest and digest != "none":
        stale = state.descriptor_valid is False
        if digest == "long":
            left.append("  digest ", "dim")
            left.append(state.digest, "dim" if stale else "")
        else:
            left.append(GAP)
            left.append(state.digest[:_SHORT_DIGEST], "dim" if stale else "")
        if stale:
            left.append(" (last good)", "dim")
    left.append(GAP)
    left.append_text(validity(state))
    if state.restart_needed:
        left.append(GAP)
        left.append("⟳ restart needed", "bold yellow")
        if digest == "long":  # room for which keys of connect-dev.toml wait for it
            left.append(f" ({', '.join(state.restart_needed)})", "yellow")
    return left


def validity(state: State) -> Text:
    if state.descriptor_valid is None:
        return Text("… loading", "dim")
    if state.descriptor_valid:
        return Text("✔ valid", "green")
    count = len(state.descriptor_errors)
    return Text(f"✖ invalid: {count} problem{'s' if count != 1 else ''}", "bold red")
