"""The install task a UPM install POST starts (PROTOCOL.md §3): fetch the descriptor, check it,
call the add-on's ``installed`` callback, and only then list the add-on as installed."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp

from .. import descriptor as descriptors
from .lifecycle import Installation, callback_accepted, send_lifecycle
from .record import CallbackRecord, FailedInstall, InstallRecord, UninstallRecord

if TYPE_CHECKING:
    from .types import Host

__all__ = [
    "BAD_RESPONSE",
    "DESCRIPTOR_INSTALLS_REFUSED",
    "FILE_NOT_FOUND",
    "INVALID_DESCRIPTOR",
    "NOT_FROM_MARKETPLACE",
    "UNEXPECTED_ERROR",
    "InstallFailure",
    "InstallTask",
    "install_document",
    "reinstall",
    "remove_installation",
    "run_install",
    "set_enabled",
]

logger = logging.getLogger(__name__)

FILE_NOT_FOUND = "upm.pluginInstall.error.file.not.found"
UNEXPECTED_ERROR = "upm.plugin.error.unexpected.error"
NOT_FROM_MARKETPLACE = "upm.pluginInstall.error.descriptor.not.from.marketplace"
# The emulator's choice for the two codes below: PROTOCOL.md gives only the message texts.
BAD_RESPONSE = "connect.install.error.remote.host.bad.response"
INVALID_DESCRIPTOR = "connect.install.error.descriptor.validation"
# Cloud's 2026 refusal of private descriptor-URL installs, word for word (FORGE.md §1). Which
# subCode Cloud sends with it is not known: the emulator's choice is the dev-mode refusal's,
# the closest UPM has, so a client must tell the two apart by the message.
DESCRIPTOR_INSTALLS_REFUSED = (
    "Development Mode no longer supports installing private apps using an app descriptor URL"
)

MAX_DESCRIPTOR_BYTES = 5 * 1024 * 1024


@dataclass
class InstallTask:
    """One pending install as the ``pending/<id>`` resource reports it.

    ``state`` moves ``downloading`` → ``installing`` → ``complete`` or ``failed``.
    """

    plugin_uri: str
    name: str
    source: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    state: str = "downloading"
    key: str | None = None
    sub_code: str | None = None
    error_message: str | None = None

    @property
    def done(self) -> bool:
        return self.state in ("complete", "failed")


class InstallFailure(Exception):
    """Ends an install task with UPM's ``subCode`` and ``errorMessage``. ``callbacks`` are the
    lifecycle callbacks sent before it failed, when the caller wants them (``reinstall``)."""

    def __init__(self, sub_code: str | None, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.sub_code = sub_code
        self.message = message
        self.key = key
        self.callbacks: list[CallbackRecord] = []


async def run_install(host: Host, task: InstallTask) -> None:
    """Run ``task`` to ``complete`` or ``failed``; never raises but for cancellation."""
    try:
        await _install(host, task)
    except InstallFailure as failure:
        _fail(host, task, failure)
    except Exception as exc:  # a bug in the emulator must still end the task, like UPM does
        logger.exception("install task %s crashed", task.id)
        _fail(host, task, InstallFailure(UNEXPECTED_ERROR, f"Unexpected error: {exc}"))


async def _install(host: Host, task: InstallTask) -> None:
    half_delay = host.settings.install_delay_ms / 2000
    task.state = "downloading"
    await asyncio.sleep(half_delay)
    text = await _fetch_descriptor(host, task.plugin_uri)
    task.state = "installing"
    await asyncio.sleep(half_delay)
    document = _parse_descriptor(text)
    task.key = str(document["key"])
    _check_descriptor(host, document, task.key)
    await install_document(
        host, document, text, plugin_uri=task.plugin_uri, task_id=task.id, key=task.key
    )
    task.state = "complete"
    logger.info("installed %s from %s", task.key, task.plugin_uri)


async def install_document(
    host: Host,
    document: dict[str, Any],
    text: str,
    *,
    plugin_uri: str,
    task_id: str,
    key: str,
    reinstall_secret: str | None = None,
) -> Installation:
    """The part of an install every path shares once the descriptor is read and checked: the
    ``installed`` callback, then the add-on listed and recorded (UPM installs, and the Forge
    installs of ``forge.py``). Raises ``InstallFailure`` when the add-on refuses the callback.

    ``reinstall_secret`` (``"new"`` or ``"keep"``) overrides the site's switch of that name for
    this install.
    """
    # One install at a time: a reinstall must be signed with the secret it replaces.
    async with host.install_lock:
        return await _install_locked(
            host,
            document,
            text,
            plugin_uri=plugin_uri,
            task_id=task_id,
            key=key,
            reinstall_secret=reinstall_secret or host.settings.reinstall_secret,
        )


async def reinstall(host: Host, key: str, *, reinstall_secret: str = "new") -> list[CallbackRecord]:
    """Install the installed add-on ``key`` again from the descriptor it has, as Cloud does on an
    upgrade or a secret rotation: the ``installed`` callback (with a new ``sharedSecret`` unless
    ``reinstall_secret="keep"``), then ``enabled`` if it is enabled. Returns the callbacks sent.

    Raises ``LookupError`` when ``key`` is not installed, and ``InstallFailure`` (recorded in
    ``failed_installs``) when the add-on refuses ``installed``: the site then keeps the
    installation and the secret it had, as a failed upgrade leaves the old version in place
    (the emulator's choice: PROTOCOL.md does not say what a failed upgrade leaves).
    """
    async with host.install_lock:
        installation = host.installations.get(key)
        if installation is None:
            raise LookupError(f"{key!r} is not installed on {host.base_url}")
        first = len(host.record.callbacks)
        task_id = str(uuid.uuid4())
        try:
            await _install_locked(
                host,
                installation.descriptor,
                installation.descriptor_text,
                plugin_uri=installation.plugin_uri,
                task_id=task_id,
                key=key,
                reinstall_secret=reinstall_secret,
            )
        except InstallFailure as failure:
            host.record.add(
                FailedInstall(
                    plugin_uri=installation.plugin_uri,
                    task_id=task_id,
                    sub_code=failure.sub_code,
                    error_message=failure.message,
                    key=key,
                )
            )
            failure.callbacks = host.record.callbacks[first:]
            raise
        return host.record.callbacks[first:]


async def set_enabled(host: Host, key: str, enabled: bool) -> list[CallbackRecord]:
    """Enable or disable the installed add-on ``key``, as an admin does in Manage apps, and send
    its ``enabled`` or ``disabled`` callback if the state changes. Returns the callbacks sent (none
    when the state does not change or the descriptor declares no such callback); a callback's
    failure changes nothing, these callbacks being webhook-like (PROTOCOL.md §3). Raises
    ``LookupError`` when ``key`` is not installed.
    """
    async with host.install_lock:
        installation = host.installations.get(key)
        if installation is None:
            raise LookupError(f"{key!r} is not installed on {host.base_url}")
        if installation.enabled == enabled:
            return []
        installation.enabled = enabled
        host.record.set_plugin(key, installation.plugin_summary())
        callback = await send_lifecycle(host, installation, "enabled" if enabled else "disabled")
        return [callback] if callback is not None else []


async def _install_locked(
    host: Host,
    document: dict[str, Any],
    text: str,
    *,
    plugin_uri: str,
    task_id: str,
    key: str,
    reinstall_secret: str,
) -> Installation:
    previous = host.installations.get(key)
    # The last secret this site gave the add-on, remembered after an uninstall: a re-install
    # is signed with it in the legacy scheme (Atlassian's 2018 description of an install,
    # uninstall, install sequence: "a new shared secret ... signed with the old shared secret").
    known_secret = host.tenant_secrets.get(key)
    shared_secret: str | None = None
    if _uses_jwt(document):
        # Cloud issues a new secret on every install event (PROTOCOL.md §3; the lifecycle
        # reference: "A new sharedSecret is created for each installation event"). "keep" is
        # older Connect, which kept the secret across an upgrade in place; after an uninstall it
        # issued a new one (the 2018 description above). That upgrades kept it is the
        # emulator's reading of the older docs, which promise a new secret for no event.
        keep = reinstall_secret == "keep" and previous is not None
        shared_secret = previous.shared_secret if previous and keep else secrets.token_urlsafe(32)
    installation = Installation(
        key=key,
        descriptor=document,
        descriptor_text=text,
        plugin_uri=plugin_uri,
        shared_secret=shared_secret,
        # Kept across an in-place re-install, new after an uninstall: Cloud's installationId
        # "changes in the event of a reinstallation" (the lifecycle reference).
        installation_id=(
            previous.installation_id
            if previous
            else f"ari:cloud:ecosystem::installation/{uuid.uuid4()}"
        ),
        enabled=previous.enabled if previous else True,
    )
    callback = await send_lifecycle(host, installation, "installed", previous_secret=known_secret)
    if not callback_accepted(callback):
        assert callback is not None
        raise InstallFailure(BAD_RESPONSE, _callback_failure_message(callback), key)
    host.installations[key] = installation
    if installation.shared_secret is not None:
        host.tenant_secrets[key] = installation.shared_secret
    host.record.set_plugin(key, installation.plugin_summary())
    host.record.add(
        InstallRecord(
            key=key,
            plugin_uri=plugin_uri,
            descriptor=document,
            descriptor_text=text,
            client_key=host.client_key,
            shared_secret=installation.shared_secret,
            signed=callback.signed if callback else "unsigned",
            callback_status=callback.status if callback else None,
            task_id=task_id,
            replaced=previous is not None,
        )
    )
    # The lifecycle reference: `enabled` is "triggered after a successful app installation or
    # upgrade"; its failure does not undo the install (the emulator's choice). An add-on that
    # was disabled stays disabled and hears nothing.
    if installation.enabled:
        await send_lifecycle(host, installation, "enabled")
    return installation


async def remove_installation(host: Host, installation: Installation) -> None:
    """Uninstall an installed add-on: its ``uninstalled`` callback (a failure is only logged, as
    on a real site), then it is gone and recorded. The caller holds ``host.install_lock``.

    The uninstall completes whatever the add-on answers, or when it does not answer at all
    (an add-on that is down): UPM's DELETE still answers 204, and ``callbacks`` holds the
    callbacks that failed, with their ``error``.
    """
    # The lifecycle reference: an app "is disabled before performing uninstallation", so an
    # enabled add-on hears `disabled` before `uninstalled`. Cloud was seen sending the two
    # almost at once without waiting; the emulator's choice is one after the other, so that
    # their order is fixed.
    if installation.enabled:
        await send_lifecycle(host, installation, "disabled")
    callback = await send_lifecycle(host, installation, "uninstalled")
    del host.installations[installation.key]
    host.record.remove_plugin(installation.key)
    host.record.add(
        UninstallRecord(
            key=installation.key,
            callback_status=callback.status if callback else None,
            signed=callback.signed if callback else "unsigned",
        )
    )
    logger.info("uninstalled %s", installation.key)


async def _fetch_descriptor(host: Host, plugin_uri: str) -> str:
    # Cloud fetches only from ports 80, 443 and 8080 on the internet; the emulator fetches from
    # any port, loopback included, because that is where add-ons under test run.
    scheme = urlsplit(plugin_uri).scheme.lower()
    if scheme not in ("http", "https"):
        raise InstallFailure(
            FILE_NOT_FOUND,
            f"Unable to download the descriptor from {plugin_uri}: "
            f"unsupported URI scheme {scheme!r} (use http or https)",
        )
    timeout = host.settings.descriptor_timeout_s
    try:
        async with host.session.get(
            plugin_uri,
            headers={"Accept": "application/json"},
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            if not 200 <= response.status < 300:
                raise InstallFailure(
                    FILE_NOT_FOUND,
                    f"Unable to download the descriptor from {plugin_uri}: "
                    f"HTTP {response.status} {response.reason or ''}".rstrip(),
                )
            raw = await response.content.read(MAX_DESCRIPTOR_BYTES + 1)
    except TimeoutError as exc:
        raise InstallFailure(
            FILE_NOT_FOUND,
            f"Unable to download the descriptor from {plugin_uri}: no answer within {timeout:g} s",
        ) from exc
    except aiohttp.ClientError as exc:
        raise InstallFailure(
            FILE_NOT_FOUND, f"Unable to download the descriptor from {plugin_uri}: {exc}"
        ) from exc
    if len(raw) > MAX_DESCRIPTOR_BYTES:
        raise InstallFailure(
            UNEXPECTED_ERROR,
            f"The descriptor at {plugin_uri} is larger than {MAX_DESCRIPTOR_BYTES} bytes",
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InstallFailure(
            UNEXPECTED_ERROR,
            f"JSON is not well-formed: the descriptor at {plugin_uri} is not UTF-8 text",
        ) from exc


def _parse_descriptor(text: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InstallFailure(
            UNEXPECTED_ERROR,
            f"JSON is not well-formed: {exc.msg} at line {exc.lineno} column {exc.colno}",
        ) from exc
    problems = [p for p in descriptors.validate(document) if p.severity == "error"]
    if problems:
        raise InstallFailure(
            INVALID_DESCRIPTOR,
            "The add-on descriptor is invalid: " + "; ".join(p.format() for p in problems),
            _key_of(document),
        )
    assert isinstance(document, dict)
    return document


def _check_descriptor(host: Host, document: dict[str, Any], key: str) -> None:
    """What the site checks beyond the schema; the order follows what a user would fix first."""
    base_url = str(document["baseUrl"])
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InstallFailure(
            INVALID_DESCRIPTOR,
            f"The add-on descriptor is invalid: $.baseUrl: {base_url!r} is not an absolute "
            "http(s) URL",
            key,
        )
    settings = host.settings
    if settings.descriptor_installs_refused:
        raise InstallFailure(NOT_FROM_MARKETPLACE, DESCRIPTOR_INSTALLS_REFUSED, key)
    if settings.flavour == "cloud" and not settings.dev_mode:
        raise InstallFailure(
            NOT_FROM_MARKETPLACE,
            f"The app {key!r} is not listed on the Atlassian Marketplace. Turn on development "
            "mode to install private apps from a descriptor URL.",
            key,
        )
    if not settings.dev_mode and parts.scheme != "https":
        raise InstallFailure(
            INVALID_DESCRIPTOR,
            f"The add-on descriptor is invalid: $.baseUrl: {base_url!r} must use https "
            "outside development mode",
            key,
        )
    migrations = document.get("apiMigrations")
    signed = isinstance(migrations, dict) and migrations.get("signed-install") is True
    if settings.require_signed_install and _uses_jwt(document) and not signed:
        raise InstallFailure(
            INVALID_DESCRIPTOR,
            "The add-on descriptor is invalid: $.apiMigrations.signed-install must be true "
            '(add "apiMigrations": {"signed-install": true})',
            key,
        )


def _key_of(document: object) -> str | None:
    key = document.get("key") if isinstance(document, dict) else None
    return key if isinstance(key, str) else None


def _uses_jwt(document: dict[str, Any]) -> bool:
    authentication = document.get("authentication")
    if not isinstance(authentication, dict):
        return True
    return str(authentication.get("type", "jwt")).lower() == "jwt"


def _callback_failure_message(callback: CallbackRecord) -> str:
    if callback.status is not None:
        code = callback.status
        return (
            f"The add-on host returned HTTP response code {code} when we tried to contact it "
            "during installation. Please try again later or contact the add-on vendor."
        )
    # The emulator's choice: no status to quote, so say what went wrong instead.
    return (
        f"The add-on host could not be reached ({callback.error}) when we tried to contact it "
        "during installation. Please try again later or contact the add-on vendor."
    )


def _fail(host: Host, task: InstallTask, failure: InstallFailure) -> None:
    task.state = "failed"
    task.sub_code = failure.sub_code
    task.error_message = failure.message
    task.key = task.key or failure.key
    logger.info("install of %s failed: %s (%s)", task.plugin_uri, failure.message, failure.sub_code)
    host.record.add(
        FailedInstall(
            plugin_uri=task.plugin_uri,
            task_id=task.id,
            sub_code=failure.sub_code,
            error_message=failure.message,
            key=task.key,
        )
    )
