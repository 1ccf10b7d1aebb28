"""The UPM REST API of an emulated site (PROTOCOL.md §2), under ``{context}/rest/plugins``.

Every call passes through ``make_guard``: injected faults first, then HTTP Basic auth (admins
only), then the route. Links in bodies are root-relative and include the context path, as UPM's
are; ``Location`` headers are absolute.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from .basic_auth import basic_credentials, password_matches
from .install import InstallTask, remove_installation
from .lifecycle import Installation, send_lifecycle
from .record import InstallPost, UpmCall

if TYPE_CHECKING:
    from .types import Host

__all__ = ["INSTALL_MEDIA_TYPES", "SYSTEM_PLUGINS", "make_guard", "upm_routes"]

logger = logging.getLogger(__name__)

REMOTE_INSTALL_TYPE = "application/vnd.atl.plugins.remote.install+json"
URI_INSTALL_TYPE = "application/vnd.atl.plugins.install.uri+json"
INSTALL_MEDIA_TYPES = (REMOTE_INSTALL_TYPE, URI_INSTALL_TYPE)
INSTALLED_TYPE = "application/vnd.atl.plugins.installed+json"
PLUGIN_TYPE = "application/vnd.atl.plugins.plugin+json"
SETTINGS_TYPE = "application/vnd.atl.plugins+json"
TASK_TYPES = {
    "downloading": "application/vnd.atl.plugins.install.downloading+json",
    "installing": "application/vnd.atl.plugins.install.installing+json",
    # The emulator's choice: PROTOCOL.md names the "complete" state but not its media type.
    "complete": "application/vnd.atl.plugins.install.complete+json",
    "failed": "application/vnd.atl.plugins.task.install.err+json",
}

INVALID_TOKEN = {"errorMessage": "invalid token", "subCode": "upm.error.invalid.token"}
NOT_AUTHENTICATED_TEXT = "Client must be authenticated to access this resource."
NOT_ADMIN_TEXT = "Client must be an administrator to access this resource."
RELATIVE_URI = "upm.pluginInstall.error.invalid.relative.uri"
URI_SYNTAX = "upm.pluginInstall.error.invalid.uri.syntax"
# The emulator's choice of subCode and wording: PROTOCOL.md says only that Data Center refuses
# installs unless started with -Dupm.plugin.upload.enabled=true.
UPLOADS_DISABLED = {
    "errorMessage": "Installing apps from a URL is disabled on this instance. Restart it with "
    "-Dupm.plugin.upload.enabled=true to allow it.",
    "subCode": "upm.plugin.upload.disabled",
}
# The emulator's choice: real sites list hundreds of bundled apps; two are enough to make a
# client filter by key, and to give DELETE its "not uninstallable" 403.
SYSTEM_PLUGINS: dict[str, dict[str, Any]] = {
    "com.atlassian.upm.atlassian-universal-plugin-manager-plugin": {
        "name": "Atlassian Universal Plugin Manager Plugin",
        "version": "1001.0.0",
    },
    "com.atlassian.plugins.atlassian-connect-plugin": {
        "name": "Atlassian Connect",
        "version": "1001.0.0",
    },
}
NOT_UNINSTALLABLE_SUB_CODE = "upm.pluginUninstall.error.plugin.is.system"
UPM_USER = web.RequestKey("upm_user", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_guard(host: Host) -> Middleware:
    """Middleware for UPM paths: injected faults, Basic auth, and the ``upm_calls`` record."""
    prefix = f"{host.settings.context_path}/rest/plugins"

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path != prefix and not request.path.startswith(prefix + "/"):
            return await handler(request)
        user: str | None = None
        try:
            # Faults come before auth: they stand for the site (or a proxy in front of it)
            # failing, whoever asks.
            refusal = _injected_failure(host)
            if refusal is None:
                user, refusal = _authenticate(host, request)
            if refusal is None:
                assert user is not None
                request[UPM_USER] = user
                response = await handler(request)
            else:
                response = refusal
                if request.method == "POST" and _is_root(request.path, prefix):
                    host.record.add(
                        InstallPost(
                            plugin_uri=None,
                            content_type=request.content_type,
                            status=refusal.status,
                            outcome="rejected",
                            reason=refusal.reason,
                        )
                    )
        except web.HTTPException as exc:
            _record_call(host, request, exc.status, user)
            raise
        _record_call(host, request, response.status, user)
        return response

    return guard


def upm_routes(host: Host) -> list[web.RouteDef]:
    root = f"{host.settings.context_path}/rest/plugins/1.0"

    async def list_plugins(request: web.Request) -> web.Response:
        token = host.issue_token(request[UPM_USER])
        plugins = [_system_plugin_json(root, key) for key in SYSTEM_PLUGINS]
        plugins += [_plugin_json(root, item) for item in host.installations.values()]
        return web.json_response(
            {"plugins": plugins, "links": {}},
            content_type=INSTALLED_TYPE,
            headers={"upm-token": token},
        )

    async def install(request: web.Request) -> web.Response:
        return await _install(host, request)

    async def settings(request: web.Request) -> web.Response:
        return web.json_response({"settings": _settings(host)}, content_type=SETTINGS_TYPE)

    async def pending(request: web.Request) -> web.Response:
        task = host.tasks.get(request.match_info["task_id"])
        if task is None:
            return _error(404, "No pending task with this id.")
        body = task_body(host, task)
        if task.state == "complete":
            location = f"{host.origin}{root}/{task.key}-key"
            return web.json_response(
                body,
                status=303,
                content_type=TASK_TYPES[task.state],
                headers={"Location": location},
            )
        return web.json_response(body, content_type=TASK_TYPES[task.state])

    async def get_plugin(request: web.Request) -> web.Response:
        key = request.match_info["plugin_key"]
        if key in SYSTEM_PLUGINS:
            return web.json_response(_system_plugin_json(root, key), content_type=PLUGIN_TYPE)
        installation = host.installations.get(key)
        if installation is None:
            return _not_found(key)
        return web.json_response(_plugin_json(root, installation), content_type=PLUGIN_TYPE)

    async def uninstall(request: web.Request) -> web.Response:
        key = request.match_info["plugin_key"]
        if key in SYSTEM_PLUGINS:
            return _not_modifiable(key)
        async with host.install_lock:
            installation = host.installations.get(key)
            if installation is None:
                return _not_found(key)
            await remove_installation(host, installation)
        return web.Response(status=204)

    async def update_plugin(request: web.Request) -> web.Response:
        key = request.match_info["plugin_key"]
        if key in SYSTEM_PLUGINS:
            return _not_modifiable(key)
        body = _json_object(await request.text())
        enabled = body.get("enabled") if body is not None else None
        if not isinstance(enabled, bool):
            return _error(400, 'Send the plugin representation with "enabled": true or false.')
        async with host.install_lock:
            installation = host.installations.get(key)
            if installation is None:
                return _not_found(key)
            if installation.enabled != enabled:
                installation.enabled = enabled
                host.record.set_plugin(key, installation.plugin_summary())
                await send_lifecycle(host, installation, "enabled" if enabled else "disabled")
        return web.json_response(_plugin_json(root, installation), content_type=PLUGIN_TYPE)

    return [
        web.get(f"{root}/", list_plugins),
        web.get(root, list_plugins),
        web.post(f"{root}/", install),
        web.post(root, install),
        web.get(f"{root}/settings", settings),
        web.get(f"{root}/pending/{{task_id}}", pending),
        web.get(f"{root}/tasks/{{task_id}}", pending),
        web.get(f"{root}/{{plugin_key}}-key", get_plugin),
        web.delete(f"{root}/{{plugin_key}}-key", uninstall),
        web.put(f"{root}/{{plugin_key}}-key", update_plugin),
    ]


def task_body(host: Host, task: InstallTask) -> dict[str, Any]:
    """The pending-task JSON, shaped like PROTOCOL.md §2's Cloud example."""
    root = f"{host.settings.context_path}/rest/plugins/1.0"
    status: dict[str, Any] = {
        "done": task.done,
        "statusCode": 200,
        "contentType": TASK_TYPES[task.state],
        "source": task.source,
        "name": task.name,
    }
    failure = {}
    if task.state == "failed":
        if task.sub_code:
            failure["subCode"] = task.sub_code
        if task.error_message:
            failure["errorMessage"] = task.error_message
    status.update(failure)
    body: dict[str, Any] = {
        "type": "INSTALL",
        "pingAfter": host.settings.ping_after_ms,
        "status": status,
        "links": {
            "self": f"{root}/pending/{task.id}",
            "alternate": f"{root}/tasks/{task.id}",
        },
        "timestamp": task.created_ms,
        "id": task.id,
    }
    # The emulator's choice: PROTOCOL.md does not say where UPM puts subCode/errorMessage, so
    # they are in `status` and at the top level, and a client may read either.
    body.update(failure)
    return body


