"""The Forge side of an emulated site: what ``forge deploy``, ``forge install``, ``forge install
list`` and ``forge uninstall`` reach on Atlassian's servers, played by the site itself for the
emulated Forge CLI (``connect_devloop/forge/standin.py``), under ``{origin}/_emulator/forge``.

An emulation, not Forge's API (that one is GraphQL): a small JSON API carrying what the CLI
needs. A deploy stores the manifest, its ``${VARIABLES}`` already resolved by the CLI as
``forge deploy`` resolves them, per app and environment as a new version: major when a scope or
a remote is added or a remote's ``baseUrl`` changes, minor otherwise. A minor version reaches the
installations of its major at once (no callback); a major one waits for ``forge install
--upgrade``, the approval Cloud asks of a site admin. Installing converts the version's Connect
parts back into a descriptor (``forge_connect``) and installs it with the code of a UPM install
(``install.install_document``): the RS256-signed ``installed`` callback to the remote's
``baseUrl``, the host record, the installed add-on. Uninstalling sends ``uninstalled`` the same way.

Errors answer ``{"error": {"code", "message"}, "request_id"}``. Codes the real CLI knows keep
their names (``APP_ALREADY_INSTALLED``, ``CONNECT_PLUGIN_FAILED_DESCRIPTOR_VALIDATION``); the
others are the emulator's choice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from aiohttp import web

from ..forge.manifest_parts import connect_key_of, remote_base_urls, scopes_of
from .control import json_object, refuse_remote
from .forge_connect import FAILED_DESCRIPTOR_VALIDATION, ConnectModulesInvalid, connect_descriptor
from .install import InstallFailure, install_document, remove_installation
from .record import FailedInstall

if TYPE_CHECKING:
    from .types import Host

__all__ = ["ForgeState", "forge_routes", "forge_site"]

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.Response]]
Action = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]

# The emulator's choice: every app id with a UUID is registered to whoever is logged in; the
# placeholders a converter writes before `forge register` (to-be-generated, <uuid>, zeros) are not.
REGISTERED_APP_ID: Final = re.compile(
    r"^ari:cloud:ecosystem::app/(?!0{8}-)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
    re.IGNORECASE,
)
ENVIRONMENT_TYPES: Final = {"staging": "STAGING", "production": "PRODUCTION"}
DEFAULT_FAILURE_MESSAGE: Final = "Emulated Forge failure (forge_fail_next)"


@dataclass
class ForgeVersion:
    """One deployment to an environment: ``version`` is ``"<major>.<minor>.0"``."""

    major: int
    minor: int
    manifest: dict[str, Any]
    deployed_at: float = field(default_factory=time.time)

    @property
    def version(self) -> str:
        return f"{self.major}.{self.minor}.0"

    @property
    def scopes(self) -> list[str]:
        return scopes_of(self.manifest)

    @property
    def remotes(self) -> dict[str, str]:
        return remote_base_urls(self.manifest)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "major": self.major,
            "connect_key": connect_key_of(self.manifest),
            "scopes": self.scopes,
            "egress": sorted(set(self.remotes.values())),
            "deployed_at": self.deployed_at,
        }


@dataclass
class ForgeEnvironment:
    """An app's environment: ``key`` as Forge names it (``default`` is ``development``)."""

    app_id: str
    key: str
    versions: list[ForgeVersion] = field(default_factory=list)

    @property
    def type(self) -> str:
        return ENVIRONMENT_TYPES.get(self.key, "DEVELOPMENT")

    @property
    def latest(self) -> ForgeVersion | None:
        return max(self.versions, key=lambda v: (v.major, v.minor), default=None)

    def deploy(self, manifest: dict[str, Any], major: int | None) -> tuple[ForgeVersion, bool]:
        """Store ``manifest`` as the next version (of major ``major`` when given); return it and
        whether it is a new major version. ``LookupError`` when ``major`` does not exist."""
        latest = self.latest
        if major is not None:
            minors = [v.minor for v in self.versions if v.major == major]
            if not minors:
                raise LookupError(major)
            version = ForgeVersion(major, max(minors) + 1, manifest)
        elif latest is None:
            version = ForgeVersion(1, 0, manifest)
        elif _needs_major(latest.manifest, manifest):
            version = ForgeVersion(latest.major + 1, 0, manifest)
        else:
            version = ForgeVersion(latest.major, latest.minor + 1, manifest)
        self.versions.append(version)
        return version, latest is not None and version.major > latest.major

    def to_dict(self) -> dict[str, Any]:
        latest = self.latest
        return {
            "app_id": self.app_id,
            "environment": self.key,
            "type": self.type,
            "latest": latest.to_dict() if latest else None,
            "versions": [v.to_dict() for v in self.versions],
        }


