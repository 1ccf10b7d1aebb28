"""The control API under ``{origin}/_emulator``: lets tests and the CLI drive a site running in
another process. No auth, so it answers loopback clients only."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .install import InstallFailure, reinstall, set_enabled
from .record import CallbackRecord
from .settings import DEFAULT_FAILURE_MESSAGE, REINSTALL_SECRETS
from .webhooks import EntityNotFound

if TYPE_CHECKING:
    from .types import Host

__all__ = ["control_routes", "json_object", "refuse_remote"]

logger = logging.getLogger(__name__)


def control_routes(host: Host) -> list[web.RouteDef]:
    async def info(request: web.Request) -> web.Response:
        if (refusal := refuse_remote(request)) is not None:
            return refusal
        return web.json_response(host.describe())

    async def record(request: web.Request) -> web.Response:
        if (refusal := refuse_remote(request)) is not None:
            return refusal
        if "rest_calls_since" in request.query:
            # What `up` polls once a second: only the REST calls it has not seen yet.
            try:
                since = int(request.query["rest_calls_since"])
            except ValueError:
                return _bad_request('"rest_calls_since" must be a whole number')
            calls = host.record.rest_calls
            return web.json_response(
                {
                    "rest_calls": [dataclasses.asdict(c) for c in calls[max(since, 0) :]],
                    "rest_calls_total": len(calls),
                }
            )
        return web.json_response(host.record.to_dict())

    async def faults(request: web.Request) -> web.Response:
        if (refusal := refuse_remote(request)) is not None:
            return refusal
        body = await json_object(request)
        if body is None:
            return _bad_request("send a JSON object")
        problem = _fault_problem(body)
        if problem is not None:
            return _bad_request(problem)
        if "fail_next" in body:
            host.fail_next(
                body["fail_next"],
                body.get("fail_status", 500),
                body.get("fail_message", DEFAULT_FAILURE_MESSAGE),
            )
        if "install_delay_ms" in body:
            host.set_install_delay(body["install_delay_ms"])
        if "dev_mode" in body:
            host.set_dev_mode(body["dev_mode"])
        if "uploads_enabled" in body:
            host.set_uploads_enabled(body["uploads_enabled"])
        if "require_signed_install" in body:
            host.set_require_signed_install(body["require_signed_install"])
        if "descriptor_installs_refused" in body:
            host.set_descriptor_installs_refused(body["descriptor_installs_refused"])
        if "forge_deploy_delay_ms" in body:
            host.set_forge_deploy_delay(body["forge_deploy_delay_ms"])
        if "forge_reject_credentials" in body:
            host.set_forge_reject_credentials(body["forge_reject_credentials"])
        if "forge_fail_next" in body:
            host.forge_fail_next(body["forge_fail_next"], body.get("forge_fail_message"))
        if "reinstall_secret" in body:
            host.set_reinstall_secret(body["reinstall_secret"])
        return web.json_response(host.describe())

    async def reset(request: web.Request) -> web.Response:
        if (refusal := refuse_remote(request)) is not None:
            return refusal
        host.reset()
        return web.json_response(host.describe())

    async def send(request: web.Request) -> web.Response:
        if (refusal := refuse_remote(request)) is not None:
            return refusal
        body = await json_object(request)
        if body is None:
            return _bad_request("send a JSON object")
        key, path = body.get("key"), body.get("path", "/")
        method, style = body.get("method", "GET"), body.get("as", "iframe")
        query = body.get("query") or {}
        if not isinstance(key, str) or not isinstance(path, str) or not isinstance(method, str):
            return _bad_request('"key", "path" and "method" must be strings')
        if style not in ("iframe", "webhook"):
            return _bad_request('"as" must be "iframe" or "webhook"')
        if not isinstance(query, dict) or not all(
            isinstance(v, str) or (isinstance(v, list) and all(isinstance(i, str) for i in v))
            for v in query.values()
        ):
            return _bad_request('"query" must map names to strings or lists of strings')
        try:
            answer = await host.send_request(
                key, path, method=method, query=query, style=style, body=body.get("body")
            )
        except LookupError as exc:
            return web.json_response({"error": str(exc)}, status=404)
        return web.json_response(answer.to_dict(), status=200 if answer.status else 502)

    return [
        web.get("/_emulator", info),
        web.get("/_emulator/record", record),
        web.post("/_emulator/faults", faults),
        web.post("/_emulator/reset", reset),
        web.post("/_emulator/send", send),
        *_app_routes(host),
        *_webhook_routes(host),
    ]


def _app_routes(host: Host) -> list[web.RouteDef]:
    """``/_emulator/apps/{key}/...``: what Cloud or a site admin does to an installed app, on
    demand. Each answers the app's ``key`` and ``enabled`` and the ``callbacks`` it sent."""

    def answer(key: str, callbacks: list[CallbackRecord]) -> web.Response:
        installation = host.installations.get(key)
        return web.json_response(
            {
                "key": key,
                "enabled": installation.enabled if installation else None,
                "callbacks": [dataclasses.asdict(callback) for callback in callbacks],
            }
        )

    async def reinstall_app(request: web.Request) -> web.Response:
        if (refusal := refuse_remote(request)) is not None:
            return refusal
        body = await json_object(request)
        if body is None:
            return _bad_request("send a JSON object")
        if unknown := sorted(set(body) - {"secret"}):
            return _bad_request(f"unknown fields: {', '.join(unknown)} (known: secret)")
        secret = body.get("secret", "new")
        if secret not in REINSTALL_SECRETS:
            return _bad_request(f"secret must be one of {', '.join(REINSTALL_SECRETS)}")
        key = request.match_info["key"]
        try:
            callbacks = await reinstall(host, key, reinstall_secret=secret)
        except LookupError as exc:
            return web.json_response({"error": str(exc)}, status=404)
        except InstallFailure as failure:
            return web.json_response(
                {
                    "error": failure.message,
                    "sub_code": failure.sub_code,
                    "key": key,
                    "callbacks": [dataclasses.asdict(c) for c in failure.callbacks],
                },
                status=502,
            )
        return answer(key, callbacks)

    def switch(enabled: bool) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            if (refusal := refuse_remote(request)) is not None:
                return refusal
            body = await json_object(request)
            if body is None or body:
                return _bad_request("send no body, or an empty JSON object")
            key = request.match_info["key"]
            try:
                callbacks = await set_enabled(host, key, enabled)
            except LookupError as exc:
                return web.json_response({"error": str(exc)}, status=404)
            return answer(key, callbacks)

        return handler

    base = "/_emulator/apps/{key}"
    return [
        web.post(f"{base}/reinstall", reinstall_app),
        web.post(f"{base}/enable", switch(True)),
        web.post(f"{base}/disable", switch(False)),
    ]


