"""Send a captured request to the add-on again, as the host would send it now.

The replay goes through the proxy, like the original: it is captured, its JWT is inspected,
and it gets an id of its own (with ``replay_of``). What is sent:

- the method, target, headers and body as captured (or as edited: ``editable_text`` and
  ``parse_edited``), hop-by-hop headers and the body's framing made anew;
- a Connect JWT re-signed as the host would sign it now: the same claims (tenant, ``sub``,
  ``context``...), a fresh ``iat`` and ``exp`` (the original's lifetime), and ``qsh``
  recomputed for the request as sent; a context token keeps ``qsh: "context-qsh"``. It is
  signed with the tenant's ``sharedSecret``, found as the inspector finds it;
- unchanged (the token as captured, expired or not) only when asked: a token connect-dev
  cannot re-sign (unknown tenant; an install callback, which the host signs with its own RSA
  key) stops the replay with the reason instead.

The edit file never holds a credential: each secret value (credential headers, secret query
parameters and body fields, the JWT) is written as a numbered placeholder and put back when
the file is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import json
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus, urlsplit

from .. import jwt
from ..errors import DevloopError
from ..proxy.capture import Capture, Exchange
from ..proxy.http1 import HOP_BY_HOP
from ..redact import MASK, is_secret_name
from ..secret import Secret
from .view import ViewContext, bodies, dechunk, query_token, summary, token_in

__all__ = [
    "CannotResignError",
    "NotCapturedError",
    "ReplayError",
    "ReplayOutcome",
    "Signer",
    "editable_text",
    "not_captured",
    "parse_edited",
    "replay",
]

# How long a replay waits for the add-on's answer through the proxy (the proxy's own bound on
# the add-on is longer; a replay is a person waiting).
REPLAY_TIMEOUT_SECONDS = 60.0
# Tokens live this long when the original's lifetime is unusable (Cloud signs for 3 minutes).
DEFAULT_LIFETIME_S = jwt.DEFAULT_TTL_S
MAX_LIFETIME_S = 3600
_PLACEHOLDER = re.compile(re.escape(MASK) + r"\[(\d+)\]")
# Headers the replay writes itself: the framing, and hop-by-hop ones.
_REWRITTEN = HOP_BY_HOP | {"content-length", "transfer-encoding"}

Signer = Callable[[Mapping[str, Any]], Awaitable[tuple[str, Secret]]]
"""Finds the tenant a token's claims name and its sharedSecret; raises ``DevloopError`` with
the reason when it cannot."""


class ReplayError(DevloopError):
    """A replay that was not sent (or got no answer), and why."""


class CannotResignError(ReplayError):
    """The request carries a Connect JWT connect-dev cannot sign again; ``--unchanged`` (the
    dashboard's ``u``) sends it as captured."""


class NotCapturedError(ReplayError):
    """The id names no exchange the capture keeps."""


@dataclass(frozen=True)
class ReplayOutcome:
    original: Exchange
    replay: Exchange
    signing: str  # re-signed | unchanged | none (the request carried no Connect JWT)
    note: str  # what was done to the token, in a sentence

    def to_dict(self) -> dict[str, Any]:
        return {
            "original": summary(self.original),
            "replay": summary(self.replay),
            "signing": self.signing,
            "note": self.note,
            "body_diff": body_diff(self.original, self.replay),
        }


@dataclass
class _Request:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes


async def replay(
    capture: Capture,
    proxy_url: str,
    exchange_id: int,
    *,
    signer: Signer,
    context: ViewContext,
    edited: str | None = None,
    unchanged: bool = False,
    clock: Callable[[], float] = time.time,
) -> ReplayOutcome:
    original = capture.get(exchange_id)
    if original is None:
        raise not_captured(capture, exchange_id)
    if original.request_truncated:
        raise ReplayError(
            f"request {exchange_id} cannot be sent again: its body was "
            f"{original.request_size:,} bytes and the capture kept only "
            f"{len(original.request_body):,}",
            hint="Raise [inspector] max_body in connect-dev.toml to capture whole bodies.",
        )
    request = _as_captured(original) if edited is None else parse_edited(edited, original)
    signing, note = "none", "the request carried no Connect JWT: sent as captured"
    token = token_in(request.headers, request.target)
    if token is not None:
        if unchanged:
            signing, note = "unchanged", "sent with the token as captured (not re-signed)"
        else:
            new_token, note = await _resign(token[1], request, original, signer, context, clock)
            _put_token(request, token[0], new_token)
            if token[0] == "header" and query_token(request.target) is not None:
                # The same request carried it in ?jwt= too: an add-on may read either.
                _put_token(request, "query", new_token)
            signing = "re-signed"
    sent = await _send(capture, proxy_url, exchange_id, request)
    return ReplayOutcome(original, sent, signing, note)


def body_diff(original: Exchange, replayed: Exchange) -> str:
    """The difference of the two response bodies as shown (masked), unified; "" when equal."""
    before = _shown(original).splitlines()
    after = _shown(replayed).splitlines()
    if before == after:
        return ""
    lines = difflib.unified_diff(
        before, after, f"response #{original.id}", f"response #{replayed.id}", lineterm=""
    )
    return "\n".join(lines)


# --- the edit file ------------------------------------------------------------------------


def editable_text(exchange: Exchange) -> str:
    """The request as an HTTP/1.1 message to edit, every secret value a placeholder."""
    request = _as_captured(exchange)
    secrets = _secrets_of(request)
    lines = [
        f"# connect-dev: replay of request {exchange.id}. Edit, save and quit the editor to",
        "# send it; an empty file sends nothing. A Connect JWT is re-signed for the request",
        f"# as it is sent. {MASK}[n] stands for a captured credential, sent as it was.",
        f"{request.method} {request.target} HTTP/1.1",
        *(f"{name}: {value}" for name, value in request.headers),
        "",
    ]
    text = "\n".join(lines) + "\n"
    body = request.body
    try:
        text += body.decode("utf-8")
    except UnicodeDecodeError:
        raise ReplayError(
            f"request {exchange.id} has a binary body, which cannot be edited as text",
            hint=f"Replay it without --edit: `connect-dev replay {exchange.id}`.",
        ) from None
    for number, secret in enumerate(secrets):
        text = text.replace(secret, f"{MASK}[{number}]")
    return text


def parse_edited(text: str, exchange: Exchange) -> _Request:
    """The request the user saved (``editable_text`` edited), placeholders put back."""
    secrets = _secrets_of(_as_captured(exchange))

    def restore(match: re.Match[str]) -> str:
        number = int(match.group(1))
        if number >= len(secrets):
            raise ReplayError(
                f"the edited request names {match.group(0)}, which stands for no captured "
                "credential",
                hint="Keep the placeholders as they were written, or write the value itself.",
            )
        return secrets[number]

    # Comments (and blank lines) before the request line are the file's; a line that starts
    # with "#" in the body is the body's. Errors name lines as the editor numbers them, and
    # quote them as written (placeholders, not the credentials they stand for).
    lines = text.split("\n")
    index = 0
    while index < len(lines) and (lines[index].startswith("#") or not lines[index].strip()):
        index += 1
    if index == len(lines):
        raise ReplayError("the edited request is empty: nothing was sent")
    written = lines[index].rstrip("\r")
    request_line = _PLACEHOLDER.sub(restore, written)
    parts = request_line.split(" ")
    if len(parts) not in (2, 3) or not parts[1].startswith("/"):
        raise ReplayError(
            f"line {index + 1} of the edited request is not a request line: {written[:80]!r}",
            hint="Write it as METHOD /path?query HTTP/1.1",
        )
    headers: list[tuple[str, str]] = []
    index += 1
    while index < len(lines) and lines[index].rstrip("\r"):
        line = lines[index].rstrip("\r")
        index += 1
        if line.startswith("#"):
            continue  # a comment among the headers
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise ReplayError(
                f"line {index} of the edited request is not a header: {line[:80]!r}",
                hint="Write headers as Name: value, then an empty line before the body.",
            )
        headers.append((name, _PLACEHOLDER.sub(restore, value.strip())))
    body_text = "\n".join(lines[index + 1 :])
    body = _PLACEHOLDER.sub(restore, body_text).encode("utf-8")
    if not exchange.request_body and not body.strip():
        body = b""
    elif body == exchange.request_body.decode("utf-8", "replace").encode("utf-8") + b"\n":
        body = bytes(exchange.request_body)  # the newline the editor added is not the user's
    return _Request(parts[0].upper(), parts[1], headers, body)


# --- signing ------------------------------------------------------------------------------


async def _resign(
    token: str,
    request: _Request,
    original: Exchange,
    signer: Signer,
    context: ViewContext,
    clock: Callable[[], float],
) -> tuple[str, str]:
    why_not = f"request {original.id} cannot be re-signed"
    unchanged_hint = (
        f"`connect-dev replay {original.id} --unchanged` sends it with the token as captured "
        "(the add-on rejects it once it has expired)."
    )
    try:
        header = jwt.unverified_header(token)
        claims = jwt.unverified_claims(token)
    except jwt.JwtVerificationError as exc:
        raise CannotResignError(f"{why_not}: its token is not a JWT", hint=unchanged_hint) from exc
    algorithm = header.get("alg")
    if algorithm != "HS256":
        raise CannotResignError(
            f"{why_not}: its token is signed with {algorithm}, which only the host can sign "
            "(install callbacks are signed with the host's own RSA key)",
            hint=unchanged_hint,
        )
    try:
        tenant, secret = await signer(claims)
    except DevloopError as exc:
        raise CannotResignError(f"{why_not}: {exc.message}", hint=unchanged_hint) from exc
    now = int(clock())
    iat, exp = claims.get("iat"), claims.get("exp")
    lifetime = DEFAULT_LIFETIME_S
    numbers = isinstance(iat, int | float) and isinstance(exp, int | float)
    if numbers and 0 < exp - iat <= MAX_LIFETIME_S:  # type: ignore[operator]
        lifetime = int(exp - iat)  # type: ignore[operator]
    fresh = dict(claims)
    fresh["iat"] = now
    fresh["exp"] = now + lifetime
    path, _, query = request.target.partition("?")
    if claims.get("qsh") == jwt.CONTEXT_QSH:
        qsh_note = 'qsh kept as "context-qsh" (a context token)'
    else:
        canonical = jwt.canonical_request(request.method, path, query, context.public_path)
        fresh["qsh"] = jwt.query_string_hash(canonical)
        qsh_note = f"qsh recomputed for {canonical!r}"
    note = (
        f"re-signed with the sharedSecret of tenant {tenant!r}: iat now, exp in "
        f"{lifetime} s, {qsh_note}"
    )
    return jwt.encode_hs256(fresh, secret.reveal()), note


def _put_token(request: _Request, where: str, token: str) -> None:
    if where == "header":
        request.headers = [
            (name, f"JWT {token}" if name.lower() == "authorization" else value)
            for name, value in request.headers
        ]
        return
    path, _, query = request.target.partition("?")
    items = [
        f"{item.partition('=')[0]}={token}"
        if unquote_plus(item.partition("=")[0]) == jwt.JWT_PARAM
        else item
        for item in query.split("&")
    ]
    request.target = f"{path}?{'&'.join(items)}"


# --- sending ------------------------------------------------------------------------------


async def _send(capture: Capture, proxy_url: str, exchange_id: int, request: _Request) -> Exchange:
    parts = urlsplit(proxy_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
    except (OSError, TimeoutError) as exc:
        raise ReplayError(f"cannot reach the proxy at {proxy_url}: {exc}") from exc
    local_port = int(writer.get_extra_info("sockname")[1])
    done = capture.expect_replay(local_port, exchange_id)
    try:
        writer.write(_wire(request))
        await writer.drain()
        async with asyncio.timeout(REPLAY_TIMEOUT_SECONDS):
            while await reader.read(65536):
                pass  # the proxy captures the answer; the connection closes after it
            return await asyncio.wait_for(done, 10)
    except TimeoutError as exc:
        raise ReplayError(
            f"the replay of request {exchange_id} got no answer within {REPLAY_TIMEOUT_SECONDS:g} s"
        ) from exc
    except OSError as exc:
        raise ReplayError(f"the replay of request {exchange_id} failed: {exc}") from exc
    finally:
        capture.forget_replay(local_port)
        writer.close()
        with contextlib.suppress(OSError):  # the proxy closed first: no failure of the replay
            await writer.wait_closed()


def _wire(request: _Request) -> bytes:
    lines = [f"{request.method} {request.target} HTTP/1.1"]
    lines += [f"{n}: {v}" for n, v in request.headers if n.lower() not in _REWRITTEN]
    if request.body or request.method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(request.body)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + request.body


# --- helpers ------------------------------------------------------------------------------


def _as_captured(exchange: Exchange) -> _Request:
    request = exchange.request
    headers = [(n, v) for n, v in request.headers if n.lower() not in _REWRITTEN]
    body = bytes(exchange.request_body)
    if request.chunked:
        body = dechunk(body)[0]
    return _Request(request.method, request.target, headers, body)


def _secrets_of(request: _Request) -> list[str]:
    """Every credential value of a request, longest first (so none is a part of another's
    placeholder)."""
    found: list[str] = []
    for name, value in request.headers:
        if is_secret_name(name):
            # "JWT <token>": the scheme stays readable, the credential is the rest.
            scheme, _, rest = value.partition(" ")
            found.append(rest if rest and scheme.isalpha() else value)
    # A value in the target or a form body stands there percent-encoded or not: both forms.
    for name, value, raw in _fields(request.target.partition("?")[2]):
        if name == jwt.JWT_PARAM or is_secret_name(name):
            found += (value, raw)
    text = request.body.decode("utf-8", "replace")
    for name, value, raw in _fields(text):
        if is_secret_name(name):
            found += (value, raw)
    found += _json_secrets(text)
    unique = sorted({value for value in found if len(value) >= 4}, key=len, reverse=True)
    haystack = _haystack(request)
    return [value for value in unique if value in haystack]


def _fields(text: str) -> Iterator[tuple[str, str, str]]:
    """The ``name=value`` items of a query or a form body: the name decoded, and the value
    decoded and as written."""
    for item in text.split("&"):
        name, sep, raw = item.partition("=")
        if sep:
            yield unquote_plus(name), unquote_plus(raw), raw


def _haystack(request: _Request) -> str:
    headers = "\n".join(f"{n}: {v}" for n, v in request.headers)
    return f"{request.target}\n{headers}\n{request.body.decode('utf-8', 'replace')}"


def _json_secrets(text: str) -> list[str]:
    try:
        document = json.loads(text)
    except ValueError:
        return []
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, str) and is_secret_name(str(key)):
                    found.append(item)
                else:
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(document)
    return found


def _shown(exchange: Exchange) -> str:
    """The response body as the diff compares it: as shown (pretty JSON, form lines, text),
    but an HTML page as its masked text, not its one-line summary."""
    body = bodies(exchange)[1]
    return body.text or "" if body.kind == "html" else body.shown


def not_captured(capture: Capture, exchange_id: int) -> NotCapturedError:
    oldest, last = capture.oldest_id(), capture.last_id
    if exchange_id > last or exchange_id < 1:
        where = f"the last request so far is {last}" if last else "no request was captured yet"
    else:
        where = f"the capture keeps the last {capture.keep} ({oldest}-{last})"
    return NotCapturedError(
        f"request {exchange_id} is not in the capture: {where}",
        hint="`connect-dev requests` lists the ids it keeps.",
    )
