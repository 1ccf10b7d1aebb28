"""``Host``: the emulated site as its routes see it.

``site.py`` builds the site (``EmulatedHost``) from the route modules; the route modules know
it only through this protocol, so none of them depends on the module that assembles them. Its
members are what the routes read and call: addresses, state, switches and the UPM token store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import asyncio

    import aiohttp

    from .forge import ForgeState
    from .install import InstallTask
    from .keys import SigningKey
    from .lifecycle import AddonResponse, Installation
    from .product import Product
    from .record import HostRecord
    from .rest_auth import Sessions
    from .settings import HostSettings
    from .webhooks import WebhookDispatcher

__all__ = ["Host"]


class Host(Protocol):
    """One running Jira or Confluence site (``site.EmulatedHost``)."""

    settings: HostSettings
    record: HostRecord
    signing_key: SigningKey
    client_key: str
    origin: str
    installations: dict[str, Installation]
    tenant_secrets: dict[str, str]
    tasks: dict[str, InstallTask]
    install_lock: asyncio.Lock
    forge: ForgeState
    webhooks: WebhookDispatcher
    product: Product
    sessions: Sessions

    @property
    def base_url(self) -> str: ...

    @property
    def keys_url(self) -> str: ...

    @property
    def upm_url(self) -> str: ...

    @property
    def session(self) -> aiohttp.ClientSession: ...

    def describe(self) -> dict[str, Any]: ...

    def fail_next(self, count: int, status: int = ..., message: str = ...) -> None: ...

    def set_dev_mode(self, on: bool) -> None: ...

    def set_install_delay(self, ms: int) -> None: ...

    def set_uploads_enabled(self, on: bool) -> None: ...

    def set_require_signed_install(self, on: bool) -> None: ...

    def set_descriptor_installs_refused(self, on: bool) -> None: ...

    def set_forge_deploy_delay(self, ms: int) -> None: ...

    def set_forge_reject_credentials(self, on: bool) -> None: ...

    def set_reinstall_secret(self, policy: str) -> None: ...

    def forge_fail_next(self, count: int, message: str | None = None) -> None: ...

    def reset(self) -> None: ...

    def take_injected_failure(self) -> tuple[int, str] | None: ...

    def issue_token(self, user: str) -> str: ...

    def consume_token(self, token: str | None, user: str) -> bool: ...

    def start_install(self, task: InstallTask) -> None: ...

    async def send_request(
        self,
        key: str,
        path: str,
        *,
        method: str = "GET",
        query: Mapping[str, str | Sequence[str]] | None = None,
        style: str = "iframe",
        body: Any = None,
    ) -> AddonResponse: ...
