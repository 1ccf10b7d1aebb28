"""Captured exchanges as a HAR 1.2 document (http://www.softwareishard.com/blog/har-12-spec/).

A HAR file is meant to be attached to a bug report or opened in a browser's network panel, so
it carries what the dashboard shows and no more: every header, query parameter, cookie and body
comes from ``view`` (``detail`` and ``body_of``), masked there, unless ``include_secrets``.
What HAR has no field for (the inspector's id, the replayed id, the JWT verdict, which body was
cut short) goes in underscore-prefixed custom fields, which the spec allows anywhere.

The proxy sees each exchange as one span, from the request head to the end of the response:
it is reported as ``wait``, with ``send`` and ``receive`` 0 (they are not measured apart).
"""

from __future__ import annotations

import contextlib
import string
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from .. import __version__
from ..proxy.capture import Exchange
from ..redact import mask_value
from .view import Body, ViewContext, bodies, detail, response_headers

__all__ = ["HAR_VERSION", "to_har"]

HAR_VERSION = "1.2"
CREATOR = "connect-dev"

# Printable ASCII stays as it is in a URL (the target is already percent-encoded as the client
# sent it); only what masking put there (the mask's bullets) needs encoding.
_URL_SAFE = "".join(c for c in string.printable if not c.isspace())
# A malformed Expires or Max-Age leaves ``expires`` out, as a browser ignores it.
_MALFORMED = (ValueError, TypeError, OverflowError)


def to_har(
    exchanges: Sequence[Exchange], context: ViewContext, *, include_secrets: bool = False
) -> dict[str, Any]:
    """A HAR 1.2 document of ``exchanges``, oldest first, masked unless ``include_secrets``."""
    ordered = sorted(exchanges, key=lambda exchange: (exchange.started, exchange.id))
    return {
        "log": {
            "version": HAR_VERSION,
            "creator": {"name": CREATOR, "version": __version__},
            "entries": [_entry(exchange, context, include_secrets) for exchange in ordered],
        }
    }


def _entry(exchange: Exchange, context: ViewContext, include_secrets: bool) -> dict[str, Any]:
    shown = detail(exchange, context, include_secrets=include_secrets)
    # detail() gives bodies as summaries; HAR needs their text: the same bodies, as Body.
    request_body, response_body = bodies(exchange, include_secrets=include_secrets)
    raw_response_headers = response_headers(exchange)
    duration = max(exchange.duration_ms, 0.0)
    entry: dict[str, Any] = {
        "startedDateTime": shown["started"],
        # HAR requires ``time`` to be the sum of the timings that are not -1.
        "time": duration,
        "request": _request(exchange, shown["request"], request_body, context, include_secrets),
        "response": _response(
            exchange, shown["response"], raw_response_headers, response_body, include_secrets
        ),
        "cache": {},
        "timings": {"send": 0, "wait": duration, "receive": 0},
        "_id": exchange.id,
        "_replayOf": exchange.replay_of or None,
        "_local": exchange.local,
        "_jwt": _jwt(shown),
    }
    if exchange.client_port:
        entry["connection"] = str(exchange.client_port)
    if exchange.failure:
        entry["_addonError"] = exchange.failure
    cut = [
        f"{which} body: {body.note}"
        for which, body in (("request", request_body), ("response", response_body))
        if body.truncated
    ]
    if cut:
        entry["comment"] = "; ".join(cut)
    return entry


def _request(
    exchange: Exchange,
    shown: dict[str, Any],
    body: Body,
    context: ViewContext,
    include_secrets: bool,
) -> dict[str, Any]:
    target: str = shown["target"]  # masked (mask_path) unless include_secrets
    result: dict[str, Any] = {
        "method": shown["method"],
        "url": _origin(exchange, context) + quote(target, safe=_URL_SAFE),
        "httpVersion": shown["http_version"],
        "cookies": [
            _cookie(name, value, include_secrets)
            for header in _values(exchange.request.headers, "cookie")
            for name, value in _cookie_pairs(header)
        ],
        "headers": _headers(shown["headers"]),
        "queryString": [
            {"name": name, "value": value}
            for name, value in parse_qsl(target.partition("?")[2], keep_blank_values=True)
        ],
        "headersSize": -1,
        "bodySize": exchange.request_size,
    }
    if exchange.request_size:
        result["postData"] = _post_data(body, include_secrets)
    return result


def _response(
    exchange: Exchange,
    shown: dict[str, Any],
    raw_headers: list[tuple[str, str]],
    body: Body,
    include_secrets: bool,
) -> dict[str, Any]:
    headers: list[list[str]] = shown["headers"]
    location = next((value for name, value in headers if name.lower() == "location"), "")
    return {
        "status": exchange.status,
        "statusText": shown["reason"],
        "httpVersion": shown["http_version"],
        "cookies": [
            _set_cookie(value, exchange.started, include_secrets)
            for value in _values(raw_headers, "set-cookie")
        ],
        "headers": _headers(headers),
        "content": _content(body, include_secrets),
        "redirectURL": location,
        "headersSize": -1,
        "bodySize": exchange.response_size,
    }


# --- bodies ---------------------------------------------------------------------------------


