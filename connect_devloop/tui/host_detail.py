"""One host in full: where it is, what it has installed, the tenant, and the last error."""

from __future__ import annotations

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from ..config import HostConfig
from ..render.text import addon_refusal
from ..state import HostStatus
from .detail import DetailScreen
from .format import duration, host_state_label, reason_label
from .model import Tenant

__all__ = ["HostDetail", "host_renderable"]


class HostDetail(DetailScreen):
    def __init__(
        self, status: HostStatus, config: HostConfig | None, tenant: Tenant | None
    ) -> None:
        super().__init__(status.name, host_renderable(status, config, tenant))


def host_renderable(
    status: HostStatus, config: HostConfig | None, tenant: Tenant | None
) -> RenderableType:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="cyan", no_wrap=True)
    table.add_column(overflow="fold")
    if config is not None and config.registrar == "forge":
        table.add_row("site", config.site or config.url)
        table.add_row("product", config.product)
        table.add_row("registrar", "forge (the Forge CLI's own login)")
    elif config is not None:
        table.add_row("URL", config.url)
        table.add_row("product", config.product)
        table.add_row("user", config.username)
    else:
        table.add_row("URL", Text("not in connect-dev.toml (found in the ledger)", "yellow"))
    table.add_row("state", host_state_label(status))
    table.add_row("add-on key", status.key or "—")
    table.add_row("revision", status.digest or "—")
    table.add_row("last install", duration(status.duration_ms) or "—")
    table.add_row("reason", reason_label(status.reason) if status.reason else "—")
    enabled = {None: "—", True: "enabled", False: "DISABLED on the host"}[status.enabled]
    table.add_row("enabled", enabled)
    if tenant is None:
        table.add_row("tenant", Text("no lifecycle callback seen yet", "dim"))
    else:
        check = "verified" if tenant.verified else "NOT verified"
        table.add_row("tenant", f"{tenant.client_key}  ({tenant.event} callback, {check})")
        if not tenant.verified and tenant.reason:
            table.add_row("", Text(tenant.reason, "yellow"))
        refused = addon_refusal(tenant.addon_status, tenant.addon_error)
        if refused:
            table.add_row("", Text(f"NOT accepted: {refused}", "red"))
    if status.error:
        table.add_row("last error", Text(status.error, "red"))
        if status.hint:
            table.add_row("hint", status.hint)
    return table
