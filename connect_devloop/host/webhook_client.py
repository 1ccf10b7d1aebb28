"""``connect-dev host fire``: fire a webhook on a running emulated host through its control API
(``POST /_emulator/webhooks/fire``) and say what was delivered.

One request with the standard library's urllib; the deliveries are the host's to make.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from ..errors import DevloopError

__all__ = ["DEFAULT_HOST_URL", "FIRE_TIMEOUT_S", "fire_remotely", "report"]

DEFAULT_HOST_URL = "http://127.0.0.1:2990"
# The host answers once every delivery has ended; each may take its 10 s timeout.
FIRE_TIMEOUT_S = 120.0
START_HINT = "Start one with `connect-dev host`, or name a running one with --host URL."


def fire_remotely(
    host_url: str,
    event: str,
    *,
    issue: str | None = None,
    page: str | None = None,
    key: str | None = None,
    timeout: float = FIRE_TIMEOUT_S,
) -> dict[str, Any]:
    """The host's answer to firing ``event``: ``{"event", "deliveries", "skipped",
    "declared"}``. ``host_url`` may be the site's origin or its base URL (``.../jira``).
    Raises ``DevloopError`` when no emulated host answers or it refuses the request."""
    parts = urlsplit(host_url if "://" in host_url else f"http://{host_url}")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise DevloopError(
            f"--host {host_url!r} is not a URL", hint="e.g. --host http://127.0.0.1:2990"
        )
    origin = f"{parts.scheme}://{parts.netloc}"
    fields = {"event": event, "issue": issue, "page": page, "key": key}
    body = json.dumps({name: value for name, value in fields.items() if value is not None})
    request = urllib.request.Request(
        f"{origin}/_emulator/webhooks/fire",
        data=body.encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = _json(response.read())
    except urllib.error.HTTPError as exc:
        answer = _json(exc.read())
        message = answer.get("error") if isinstance(answer.get("error"), str) else None
        if exc.code == 404 and message is None:
            raise DevloopError(
                f"{origin} is not an emulated host that fires webhooks (HTTP 404)",
                hint=START_HINT,
            ) from exc
        raise DevloopError(
            f"the emulated host at {origin} refused: {message or f'HTTP {exc.code}'}",
            hint=_refusal_hint(exc.code),
        ) from exc
    except (TimeoutError, urllib.error.URLError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DevloopError(f"no emulated host answers at {origin} ({reason})", START_HINT) from exc
    if not isinstance(answer.get("deliveries"), list):
        raise DevloopError(f"{origin} answered something that is not a fire result: {answer}")
    return answer


def report(result: dict[str, Any]) -> tuple[list[str], DevloopError | None]:
    """Lines that show each delivery (status, time, URL) and each webhook not sent, and the
    error to exit with: none was delivered, or one failed."""
    event = str(result.get("event"))
    deliveries: list[dict[str, Any]] = result.get("deliveries") or []
    skipped: list[dict[str, Any]] = result.get("skipped") or []
    lines = []
    for delivery in deliveries:
        status = delivery.get("status")
        shown = str(status) if status is not None else "---"
        line = (
            f"{shown:>3}  {delivery.get('duration_ms', 0):>7.1f} ms  POST {delivery.get('url')}"
            f"  ({delivery.get('key')}, {event})"
        )
        if delivery.get("error"):
            line += f": {delivery['error']}"
        elif not _delivered(delivery) and delivery.get("answer"):
            line += f": {_first_line(str(delivery['answer']))}"
        lines.append(line)
    for skip in skipped:
        lines.append(
            f"not sent  {skip.get('url')}  ({skip.get('key')}, {event}): {skip.get('reason')}"
        )
    failed = [d for d in deliveries if not _delivered(d)]
    if failed:
        count = _plural(len(deliveries), "delivery", "deliveries")
        return lines, DevloopError(
            f"{len(failed)} of {len(deliveries)} {count} of {event} failed",
            hint="The add-on's answer is on the line; check its log, and its JWT check: "
            "webhooks are signed with the tenant's sharedSecret (HS256), qsh of POST and the URL.",
        )
    if deliveries:
        return lines, None
    return lines, DevloopError(f"no webhook was delivered for {event}", hint=_why_none(result))


def _why_none(result: dict[str, Any]) -> str:
    event = str(result.get("event"))
    declared: dict[str, list[str]] = result.get("declared") or {}
    if result.get("skipped"):
        return "Every app that declares it was left out, for the reasons above."
    if not declared:
        return "No app is installed on the emulated host: install one (connect-dev up) first."
    lines = [f"No installed app declares {event} in modules.webhooks. Declared:"]
    for key, events in declared.items():
        lines.append(f"{key}: {', '.join(events) if events else 'no webhooks'}")
    return "\n        ".join(lines)


def _delivered(delivery: dict[str, Any]) -> bool:
    status = delivery.get("status")
    return isinstance(status, int) and 200 <= status < 300


def _refusal_hint(status: int) -> str | None:
    if status == 403:
        return "The control API answers loopback clients only."
    if status == 404:
        return "Name an issue (--issue KEY) or page (--page ID) the site has."
    return None


def _first_line(text: str, limit: int = 120) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _plural(count: int, one: str, many: str) -> str:
    return one if count == 1 else many


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