@dataclass
class ForgeInstallation:
    id: str
    app_id: str
    environment: ForgeEnvironment
    site: str
    product: str
    version: ForgeVersion
    connect_key: str | None
    installed_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        latest = self.environment.latest
        return {
            "id": self.id,
            "app_id": self.app_id,
            "environment": self.environment.key,
            "environment_type": self.environment.type,
            "site": self.site,
            "product": self.product,
            "version": self.version.version,
            "latest_version": latest.version if latest else None,
            "is_latest": latest is self.version,
            "scopes": self.version.scopes,
            "egress": sorted(set(self.version.remotes.values())),
            "connect_key": self.connect_key,
            "installed_at": self.installed_at,
        }


@dataclass
class ForgeState:
    """What Forge's servers know about this site's apps; ``calls`` is every request's outcome."""

    environments: dict[tuple[str, str], ForgeEnvironment] = field(default_factory=dict)
    installations: dict[str, ForgeInstallation] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    failures_left: int = 0
    failure_message: str = DEFAULT_FAILURE_MESSAGE
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    def clear(self) -> None:
        self.environments.clear()
        self.installations.clear()
        self.calls.clear()
        self.failures_left = 0
        self.failure_message = DEFAULT_FAILURE_MESSAGE

    def environment(self, app_id: str, key: str) -> ForgeEnvironment | None:
        return self.environments.get((app_id, key))

    def matching(
        self, app_id: str, environment: str | None, site: str | None, product: str | None
    ) -> list[ForgeInstallation]:
        return [
            i
            for i in self.installations.values()
            if i.app_id == app_id
            and environment in (None, i.environment.key)
            and site in (None, i.site)
            and product in (None, i.product)
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "environments": [e.to_dict() for e in self.environments.values()],
            "installations": [i.to_dict() for i in self.installations.values()],
            "calls": list(self.calls),
        }


class ForgeError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def forge_site(host: Host) -> str:
    """The site name ``forge install --site`` takes for this host: its ``host:port``."""
    return urlsplit(host.origin).netloc


