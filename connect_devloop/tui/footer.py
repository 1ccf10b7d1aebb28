"""The footer: every key, and on a narrow terminal the ones that matter most.

Below ``WIDE`` columns the footer leaves out the keys marked optional (they still work, and
docs/tui.md lists them), so that ``q Quit`` never falls off the end of an 80-column line.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

__all__ = ["OPTIONAL_ACTIONS", "DashboardFooter"]

# The requests' "p Replay" too: "/ Filter" stays, and the card (Enter) shows its replay keys in
# a footer of its own.
OPTIONAL_ACTIONS = frozenset({"open_host", "copy_url", "focus_log", "replay_selected"})


class DashboardFooter(Footer):
    """Marks the optional keys ``-optional``; the app's CSS hides them on a ``-narrow`` screen
    (a widget's own CSS is scoped to it, so it cannot look at the screen's classes)."""

    def compose(self) -> ComposeResult:
        for widget in super().compose():
            if isinstance(widget, FooterKey) and widget.action in OPTIONAL_ACTIONS:
                widget.add_class("-optional")
            yield widget