async def _install(host: Host, request: web.Request) -> web.Response:
    content_type = request.content_type

    def answer(status: int, body: dict[str, Any], plugin_uri: str | None = None) -> web.Response:
        host.record.add(
            InstallPost(
                plugin_uri=plugin_uri,
                content_type=content_type,
                status=status,
                outcome="rejected",
                reason=body.get("subCode") or body.get("errorMessage"),
            )
        )
        return web.json_response(body, status=status)

    # Media type before token: Jersey refuses the type before the resource (and its token
    # check) runs, so a 415 leaves the token unused for a retry with the other type.
    if content_type not in INSTALL_MEDIA_TYPES:
        return answer(
            415,
            {
                "errorMessage": f"Unsupported media type {content_type or '(none)'}; send "
                f"{REMOTE_INSTALL_TYPE} or {URI_INSTALL_TYPE}",
            },
        )
    if not host.consume_token(request.query.get("token"), request[UPM_USER]):
        return answer(403, dict(INVALID_TOKEN))
    body = _json_object(await request.text())
    if body is None:
        return answer(
            400, {"errorMessage": "The request body is not a JSON object.", "subCode": URI_SYNTAX}
        )
    plugin_uri = body.get("pluginUri")
    if not host.settings.uploads_enabled:
        return answer(403, dict(UPLOADS_DISABLED), _as_text(plugin_uri))
    problem = _plugin_uri_problem(plugin_uri)
    if problem is not None:
        return answer(400, problem, _as_text(plugin_uri))
    assert isinstance(plugin_uri, str)
    plugin_name = body.get("pluginName")
    source = urlsplit(plugin_uri).path.rstrip("/").rsplit("/", 1)[-1] or plugin_uri
    task = InstallTask(
        plugin_uri=plugin_uri,
        source=source,
        name=plugin_name if isinstance(plugin_name, str) and plugin_name else source,
    )
    host.start_install(task)
    host.record.add(
        InstallPost(
            plugin_uri=plugin_uri,
            content_type=content_type,
            status=202,
            outcome="accepted",
            task_id=task.id,
        )
    )
    logger.info("install of %s accepted as task %s", plugin_uri, task.id)
    task_json = task_body(host, task)
    return web.json_response(
        task_json,
        status=202,
        content_type=TASK_TYPES[task.state],
        headers={"Location": f"{host.origin}{task_json['links']['self']}"},
    )