def forge_routes(host: Host) -> list[web.RouteDef]:
    """The routes under ``/_emulator/forge``: loopback clients only, as the control API."""
    state = host.forge

    def route(action: str, handler: Action, *, read_query: bool = False) -> Handler:
        async def respond(request: web.Request) -> web.Response:
            if (refusal := refuse_remote(request)) is not None:
                return refusal
            request_id = str(uuid.uuid4())
            body = dict(request.query) if read_query else await json_object(request)
            try:
                if body is None:
                    raise ForgeError(400, "BAD_REQUEST", "send a JSON object")
                if state.failures_left > 0:
                    state.failures_left -= 1
                    raise ForgeError(500, "INTERNAL_SERVER_ERROR", state.failure_message)
                answer = await handler(body)
            except ForgeError as error:
                _note(state, action, body, error.code, request_id)
                return web.json_response(
                    {
                        "error": {"code": error.code, "message": error.message},
                        "request_id": request_id,
                    },
                    status=error.status,
                )
            _note(state, action, body, None, request_id)
            return web.json_response({**answer, "request_id": request_id})

        return respond

    async def login(body: dict[str, Any]) -> dict[str, Any]:
        if host.settings.forge_reject_credentials:
            raise ForgeError(401, "UNAUTHENTICATED", "The API token is not valid.")
        # The emulator's choice: one developer account, whatever the e-mail.
        return {"account_id": "557058:emulated-forge-developer"}

    async def environment(body: dict[str, Any]) -> dict[str, Any]:
        app_id, key = _text(body, "app_id"), _text(body, "environment")
        _check_registered(app_id)
        found = state.environment(app_id, key)
        return {"exists": found is not None, **(found or ForgeEnvironment(app_id, key)).to_dict()}

    async def deploy(body: dict[str, Any]) -> dict[str, Any]:
        app_id, key = _text(body, "app_id"), _text(body, "environment")
        manifest, major = body.get("manifest"), body.get("major_version")
        if not isinstance(manifest, dict) or not (major is None or isinstance(major, int)):
            raise ForgeError(400, "BAD_REQUEST", '"manifest" must be an object')
        _check_registered(app_id)
        # A deploy takes tens of seconds on Forge; tests make the emulated one slow on purpose.
        await asyncio.sleep(host.settings.forge_deploy_delay_ms / 1000)
        async with state.lock:
            created = (app_id, key) not in state.environments
            env = state.environments.setdefault((app_id, key), ForgeEnvironment(app_id, key))
            previous = env.latest
            try:
                version, major_bump = env.deploy(manifest, major)
            except LookupError as exc:
                raise ForgeError(
                    404,
                    "MAJOR_VERSION_NOT_FOUND",
                    "The major version you specified does not exist. Check the version number "
                    "and try again.",
                ) from exc
            if not major_bump:
                await _roll_out(host, env, version)
        logger.info("forge deploy of %s to %s: %s", app_id, key, version.version)
        added_scopes = sorted(set(version.scopes) - set(previous.scopes if previous else []))
        old_remotes = set(previous.remotes.items()) if previous else set()
        added_egress = sorted({url for _, url in version.remotes.items() - old_remotes})
        return {
            **version.to_dict(),
            "environment": key,
            "environment_type": env.type,
            "created_environment": created,
            "is_major_bump": major_bump,
            "added_scopes": added_scopes if previous else [],
            "added_egress": added_egress if previous else [],
            "installations": len(state.matching(app_id, key, None, None)),
        }

    async def installations(body: dict[str, Any]) -> dict[str, Any]:
        app_id = _text(body, "app_id")
        _check_registered(app_id)
        site, product = body.get("site") or None, body.get("product") or None
        if site is not None:
            _check_site(host, site, product)
        found = state.matching(app_id, body.get("environment") or None, site, product)
        return {"installations": [i.to_dict() for i in found]}

    async def install(body: dict[str, Any]) -> dict[str, Any]:
        app_id, key = _text(body, "app_id"), _text(body, "environment")
        site, product = _text(body, "site"), _text(body, "product")
        upgrade = body.get("upgrade") is True
        _check_registered(app_id)
        _check_site(host, site, product)
        async with state.lock:
            env = state.environment(app_id, key)
            latest = env.latest if env else None
            if env is None or latest is None:
                raise ForgeError(409, "NO_DEPLOYMENT", f"The app has no deployment in {key}.")
            existing = next(iter(state.matching(app_id, key, site, product)), None)
            if existing is None and upgrade:
                raise ForgeError(404, "INSTALLATION_NOT_FOUND", "No installation to upgrade.")
            if existing is not None and not upgrade:
                raise ForgeError(409, "APP_ALREADY_INSTALLED", "App is already installed.")
            if existing is not None and existing.version is latest:
                return {"operation": "upgrade", "already_updated": True, **_one(existing)}
            installation = await _install_version(host, env, latest, site, product, existing)
        return {
            "operation": "upgrade" if upgrade else "install",
            "already_updated": False,
            **_one(installation),
        }

    async def uninstall(body: dict[str, Any]) -> dict[str, Any]:
        app_id, key = _text(body, "app_id"), _text(body, "environment")
        site, product = _text(body, "site"), _text(body, "product")
        _check_registered(app_id)
        _check_site(host, site, product)
        async with state.lock:
            installation = next(iter(state.matching(app_id, key, site, product)), None)
            if installation is None:
                raise ForgeError(404, "INSTALLATION_NOT_FOUND", "No such installation.")
            async with host.install_lock:
                connect = host.installations.get(installation.connect_key or "")
                if connect is not None:
                    await remove_installation(host, connect)
            del state.installations[installation.id]
        return {"successful": True, **_one(installation)}

    async def overview(request: web.Request) -> web.Response:
        if (refusal := refuse_remote(request)) is not None:
            return refusal
        return web.json_response({"site": forge_site(host), **state.to_dict()})

    async def descriptor(request: web.Request) -> web.Response:
        # The plugin URI of a Forge install: the descriptor the site built from the manifest.
        if (refusal := refuse_remote(request)) is not None:
            return refusal
        installation = state.installations.get(request.match_info["installation_id"])
        connect = host.installations.get(installation.connect_key or "") if installation else None
        if connect is None:
            return web.json_response({"error": "no such Connect installation"}, status=404)
        return web.Response(text=connect.descriptor_text, content_type="application/json")

    base = "/_emulator/forge"
    return [
        web.get(base, overview),
        web.post(f"{base}/login", route("login", login)),
        web.get(f"{base}/environment", route("environment", environment, read_query=True)),
        web.post(f"{base}/deploy", route("deploy", deploy)),
        web.get(f"{base}/installations", route("list", installations, read_query=True)),
        web.post(f"{base}/install", route("install", install)),
        web.post(f"{base}/uninstall", route("uninstall", uninstall)),
        web.get(f"{base}/descriptors/{{installation_id}}", descriptor),
    ]


