"""One emulated site: its state, its switches, and the real aiohttp server that serves it."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web

from .control import control_routes
from .forge import ForgeState, forge_routes, forge_site
from .install import InstallTask, run_install
from .keys import SigningKey, key_server_routes
from .lifecycle import AddonResponse, Installation, send_signed_request
from .product import Product
from .record import HostRecord
from .rest import rest_routes
from .rest_auth import Sessions
from .settings import DEFAULT_FAILURE_MESSAGE, REINSTALL_SECRETS, HostSettings
from .ui import ui_routes
from .upm import make_guard, upm_routes
from .webhooks import WebhookDispatcher

__all__ = ["EmulatedHost", "run_host", "serve_forever"]

logger = logging.getLogger(__name__)

TOKEN_LIFETIME_S = 300.0
# Requests still running at shutdown get this long before they are cancelled.
SHUTDOWN_GRACE_S = 1.0


class EmulatedHost:
    """One Jira or Confluence site. Start it with ``run_host``.

    ``settings`` is this site's own copy; the switches (``set_dev_mode`` ...) change it and
    ``reset`` restores it.
    """

    DEFAULT_FAILURE_MESSAGE = DEFAULT_FAILURE_MESSAGE

    def __init__(self, settings: HostSettings) -> None:
        self._initial_settings = dataclasses.replace(settings)
        self.settings = dataclasses.replace(settings)
        self.record = HostRecord()
        self.signing_key = SigningKey.generate()
        self.client_key = settings.client_key or _new_client_key(settings.flavour, settings.product)
        self.origin = ""
        self.installations: dict[str, Installation] = {}
        # key -> the last sharedSecret given to that add-on, kept after an uninstall (install.py).
        self.tenant_secrets: dict[str, str] = {}
        self.tasks: dict[str, InstallTask] = {}
        self.install_lock = asyncio.Lock()
        # What Forge's servers know of this site's apps (forge.py).
        self.forge = ForgeState()
        # The webhooks installed add-ons declare, sent when the product changes (webhooks.py).
        self.webhooks = WebhookDispatcher(self)
        # The product data (projects, issues...; spaces, pages) its REST API and pages change,
        # and the browser sessions of its users (product.py, rest.py).
        accounts = {name: True for name in settings.users}
        accounts.update({name: False for name in settings.non_admins})
        self.product = Product(settings.product, accounts, base_url=lambda: self.base_url)
        self.sessions = Sessions()
        self._tokens: dict[str, tuple[str, float]] = {}
        self._failures_left = 0
        self._failure_status = 500
        self._failure_message = self.DEFAULT_FAILURE_MESSAGE
        self._background: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None

    # --- addresses --------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The product base a user puts in config: origin + context path."""
        return self.origin + self.settings.context_path

    @property
    def keys_url(self) -> str:
        """Where add-ons fetch install-signing keys (ACE: ``CONNECT_KEYS_CDN_URL``)."""
        return f"{self.origin}/keys"

    @property
    def upm_url(self) -> str:
        return f"{self.base_url}/rest/plugins/1.0/"

    @property
    def session(self) -> aiohttp.ClientSession:
        """The site's own HTTP client, for descriptor fetches and callbacks."""
        if self._session is None:
            raise RuntimeError("the emulated host is not running; use run_host()")
        return self._session

    def describe(self) -> dict[str, Any]:
        """The site's addresses and switches, without passwords."""
        return {
            "origin": self.origin,
            "base_url": self.base_url,
            "keys_url": self.keys_url,
            "kid": self.signing_key.kid,
            "client_key": self.client_key,
            "product": self.settings.product,
            "flavour": self.settings.flavour,
            "context_path": self.settings.context_path,
            "dev_mode": self.settings.dev_mode,
            "uploads_enabled": self.settings.uploads_enabled,
            "require_signed_install": self.settings.require_signed_install,
            "descriptor_installs_refused": self.settings.descriptor_installs_refused,
            "install_delay_ms": self.settings.install_delay_ms,
            "fail_next": self._failures_left,
            "fail_status": self._failure_status,
            "installed": sorted(self.installations),
            "forge_site": forge_site(self),
            "forge_deploy_delay_ms": self.settings.forge_deploy_delay_ms,
            "forge_reject_credentials": self.settings.forge_reject_credentials,
            "forge_fail_next": self.forge.failures_left,
            "reinstall_secret": self.settings.reinstall_secret,
        }

    # --- switches ---------------------------------------------------------------------------

    def fail_next(
        self, count: int, status: int = 500, message: str = DEFAULT_FAILURE_MESSAGE
    ) -> None:
        """Make the next ``count`` UPM REST calls answer ``status`` with ``errorMessage``."""
        self._failures_left = count
        self._failure_status = status
        self._failure_message = message

    def set_dev_mode(self, on: bool) -> None:
        self.settings.dev_mode = on

    def set_install_delay(self, ms: int) -> None:
        self.settings.install_delay_ms = ms

    def set_uploads_enabled(self, on: bool) -> None:
        self.settings.uploads_enabled = on

    def set_require_signed_install(self, on: bool) -> None:
        self.settings.require_signed_install = on

    def set_descriptor_installs_refused(self, on: bool) -> None:
        """Refuse descriptor-URL installs with Cloud's 2026 message (FORGE.md §1)."""
        self.settings.descriptor_installs_refused = on

    def set_forge_deploy_delay(self, ms: int) -> None:
        self.settings.forge_deploy_delay_ms = ms

    def set_forge_reject_credentials(self, on: bool) -> None:
        self.settings.forge_reject_credentials = on

    def set_reinstall_secret(self, policy: str) -> None:
        """``"new"``: every install event issues a new sharedSecret; ``"keep"``: older Connect."""
        if policy not in REINSTALL_SECRETS:
            raise ValueError(f"reinstall_secret must be one of {', '.join(REINSTALL_SECRETS)}")
        self.settings.reinstall_secret = policy

    def forge_fail_next(self, count: int, message: str | None = None) -> None:
        """Make the next ``count`` calls of the emulated Forge CLI fail as a server error."""
        self.forge.failures_left = count
        if message is not None:
            self.forge.failure_message = message

    def reset(self) -> None:
        """Back to a fresh site: nothing installed, no history, no faults, settings as started.

        Installed add-ons are dropped without callbacks (the emulator's choice: a reset is a
        test's clean slate, not an uninstall). The address, keys and clientKey stay.
        """
        for task in self._background:
            task.cancel()
        port, bind = self.settings.port, self.settings.bind
        self.settings = dataclasses.replace(self._initial_settings, port=port, bind=bind)
        self.installations.clear()
        self.tenant_secrets.clear()
        self.tasks.clear()
        self._tokens.clear()
        self.fail_next(0)
        self.forge.clear()
        self.webhooks.reset()
        self.product.seed()
        self.sessions.clear()
        self.record.clear()
        logger.info("reset")

    # --- used by the routes -----------------------------------------------------------------

    def take_injected_failure(self) -> tuple[int, str] | None:
        if self._failures_left <= 0:
            return None
        self._failures_left -= 1
        return self._failure_status, self._failure_message

    def issue_token(self, user: str) -> str:
        now = time.monotonic()
        self._tokens = {t: v for t, v in self._tokens.items() if v[1] > now}
        # UPM's tokens are signed decimal longs.
        token = str(secrets.randbits(64) - 2**63)
        self._tokens[token] = (user, now + TOKEN_LIFETIME_S)
        return token

    def consume_token(self, token: str | None, user: str) -> bool:
        """True once for a live token issued to ``user``; a token never works twice."""
        if token is None:
            return False
        issued = self._tokens.pop(token, None)
        return issued is not None and issued[0] == user and issued[1] > time.monotonic()

    def start_install(self, task: InstallTask) -> None:
        self.tasks[task.id] = task
        background = asyncio.create_task(run_install(self, task), name=f"install-{task.id}")
        self._background.add(background)
        background.add_done_callback(self._background.discard)

    # --- for tests and the CLI --------------------------------------------------------------

    # The public API takes `timeout` so a test states its bound in one call.
    async def wait_for(
        self,
        predicate: Callable[[HostRecord], bool],
        timeout: float,  # noqa: ASYNC109
    ) -> None:
        """Return once ``predicate(record)`` holds; raise ``TimeoutError`` after ``timeout`` s."""
        await self.record.wait_until(predicate, timeout)

    async def send_request(
        self,
        key: str,
        path: str,
        *,
        method: str = "GET",
        query: Mapping[str, str | Sequence[str]] | None = None,
        style: str = "iframe",
        body: Any = None,
    ) -> AddonResponse:
        """Send the installed add-on ``key`` an HS256-signed request, as the product would load
        ``path`` in an iframe (``style="iframe"``, ``?jwt=``) or deliver a webhook
        (``style="webhook"``, ``Authorization: JWT``), with the tenant's current sharedSecret.

        ``path`` is relative to the add-on's ``baseUrl``. Raises ``LookupError`` when ``key`` is
        not installed.
        """
        installation = self.installations.get(key)
        if installation is None:
            raise LookupError(f"{key!r} is not installed on {self.base_url}")
        return await send_signed_request(
            self, installation, path, method=method, query=query, style=style, body=body
        )

    # --- running ----------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[make_guard(self)])
        app.add_routes(upm_routes(self))
        app.add_routes(key_server_routes(self.signing_key))
        app.add_routes(control_routes(self))
        app.add_routes(forge_routes(self))
        # The site's pages (ui/): where installed apps render, with the Connect bridge.
        app.add_routes(ui_routes(self))
        app.add_routes(rest_routes(self))
        return app

    async def start(self) -> None:
        # force_close: a keep-alive connection to an add-on that restarted would fail the next
        # callback for a reason no real host shows.
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
        runner = web.AppRunner(self.build_app(), access_log=None, shutdown_timeout=SHUTDOWN_GRACE_S)
        await runner.setup()
        self._runner = runner
        try:
            site = web.TCPSite(runner, self.settings.bind, self.settings.port)
            await site.start()
        except BaseException:
            await self.close()
            raise
        port = runner.addresses[0][1]
        self.settings.port = self._initial_settings.port = port
        self.origin = f"http://{_url_host(self.settings.bind)}:{port}"
        self.webhooks.start()
        logger.info(
            "emulated %s %s at %s", self.settings.flavour, self.settings.product, self.base_url
        )

    async def close(self) -> None:
        await self.webhooks.close()
        background = list(self._background)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None


