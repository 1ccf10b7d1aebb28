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
    from .site import EmulatedHost

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
    "remove_installation",
    "run_install",
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
    """Ends an install task with UPM's ``subCode`` and ``errorMessage``."""

    def __init__(self, sub_code: str | None, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.sub_code = sub_code
        self.message = message
        self.key = key


async def run_install(host: EmulatedHost, task: InstallTask) -> None:
    """Run ``task`` to ``complete`` or ``failed``; never raises but for cancellation."""
    try:
        await _install(host, task)
    except InstallFailure as failure:
        _fail(host, task, failure)
    except Exception as exc:  # a bug in the emulator must still end the task, like UPM does
        logger.exception("install task %s crashed", task.id)
        _fail(host, task, InstallFailure(UNEXPECTED_ERROR, f"Unexpected error: {exc}"))


async def _install(host: EmulatedHost, task: InstallTask) -> None:
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
    host: EmulatedHost,
    document: dict[str, Any],
    text: str,
    *,
    plugin_uri: str,
    task_id: str,
    key: str,
) -> Installation:
    """The part of an install every path shares once the descriptor is read and checked: the
    ``installed`` callback, then the add-on listed and recorded (UPM installs, and the Forge
    installs of ``forge.py``). Raises ``InstallFailure`` when the add-on refuses the callback.
    """
    # One install at a time: a reinstall must be signed with the secret it replaces.
    async with host.install_lock:
        previous = host.installations.get(key)
        installation = Installation(
            key=key,
            descriptor=document,
            descriptor_text=text,
            plugin_uri=plugin_uri,
            # Cloud dev mode issues a new secret on every install (PROTOCOL.md §3).
            shared_secret=secrets.token_urlsafe(32) if _uses_jwt(document) else None,
            installation_id=(
                previous.installation_id
                if previous
                else f"ari:cloud:ecosystem::installation/{uuid.uuid4()}"
            ),
            enabled=previous.enabled if previous else True,
        )
        callback = await send_lifecycle(
            host,
            installation,
            "installed",
            previous_secret=previous.shared_secret if previous else None,
        )
        if not callback_accepted(callback):
            assert callback is not None
            raise InstallFailure(BAD_RESPONSE, _callback_failure_message(callback), key)
        host.installations[key] = installation
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
        # The emulator's choice: like Connect, follow `installed` with `enabled`; its failure
        # does not undo the install.
        if installation.enabled:
            await send_lifecycle(host, installation, "enabled")
    return installation


async def remove_installation(host: EmulatedHost, installation: Installation) -> None:
    """Uninstall an installed add-on: its ``uninstalled`` callback (a failure is only logged, as
    on a real site), then it is gone and recorded. The caller holds ``host.install_lock``."""
    # The emulator's choice: an enabled add-on hears `disabled` before `uninstalled`.
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


async def _fetch_descriptor(host: EmulatedHost, plugin_uri: str) -> str:
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


def _check_descriptor(host: EmulatedHost, document: dict[str, Any], key: str) -> None:
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


def _fail(host: EmulatedHost, task: InstallTask, failure: InstallFailure) -> None:
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
