"""The modal card behind Enter: one renderable, scrollable, closed with Esc or Enter.

A modal screen hides the keys of the screens under it (the app's too), so the card has a
footer of its own: it shows what works on the card, and only that."""

from __future__ import annotations

from rich.console import RenderableType
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

__all__ = ["DetailScreen"]


class DetailScreen(ModalScreen[None]):
    # Subclasses (HostDetail, RequestDetail) match this type selector too.
    DEFAULT_CSS = """
    DetailScreen {
        align: center middle;
    }
    DetailScreen > VerticalScroll {
        width: 90%;
        max-width: 110;
        height: auto;
        max-height: 90%;
        border: round $accent;
        border-title-style: bold;
        padding: 0 1;
        background: $surface;
    }
    """
    BINDINGS = [Binding("escape,enter", "dismiss", "Close")]

    def __init__(self, title: str, body: RenderableType) -> None:
        super().__init__()
        self._title = title
        self._body = body

    def compose(self) -> ComposeResult:
        with VerticalScroll() as box:
            box.border_title = self._title
            box.border_subtitle = "esc to close"
            yield Static(self._body)
        yield Footer()

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
