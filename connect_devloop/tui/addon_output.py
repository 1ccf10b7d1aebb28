"""The add-on panel: what the add-on server ``up`` runs (``[addon] command``) prints, with the
time and the stream of each line, and its starts, restarts and exits between them.

Hidden until there is something to show: an add-on ``up`` started, or a line of its output.
The title says how it is doing (pid, whether it answers, restarts, the last crash). Bounded
like the event log; the lines come rate-limited from the daemon (``addon_process``).
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.widgets import RichLog

from ..events import AddonExited, AddonOutput, AddonRestarting, AddonStarted, AddonStatus, Event
from ..render.text import addon_exit_status
from ..state import AddonState, State
from .format import clock

__all__ = ["MAX_ADDON_LINES", "AddonOutputPanel", "addon_title"]

MAX_ADDON_LINES = 1000


class AddonOutputPanel(RichLog):
    DEFAULT_CSS = """
    AddonOutputPanel {
        height: 1fr;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
        scrollbar-size-vertical: 1;
        padding: 0 1;
    }
    AddonOutputPanel:focus {
        border: round $accent;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(max_lines=MAX_ADDON_LINES, wrap=True, markup=False, min_width=20, id=id)
        self.border_title = "Add-on"
        self.display = False
        self._title = ""

    def show(self, state: State, events: Iterable[Event]) -> None:
        for event in events:
            line = panel_line(event)
            if line is not None:
                self.write(line, expand=True)
                self.display = True
        if state.addon.command:
            self.display = True
        title = addon_title(state.addon)
        if title != self._title:
            self._title = title
            self.border_title = title


def panel_line(event: Event) -> Text | None:
    """The panel's line for ``event``; None for events that are not the add-on's."""
    when = Text(clock(event.ts) + " ", "dim")
    match event:
        case AddonOutput(stream=stream, line=line, dropped=dropped):
            if dropped:
                return Text.assemble(when, ("    ", ""), (line, "dim italic"))
            tag = ("err ", "red") if stream == "stderr" else ("out ", "dim")
            return Text.assemble(when, tag, line)
        case AddonStarted(pid=pid, command=command):
            return Text.assemble(when, (f"──── started {command} (pid {pid})", "cyan"))
        case AddonRestarting(detail=detail, reason=reason):
            return Text.assemble(when, (f"──── restarting: {detail or reason}", "cyan"))
        case AddonExited(reason="crashed", restart_in=restart_in) as exited:
            again = f"; starting it again in {restart_in:g} s" if restart_in is not None else ""
            return Text.assemble(
                when, (f"──── CRASHED: {addon_exit_status(exited)}{again}", "bold red")
            )
        case AddonExited(reason=reason, pid=pid, forced=forced):
            how = " (killed after the stop timeout)" if forced else ""
            what = "stopped for the restart" if reason == "restart" else "stopped"
            return Text.assemble(when, (f"──── {what} (pid {pid}){how}", "cyan"))
        case AddonStatus(answering=answering, url=url, detail=detail, seconds=seconds):
            if answering:
                after = f" after {seconds:.1f} s" if seconds else ""
                return Text.assemble(when, (f"──── answers at {url}{after}", "green"))
            return Text.assemble(when, (f"──── NOT answering at {url}: {detail}", "yellow"))
    return None


def addon_title(addon: AddonState) -> str:
    """``Add-on · pid 4242 · ● answering · restarted 2 times``."""
    parts = ["Add-on"]
    if addon.running and addon.pid is not None:
        parts.append(f"pid {addon.pid}")
        if addon.answering:
            parts.append("● answering")
        elif addon.answering is False:
            parts.append("✖ not answering")
        else:
            parts.append("⠿ starting")
    elif addon.restarting:
        parts.append(f"restarting ({addon.restarting})")
    elif addon.last_exit is not None:
        parts.append(f"✖ exited ({addon_exit_status(addon.last_exit)})")
    elif addon.answering is False:
        parts.append("✖ not answering")
    if addon.restarts:
        parts.append(f"restarted {addon.restarts} time{'s' if addon.restarts != 1 else ''}")
    return " · ".join(parts)