async def _install_version(
    host: Host,
    env: ForgeEnvironment,
    version: ForgeVersion,
    site: str,
    product: str,
    existing: ForgeInstallation | None,
) -> ForgeInstallation:
    """Install (or upgrade ``existing`` to) ``version`` on this site, its Connect side as a UPM
    install would; the caller holds the Forge state's lock."""
    installation_id = existing.id if existing else str(uuid.uuid4())
    try:
        document = connect_descriptor(version.manifest, product)
    except ConnectModulesInvalid as invalid:
        raise ForgeError(400, FAILED_DESCRIPTOR_VALIDATION, invalid.message) from invalid
    connect_key = str(document["key"]) if document else None
    if document is not None and connect_key is not None:
        plugin_uri = f"{host.origin}/_emulator/forge/descriptors/{installation_id}"
        task_id = str(uuid.uuid4())
        try:
            await install_document(
                host,
                document,
                json.dumps(document, indent=2),
                plugin_uri=plugin_uri,
                task_id=task_id,
                key=connect_key,
            )
        except InstallFailure as failure:
            host.record.add(
                FailedInstall(plugin_uri, task_id, failure.sub_code, failure.message, connect_key)
            )
            raise ForgeError(502, "CONNECT_INSTALL_CALLBACK_FAILED", failure.message) from failure
    if existing is not None and existing.connect_key not in (None, connect_key):
        # A new app.connect.key replaces the Connect app the old key installed.
        async with host.install_lock:
            old = host.installations.get(existing.connect_key or "")
            if old is not None:
                await remove_installation(host, old)
    installation = ForgeInstallation(
        installation_id, env.app_id, env, site, product, version, connect_key
    )
    host.forge.installations[installation_id] = installation
    logger.info("forge install of %s %s on %s", env.app_id, version.version, site)
    return installation


async def _roll_out(host: Host, env: ForgeEnvironment, version: ForgeVersion) -> None:
    """A minor version reaches its major's installations without an admin: their Connect
    descriptor changes in place (the emulator's choice: with no callback). One whose modules
    Cloud would refuse stays where it is, outdated."""
    for installation in list(host.forge.installations.values()):
        if installation.environment is not env or installation.version.major != version.major:
            continue
        try:
            document = connect_descriptor(version.manifest, installation.product)
        except ConnectModulesInvalid:
            continue
        key = document["key"] if document else None
        if key != installation.connect_key:
            continue
        async with host.install_lock:
            connect = host.installations.get(key or "")
            if connect is not None and document is not None:
                connect.descriptor = document
                connect.descriptor_text = json.dumps(document, indent=2)
                host.record.set_plugin(connect.key, connect.plugin_summary())
        installation.version = version


def _needs_major(old: dict[str, Any], new: dict[str, Any]) -> bool:
    # Adding a scope or a remote, or moving a remote's baseUrl, needs an admin's approval.
    added_scopes = set(scopes_of(new)) - set(scopes_of(old))
    added_remotes = set(remote_base_urls(new).items()) - set(remote_base_urls(old).items())
    return bool(added_scopes or added_remotes)


def _check_registered(app_id: str) -> None:
    if not REGISTERED_APP_ID.match(app_id):
        raise ForgeError(404, "APP_NOT_FOUND", f"No app found with id {app_id!r}.")


def _check_site(host: Host, site: str, product: str | None) -> None:
    if site != forge_site(host):
        raise ForgeError(404, "INVALID_SITE", f"{site} is not an Atlassian site.")
    if product is not None and product != host.settings.product:
        raise ForgeError(400, "PRODUCT_NOT_ACTIVATED", f"{product} is not active on {site}.")


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ForgeError(400, "BAD_REQUEST", f'"{name}" must be a non-empty string')
    return value


def _one(installation: ForgeInstallation) -> dict[str, Any]:
    return {"installation": installation.to_dict()}


def _note(
    state: ForgeState,
    action: str,
    body: dict[str, Any] | None,
    code: str | None,
    request_id: str,
) -> None:
    body = body or {}
    state.calls.append(
        {
            "action": action,
            "app_id": body.get("app_id"),
            "environment": body.get("environment"),
            "site": body.get("site"),
            "outcome": "error" if code else "ok",
            "code": code,
            "request_id": request_id,
            "at": time.time(),
        }
    )