def _plugin_uri_problem(plugin_uri: object) -> dict[str, Any] | None:
    if not isinstance(plugin_uri, str) or not plugin_uri.strip():
        return {"errorMessage": "pluginUri is missing.", "subCode": URI_SYNTAX}
    # What java.net.URI refuses: whitespace, controls, and characters RFC 3986 never allows.
    if any(c.isspace() or ord(c) < 0x20 or c in '<>"{}|\\^`' for c in plugin_uri):
        return {"errorMessage": f"Invalid URI syntax: {plugin_uri!r}", "subCode": URI_SYNTAX}
    try:
        parts = urlsplit(plugin_uri)
        _ = parts.port
    except ValueError:
        return {"errorMessage": f"Invalid URI syntax: {plugin_uri!r}", "subCode": URI_SYNTAX}
    if not parts.scheme:
        return {
            "errorMessage": f"The URI {plugin_uri!r} is relative; give an absolute URI.",
            "subCode": RELATIVE_URI,
        }
    if parts.scheme.lower() in ("http", "https") and not parts.hostname:
        return {"errorMessage": f"Invalid URI syntax: {plugin_uri!r}", "subCode": URI_SYNTAX}
    return None


def _settings(host: Host) -> list[dict[str, Any]]:
    def setting(key: str, value: bool, default: bool) -> dict[str, Any]:
        return {
            "key": key,
            "value": value,
            "defaultValue": default,
            "requiresRefresh": False,
            "readOnly": False,
        }

    settings = [
        setting("pluginRequestsEnabled", True, True),
        setting("autoUpdateEnabled", True, True),
        setting("emailDisabled", False, False),
    ]
    # Server/Data Center has no development mode; clients must carry on without the key.
    if host.settings.flavour == "cloud":
        settings.insert(
            0, setting("connectDeveloperListingsEnabled", host.settings.dev_mode, False)
        )
    return settings