@asynccontextmanager
async def run_host(
    settings: HostSettings | None = None, **overrides: Any
) -> AsyncIterator[EmulatedHost]:
    """Run an emulated site on a real loopback server for the duration of the block.

    ``overrides`` replace fields of ``settings`` (``run_host(context_path="/wiki")``).
    """
    host = EmulatedHost(dataclasses.replace(settings or HostSettings(), **overrides))
    await host.start()
    try:
        yield host
    finally:
        await host.close()


async def serve_forever(
    settings: HostSettings,
    *,
    on_ready: Callable[[EmulatedHost], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run a site until ``stop`` is set or the task is cancelled (``connect-dev host``);
    ``on_ready`` gets it once it listens. The site closes as ``run_host`` closes it."""
    async with run_host(settings) as host:
        if on_ready is not None:
            on_ready(host)
        await (stop or asyncio.Event()).wait()


def _new_client_key(flavour: str, product: str) -> str:
    # Cloud clientKeys are UUIDs; Server ones read like "jira:12345678".
    if flavour == "cloud":
        return str(uuid.uuid4())
    return f"{product}:{secrets.randbelow(10**8):08d}"


def _url_host(bind: str) -> str:
    # A wildcard bind is reached through loopback from this machine.
    if bind in ("", "0.0.0.0"):
        return "127.0.0.1"
    if bind == "::":
        return "[::1]"
    return f"[{bind}]" if ":" in bind else bind