def _post_data(body: Body, include_secrets: bool) -> dict[str, Any]:
    data: dict[str, Any] = {"mimeType": body.content_type}
    text, encoding, withheld = _text(body, include_secrets)
    if text is not None:
        data["text"] = text
    if encoding:
        # HAR 1.2 has ``encoding`` for response content only; say it the same way here.
        data["_encoding"] = encoding
    if body.kind == "form" and body.text is not None:
        data["params"] = [
            {"name": name, "value": value}
            for name, value in parse_qsl(body.text, keep_blank_values=True)
        ]
    _notes(data, body, withheld)
    return data


def _content(body: Body, include_secrets: bool) -> dict[str, Any]:
    content: dict[str, Any] = {"size": body.size, "mimeType": body.content_type}
    if body.note.startswith("decoded from") and not body.truncated:
        # HAR's size is the decoded content's, and ``compression`` what the encoding saved.
        decoded = body.decoded_size
        content["size"] = decoded
        content["compression"] = decoded - body.size
    text, encoding, withheld = _text(body, include_secrets)
    if text is not None:
        content["text"] = text
    if encoding:
        content["encoding"] = encoding
    _notes(content, body, withheld)
    return content


def _text(body: Body, include_secrets: bool) -> tuple[str | None, str, str]:
    """The text HAR carries for ``body``, its encoding ("" or "base64"), and why it carries
    none (or "")."""
    if body.kind == "empty":
        return None, "", ""
    if body.text is not None:
        return body.text, "", ""
    if not include_secrets and _carries_credentials(body.content_type):
        # view masks JSON and form bodies field by field once parsed; one it could not parse
        # (cut short by the capture limit, malformed) comes back as raw bytes, unmasked. The
        # dashboard shows such a body as "binary, N bytes"; the file must not show more.
        return None, "", "content withheld: it could not be parsed, so it could not be masked"
    return body.base64, "base64", ""


def _carries_credentials(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return (
        media == "application/json"
        or media.endswith("+json")
        or media in ("application/x-www-form-urlencoded", "multipart/form-data")
    )


def _notes(data: dict[str, Any], body: Body, withheld: str) -> None:
    comment = "; ".join(part for part in (body.note, withheld) if part)
    if comment:
        data["comment"] = comment
    if body.truncated:
        data["_truncated"] = True


# --- headers, cookies, URL ------------------------------------------------------------------


def _headers(headers: Iterable[Sequence[str]]) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in headers]


def _values(headers: Iterable[tuple[str, str]], wanted: str) -> list[str]:
    return [value for name, value in headers if name.lower() == wanted]


def _cookie_pairs(header: str) -> list[tuple[str, str]]:
    pairs = []
    for item in header.split(";"):
        name, sep, value = item.strip().partition("=")
        if sep and name:
            pairs.append((name, value))
    return pairs


def _cookie(name: str, value: str, include_secrets: bool) -> dict[str, Any]:
    # view masks the whole Cookie header (a session cookie is a credential), so every value
    # is masked here too, whatever the cookie's name.
    return {"name": name, "value": value if include_secrets or not value else mask_value(value)}


def _set_cookie(header: str, started: float, include_secrets: bool) -> dict[str, Any]:
    first, *attributes = header.split(";")
    name, _, value = first.strip().partition("=")
    cookie = _cookie(name, value, include_secrets)
    for attribute in attributes:
        key, _, argument = attribute.strip().partition("=")
        key = key.lower()
        if key in ("path", "domain"):
            cookie[key] = argument
        elif key == "httponly":
            cookie["httpOnly"] = True
        elif key == "secure":
            cookie["secure"] = True
        elif key == "expires" and "expires" not in cookie:
            with contextlib.suppress(*_MALFORMED):
                cookie["expires"] = _iso(parsedate_to_datetime(argument))
        elif key == "max-age":
            # Max-Age wins over Expires (RFC 6265 §5.3); it counts from when the answer came.
            with contextlib.suppress(*_MALFORMED):
                moment = datetime.fromtimestamp(started, UTC) + timedelta(seconds=int(argument))
                cookie["expires"] = _iso(moment)
    return cookie


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _origin(exchange: Exchange, context: ViewContext) -> str:
    """Where the client sent the request: the public URL the add-on is published at; else
    what the request says of itself (a tunnel's X-Forwarded-Proto, its Host)."""
    parts = urlsplit(context.public_url)
    if parts.scheme and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}"
    request = exchange.request
    if request.host:
        return f"{request.forwarded_proto or 'http'}://{request.host}"
    parts = urlsplit(context.addon_url)
    return f"{parts.scheme or 'http'}://{parts.netloc or 'localhost'}"


# --- the JWT --------------------------------------------------------------------------------


def _jwt(shown: dict[str, Any]) -> dict[str, Any] | None:
    # ``detail`` gives the verdict masked as the dashboard shows it (unless secrets were asked).
    verdict: dict[str, Any] | None = shown["verdict"]
    token: dict[str, Any] | None = shown["jwt_detail"]
    if verdict is None and token is None:
        return None
    return {"verdict": shown["jwt"], "tenant": shown["tenant"], "checks": verdict, "token": token}
