"""The tunnel line: provider, public URL, whether it is up, and the ngrok agent's inspector."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from ..state import State

__all__ = ["TunnelBar"]


class TunnelBar(Static):
    DEFAULT_CSS = """
    TunnelBar {
        height: 1;
        padding: 0 1;
        background: $panel;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown: Text | None = None

    def show(self, state: State) -> None:
        text = describe(state)
        if text == self._shown:
            return
        self._shown = text
        self.update(text)


def describe(state: State) -> Text:
    text = Text.assemble(("tunnel", "bold"), "       ")
    if not state.tunnel_url:
        text.append("○ opening…", "dim")
        return text
    text.append(state.tunnel_provider or "?")
    text.append("  ")
    text.append(state.tunnel_url, "underline" if state.tunnel_open else "dim")
    text.append("  ")
    if state.tunnel_open:
        text.append("● up", "green")
        if state.tunnel_reopened:
            times = "once" if state.tunnel_reopened == 1 else f"{state.tunnel_reopened} times"
            text.append(f"  reopened {times}", "yellow")
    elif state.tunnel_closed_reason == "shutdown":
        text.append("○ closed", "dim")
    else:
        text.append(f"✖ down ({state.tunnel_closed_reason})", "bold red")
    if state.tunnel_inspector_url:
        # Last: on a narrow terminal the tunnel's own health matters more.
        text.append("  inspector ", "dim")
        text.append(state.tunnel_inspector_url, "underline" if state.tunnel_open else "dim")
    return text
