"""What quitting is doing, host by host, until every uninstall has an outcome."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from .format import SPINNER
from .model import Teardown, TeardownStep

__all__ = ["TeardownPanel"]


class TeardownPanel(Static):
    DEFAULT_CSS = """
    TeardownPanel {
        display: none;
        height: auto;
        border: round $warning;
        border-title-color: $warning;
        border-title-style: bold;
        padding: 0 1;
    }
    TeardownPanel.-active {
        display: block;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Quitting: uninstalling from every host"
        self.border_subtitle = "ctrl+c again quits at once; `connect-dev down` removes what is left"

    def show(self, steps: list[TeardownStep], stopped: bool, frame: int) -> None:
        self.add_class("-active")
        table = Table.grid(padding=(0, 2))
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True, style="bold")
        table.add_column(overflow="fold")
        spinner = SPINNER[frame % len(SPINNER)]
        for step in steps:
            table.add_row(*_row(step, spinner))
        if stopped:
            table.add_row(Text("✔", "green"), "done", Text("tunnel and proxy closed", "dim"))
        self.update(table)


def _row(step: TeardownStep, spinner: str) -> tuple[Text, str, Text]:
    match step.step:
        case Teardown.UNINSTALLED:
            return Text("✔", "green"), step.host, Text(f"uninstalled {step.detail}".rstrip())
        case Teardown.KEPT:
            kept = f"kept {step.detail} installed (connect-dev down removes it)"
            return Text("✔", "green"), step.host, Text(kept.replace("  ", " "))
        case Teardown.FAILED:
            return Text("✖", "bold red"), step.host, Text(f"uninstall failed: {step.detail}", "red")
        case Teardown.NOTHING:
            return Text("·", "dim"), step.host, Text("nothing to uninstall", "dim")
    return Text(spinner, "yellow"), step.host, Text("uninstalling…", "yellow")
