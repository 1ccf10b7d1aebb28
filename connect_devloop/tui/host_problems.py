"""Each host's last error with its hint, in full, under the hosts table (hidden when none)."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual.widgets import Static

from ..state import HostState, State

__all__ = ["HostProblems"]


class HostProblems(Static):
    DEFAULT_CSS = """
    HostProblems {
        display: none;
        height: auto;
        max-height: 10;
        padding: 0 1;
        border-top: solid $panel-lighten-2;
    }
    HostProblems.-problems {
        display: block;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown: tuple[Text, ...] | None = None

    def show(self, state: State) -> None:
        lines = tuple(problem_lines(state))
        if lines == self._shown:
            return
        self._shown = lines
        self.set_class(bool(lines), "-problems")
        self.update(Group(*lines))


def problem_lines(state: State) -> list[Text]:
    lines = []
    for name, host in state.hosts.items():
        if host.error:
            what = "uninstall failed" if host.state == HostState.UNINSTALL_FAILED else "failed"
            line = Text.assemble(("✖ ", "bold red"), (name, "bold"), f" {what}: ", host.error)
            if host.hint:
                line.append("\n  hint: ", "bold")
                line.append(host.hint)
            lines.append(line)
        elif host.state == HostState.INSTALLED and host.enabled is False:
            lines.append(
                Text.assemble(
                    ("⚠ ", "bold yellow"),
                    (name, "bold"),
                    f" has {host.key or 'the add-on'} installed but DISABLED: "
                    "enable it in Manage apps (o opens it).",
                )
            )
    return lines