def _plugin_json(root: str, installation: Installation) -> dict[str, Any]:
    self_link = f"{root}/{installation.key}-key"
    plugin: dict[str, Any] = {
        "key": installation.key,
        "name": installation.name,
        "version": installation.version,
        "enabled": installation.enabled,
        "userInstalled": True,
        "optional": True,
        "static": False,
        "unloadable": False,
        "description": str(installation.descriptor.get("description", "")),
        "links": {
            "self": self_link,
            "modify": self_link,
            "delete": self_link,
            "plugin-summary": f"{self_link}/summary",
        },
    }
    vendor = installation.descriptor.get("vendor")
    if isinstance(vendor, dict):
        plugin["vendor"] = {
            "name": str(vendor.get("name", "")),
            "link": str(vendor.get("url", "")),
        }
    return plugin


def _system_plugin_json(root: str, key: str) -> dict[str, Any]:
    self_link = f"{root}/{key}-key"
    return {
        "key": key,
        **SYSTEM_PLUGINS[key],
        "enabled": True,
        "userInstalled": False,
        "optional": False,
        "static": False,
        "unloadable": False,
        "links": {"self": self_link, "plugin-summary": f"{self_link}/summary"},
    }


def _injected_failure(host: Host) -> web.Response | None:
    failure = host.take_injected_failure()
    if failure is None:
        return None
    status, message = failure
    return web.json_response({"errorMessage": message}, status=status)


def _authenticate(host: Host, request: web.Request) -> tuple[str | None, web.Response | None]:
    """``(user, None)`` for an admin, else ``(user or None, the 401/403 answer)``.

    ``?os_authType=basic`` needs no handling: it only asks for the Basic auth checked here.
    """
    credentials = basic_credentials(request.headers.get("Authorization", ""))
    if credentials is not None:
        user, password = credentials
        if password_matches(host.settings.users, user, password):
            return user, None
        if password_matches(host.settings.non_admins, user, password):
            return user, web.Response(status=403, text=NOT_ADMIN_TEXT)
    logger.info("refused unauthenticated %s %s", request.method, request.path)
    return None, web.Response(
        status=401,
        text=NOT_AUTHENTICATED_TEXT,
        headers={"WWW-Authenticate": 'Basic realm="protected-area"'},
    )


def _record_call(host: Host, request: web.Request, status: int, user: str | None) -> None:
    host.record.add(UpmCall(method=request.method, path=request.path, status=status, user=user))
    logger.debug("%s %s -> %d", request.method, request.path, status)


def _is_root(path: str, prefix: str) -> bool:
    return path.rstrip("/") == f"{prefix}/1.0"


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _as_text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"errorMessage": message}, status=status)


def _not_found(key: str) -> web.Response:
    return _error(404, f"The app {key!r} is not installed.")


def _not_modifiable(key: str) -> web.Response:
    return web.json_response(
        {
            "errorMessage": f"The app {key!r} is a system app and cannot be uninstalled "
            "or modified.",
            "subCode": NOT_UNINSTALLABLE_SUB_CODE,
        },
        status=403,
    )
