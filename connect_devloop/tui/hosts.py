"""The hosts table: one row per configured host, updated in place as events arrive."""

from __future__ import annotations

from collections.abc import Mapping

from rich.cells import cell_len
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.widgets import DataTable

from ..config import HostConfig
from ..state import HostState, HostStatus, State
from .format import duration, host_state_label, reason_label, short_url, truncate
from .layout import ESSENTIAL, Column, fit_columns
from .model import Tenant

__all__ = ["COLUMNS", "HostsTable"]

# Sized to their content; on a narrow terminal the lowest `keep` goes first. The host's name, its
# state and why it last changed always stay (the error itself is under the table, in full).
COLUMNS = (
    Column("host", "Host", keep=ESSENTIAL),
    Column("product", "Product", keep=40),
    Column("url", "URL", keep=60, maximum=40),
    Column("state", "State", keep=ESSENTIAL),
    Column("revision", "Rev", keep=50),
    Column("took", "Took", keep=30),
    Column("enabled", "Enabled", keep=20),
    Column("tenant", "Tenant", keep=10, maximum=10),
    Column("reason", "Reason", keep=90, fill=True),
)
_KEYS = tuple(column.key for column in COLUMNS)
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
        overflow-x: hidden;  /* the columns are fitted to the width */
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
        self._shown: dict[str, tuple[Text, ...]] = {}  # every column's cell, before it is cut
        self._layout: tuple[tuple[str, int], ...] = ()

    def on_mount(self) -> None:
        self._relayout()

    def on_resize(self, _: events.Resize) -> None:
        self._relayout()

    @property
    def shown_columns(self) -> tuple[str, ...]:
        return tuple(key for key, _ in self._layout)

    def _relayout(self) -> None:
        """Columns for the width the table has now; rebuilt only when that changes them."""
        content = {
            key: max((cell_len(cells[index].plain) for cells in self._shown.values()), default=0)
            for index, key in enumerate(_KEYS)
        }
        # Before the first layout the table has no size yet: assume a 120-column terminal.
        available = self.scrollable_content_region.width or 118
        layout = fit_columns(COLUMNS, content, available)
        if layout == self._layout:
            return
        cursor = self.cursor_row
        self.clear(columns=True)
        self._layout = layout
        labels = {column.key: column.label for column in COLUMNS}
        for key, width in layout:
            self.add_column(labels[key], width=width, key=key)
        for name, cells in self._shown.items():
            self.add_row(*self._fitted(cells), key=name)
        if self.row_count:
            self.move_cursor(row=min(cursor, self.row_count - 1), animate=False)

    def _fitted(self, cells: tuple[Text, ...]) -> list[Text]:
        widths = dict(self._layout)
        return [
            _cut(cell, widths[key]) for key, cell in zip(_KEYS, cells, strict=True) if key in widths
        ]

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
        widths = dict(self._layout)
        grown = False
        for gone in [name for name in self._shown if name not in state.hosts]:
            del self._shown[gone]  # removed from connect-dev.toml while running
            self.remove_row(gone)
        for name, status in state.hosts.items():
            cells = self._cells(status, state.digest, tenants.get(name), frame, now)
            before = self._shown.get(name)
            self._shown[name] = cells
            if before is None:
                self.add_row(*self._fitted(cells), key=name)
                grown = True
                continue
            for key, old, new in zip(_KEYS, before, cells, strict=True):
                if old == new:
                    continue
                if key in widths:
                    self.update_cell(name, key, _cut(new, widths[key]))
                grown = grown or cell_len(new.plain) > cell_len(old.plain)
        if grown:
            self._relayout()  # wider content may fit, or push a column out

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
        return (  # in the order of COLUMNS
            Text(status.name, "bold"),
            Text(config.product if config else ""),
            Text(short_url(config.url) if config else "not in config", "dim"),
            Text(host_state_label(status, frame, now), _state_style(status)),
            Text(status.digest[:7], "yellow" if stale else ""),
            Text(duration(status.duration_ms)),
            _enabled(status),
            _tenant(tenant),
            Text(reason_label(status.reason)),
        )


def _cut(cell: Text, width: int) -> Text:
    if cell_len(cell.plain) <= width:
        return cell
    return Text(truncate(cell.plain, width), cell.style)


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
