"""The hosts table: one row per configured host, updated in place as events arrive."""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.widgets import DataTable

from ..config import HostConfig
from ..state import HostState, HostStatus, State
from .format import duration, host_state_label, reason_label, short_url, truncate
from .model import Tenant

__all__ = ["COLUMNS", "HostsTable"]

# (key, label, width). The widths add up, with padding and border, to 120 columns.
COLUMNS = (
    ("host", "Host", 11),
    ("product", "Product", 10),
    ("url", "URL", 22),
    ("state", "State", 16),
    ("revision", "Rev", 7),
    ("took", "Took", 6),
    ("reason", "Reason", 10),
    ("enabled", "Enabled", 8),
    ("tenant", "Tenant", 10),
)
_STATE_STYLES = {
    HostState.INSTALLING: "yellow",
    HostState.INSTALLED: "green",
    HostState.FAILED: "bold red",
    HostState.UNINSTALLED: "dim",
    HostState.UNINSTALL_FAILED: "bold red",
    HostState.PENDING: "dim",
}


class HostsTable(DataTable[Text]):
    DEFAULT_CSS = """
    HostsTable {
        height: auto;
        max-height: 12;
    }
    """
    # Focused on the table, `r` means the selected host; elsewhere the app's `r` means all.
    BINDINGS = [
        Binding("r", "app.reinstall_selected", "Re-install host"),
        Binding("enter", "select_cursor", "Details"),
    ]

    def __init__(self, hosts: tuple[HostConfig, ...], *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self._configs = {host.name: host for host in hosts}
        self._shown: dict[str, tuple[Text, ...]] = {}

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            self.add_column(label, width=width, key=key)

    @property
    def selected_host(self) -> str | None:
        if self.row_count == 0:
            return None
        row_key = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0)).row_key
        return row_key.value

    def config_of(self, name: str) -> HostConfig | None:
        return self._configs.get(name)

    def show(
        self, state: State, tenants: Mapping[str, Tenant], frame: int, now: float | None = None
    ) -> None:
        """``now``: wall-clock seconds, for how long a host's Forge CLI step has run."""
        for name, status in state.hosts.items():
            cells = self._cells(status, state.digest, tenants.get(name), frame, now)
            if name not in self._shown:
                self.add_row(*cells, key=name)
            elif cells != self._shown[name]:
                for (key, _, _), before, after in zip(
                    COLUMNS, self._shown[name], cells, strict=True
                ):
                    if before != after:
                        self.update_cell(name, key, after)
            self._shown[name] = cells

    def _cells(
        self,
        status: HostStatus,
        digest: str,
        tenant: Tenant | None,
        frame: int,
        now: float | None,
    ) -> tuple[Text, ...]:
        config = self._configs.get(status.name)
        stale = status.state == HostState.INSTALLED and digest and status.digest != digest
        return (
            Text(truncate(status.name, 11), "bold"),
            Text(config.product if config else ""),
            Text(truncate(short_url(config.url), 22) if config else "not in config", "dim"),
            Text(host_state_label(status, frame, now), _state_style(status)),
            Text(status.digest[:7], "yellow" if stale else ""),
            Text(duration(status.duration_ms)),
            Text(reason_label(status.reason)),
            _enabled(status),
            _tenant(tenant),
        )


def _state_style(status: HostStatus) -> str:
    if status.step:
        return "yellow"
    if status.state == HostState.INSTALLED and status.enabled is False:
        return "bold yellow"
    return _STATE_STYLES.get(status.state, "")


def _enabled(status: HostStatus) -> Text:
    if status.enabled is None:
        return Text("")
    return Text("enabled") if status.enabled else Text("DISABLED", "bold yellow")


def _tenant(tenant: Tenant | None) -> Text:
    if tenant is None or not tenant.active:
        return Text("")
    return Text(truncate(tenant.client_key, 10), "" if tenant.verified else "yellow")