def _webhook_routes(host: Host) -> list[web.RouteDef]:
    """``/_emulator/webhooks``: the deliveries and what each app declares (GET); fire one
    event now (POST ``.../fire`` ``{"event", "issue"?, "page"?, "key"?}``), answered with
    the deliveries it made once they have ended (webhooks.py)."""

    async def deliveries(request: web.Request) -> web.Response:
        if (refusal := refuse_remote(request)) is not None:
            return refusal
        return web.json_response(
            {
                "events": list(host.webhooks.events),
                "declared": host.webhooks.declared(),
                "deliveries": [dataclasses.asdict(d) for d in host.record.webhooks],
            }
        )

    async def fire(request: web.Request) -> web.Response:
        if (refusal := refuse_remote(request)) is not None:
            return refusal
        body = await json_object(request)
        if body is None:
            return _bad_request("send a JSON object")
        if unknown := sorted(set(body) - {"event", "issue", "page", "key"}):
            return _bad_request(
                f"unknown fields: {', '.join(unknown)} (known: event, issue, page, key)"
            )
        if not isinstance(body.get("event"), str) or not body["event"]:
            return _bad_request('"event" must be a webhook event, e.g. "jira:issue_created"')
        given = {name: body.get(name) for name in ("issue", "page", "key")}
        if any(value is not None and not isinstance(value, str) for value in given.values()):
            return _bad_request('"issue", "page" and "key" must be strings')
        try:
            result = await host.webhooks.fire(body["event"], **given)
        except EntityNotFound as exc:
            return web.json_response({"error": str(exc)}, status=404)
        except ValueError as exc:
            return _bad_request(str(exc))
        return web.json_response(result.to_dict())

    return [
        web.get("/_emulator/webhooks", deliveries),
        web.post("/_emulator/webhooks/fire", fire),
    ]


def _fault_problem(body: dict[str, Any]) -> str | None:
    expected: dict[str, type] = {
        "fail_next": int,
        "fail_status": int,
        "fail_message": str,
        "install_delay_ms": int,
        "dev_mode": bool,
        "uploads_enabled": bool,
        "require_signed_install": bool,
        "descriptor_installs_refused": bool,
        "forge_deploy_delay_ms": int,
        "forge_reject_credentials": bool,
        "forge_fail_next": int,
        "forge_fail_message": str,
        "reinstall_secret": str,
    }
    unknown = sorted(set(body) - set(expected))
    if unknown:
        return f"unknown fields: {', '.join(unknown)} (known: {', '.join(expected)})"
    for name, kind in expected.items():
        if name not in body:
            continue
        value = body[name]
        # bool is an int in Python, but `"fail_next": true` is a caller's mistake.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            return f"{name} must be a {kind.__name__}"
        if isinstance(value, int) and value < 0:
            return f"{name} must not be negative"
    status = body.get("fail_status", 500)
    if isinstance(status, int) and not 400 <= status <= 599:
        return "fail_status must be an HTTP error status (400-599)"
    if body.get("reinstall_secret", "new") not in REINSTALL_SECRETS:
        return f"reinstall_secret must be one of {', '.join(REINSTALL_SECRETS)}"
    return None


def refuse_remote(request: web.Request) -> web.Response | None:
    """The 403 for a control request that does not come from loopback; ``None`` for one that
    does (the Forge side under ``/_emulator/forge`` is guarded the same way)."""
    # The site may be bound to all interfaces (e.g. in a container); its controls stay local.
    try:
        local = request.remote is not None and ipaddress.ip_address(request.remote).is_loopback
    except ValueError:
        local = False
    if local:
        return None
    logger.warning("refused control request from %s", request.remote)
    return web.json_response({"error": "the control API answers loopback only"}, status=403)


async def json_object(request: web.Request) -> dict[str, Any] | None:
    """The request's JSON object (``{}`` for an empty body), or ``None`` when it is not one."""
    text = await request.text()
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _bad_request(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)
