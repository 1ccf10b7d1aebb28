"""A captured exchange as a person (or a file) may see it.

Credentials are masked unless ``include_secrets``: header values and query parameters by
name (``redact``), JSON and form fields by name at any depth (``sharedSecret`` of an install
callback, a ``password`` field), and the request's own Connect JWT wherever it appears
again (an add-on that echoes it). Bodies are decoded first (chunked framing, gzip/deflate),
then JSON and form bodies are pretty-printed, text kept, HTML and binary summarised.

The JWT section decodes the token without verifying it (the verdict, which did verify it, is
beside it) and shows the qsh the token carries next to the one computed for the request as
the host signs it (its canonical request), so a mismatch reads at a glance.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlsplit

from .. import jwt
from ..proxy.capture import Exchange
from ..redact import MASK, is_secret_name, mask_header, mask_path, mask_value, masked_mapping

__all__ = [
    "Body",
    "ViewContext",
    "bodies",
    "body_of",
    "dechunk",
    "detail",
    "mask_json_text",
    "query_token",
    "request_credentials",
    "request_token",
    "response_headers",
    "summary",
    "tenant_of",
    "token_in",
    "verdict_word",
]

# What a text body shows at most (the capture keeps more for HAR and replays).
MAX_SHOWN_TEXT = 16 * 1024
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class ViewContext:
    """What the view needs to know of the run: where the add-on is published, and where it
    listens (the paths the canonical request is computed against)."""

    public_url: str = ""
    addon_url: str = ""

    @property
    def public_path(self) -> str:
        return urlsplit(self.public_url).path.rstrip("/")


@dataclass(frozen=True)
class Body:
    kind: str  # empty | json | form | text | html | binary
    content_type: str
    size: int  # bytes on the wire, kept or not (after de-chunking, when all was kept)
    kept: int  # bytes the capture kept
    truncated: bool
    shown: str  # pretty-printed (json, form), as it is (text), or a one-line summary
    text: str | None  # the body as text, masked (None: binary; then ``base64``)
    base64: str | None = None
    note: str = ""  # why it is shown as it is (truncated, undecodable, ...)
    decoded_size: int = 0  # bytes after de-chunking and gzip/deflate (of what was kept)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": self.kind,
            "content_type": self.content_type,
            "size": self.size,
            "kept": self.kept,
            "truncated": self.truncated,
            "shown": self.shown,
        }
        if self.note:
            data["note"] = self.note
        return data


def request_token(exchange: Exchange) -> tuple[str, str] | None:
    """The request's Connect JWT and where it was: ``("header" | "query", token)``."""
    return token_in(exchange.request.headers, exchange.request.target)


def token_in(headers: Iterable[tuple[str, str]], target: str) -> tuple[str, str] | None:
    """The Connect JWT of a request with ``headers`` for ``target``, and where it is: the first
    ``Authorization`` header's when it says ``JWT``, else ``?jwt=`` (as the inspector and
    ``jwt.token_from_request`` read it)."""
    authorization = next(
        (value for name, value in headers if name.lower() == "authorization"), None
    )
    token = jwt.token_from_request(authorization, {})
    if token is not None:
        return "header", token
    token = query_token(target)
    return None if token is None else ("query", token)


def query_token(target: str) -> str | None:
    """The ``?jwt=`` of ``target`` (a path with its query), or None."""
    for name, value in parse_qsl(target.partition("?")[2], keep_blank_values=True):
        if name == jwt.JWT_PARAM and value:
            return value
    return None


def request_credentials(exchange: Exchange) -> list[str]:
    """Every credential the request carried (its credential headers, its ``?jwt=`` and other
    secret query parameters), to be masked wherever a body repeats one: an add-on that echoes
    its URL beside an Authorization header would show the other token. Longest first, so no
    part of one is left beside a mask; values under 8 characters are left alone (masking "1"
    would mask every digit)."""
    request = exchange.request
    found: list[str] = []
    for name, value in request.headers:
        if is_secret_name(name):
            found += [value, value.partition(" ")[2].strip()]
    for item in request.query.split("&"):
        name, _, value = item.partition("=")
        if _secret_field(unquote_plus(name)):
            found += [value, unquote_plus(value)]  # an echo may be either
    return sorted({value for value in found if len(value) >= 8}, key=len, reverse=True)


def summary(exchange: Exchange) -> dict[str, Any]:
    """One line of ``connect-dev requests``: no bodies, credentials masked."""
    verdict = exchange.verdict
    return {
        "id": exchange.id,
        "ts": round(exchange.started, 3),
        "method": exchange.request.method,
        "path": mask_path(exchange.request.target),
        "status": exchange.status,
        "duration_ms": exchange.duration_ms,
        "jwt": verdict_word(verdict),
        "tenant": tenant_of(verdict),
        "request_size": exchange.request_size,
        "response_size": exchange.response_size,
        "replay_of": exchange.replay_of,
        "addon_error": exchange.failure,
    }


def detail(
    exchange: Exchange, context: ViewContext, *, include_secrets: bool = False
) -> dict[str, Any]:
    """Everything about one exchange, as JSON-ready data."""
    request = exchange.request
    token = request_token(exchange)
    request_body, response_body = bodies(exchange, include_secrets=include_secrets)
    status_line, headers = _split_head(exchange.response_head)
    reason = (
        status_line.split(" ", 2)[2] if status_line.count(" ") >= 2 else _phrase(exchange.status)
    )
    return {
        **summary(exchange),
        "started": _iso(exchange.started),
        "request": {
            "method": request.method,
            "target": request.target if include_secrets else mask_path(request.target),
            "http_version": request.version,
            "headers": _headers(request.headers, include_secrets),
            "body": request_body.to_dict(),
        },
        "response": {
            "status": exchange.status,
            "reason": reason,
            "http_version": status_line.split(" ", 1)[0] if status_line else "HTTP/1.1",
            "local": exchange.local,
            "headers": _headers(headers, include_secrets),
            "body": response_body.to_dict(),
        },
        "jwt_detail": _jwt_detail(exchange, token, context, include_secrets),
        "verdict": (
            masked_mapping(exchange.verdict)
            if exchange.verdict is not None and not include_secrets
            else exchange.verdict
        ),
    }


def bodies(exchange: Exchange, *, include_secrets: bool = False) -> tuple[Body, Body]:
    """The request's and the response's body, decoded and masked; every credential the
    request carried is scrubbed from both (an add-on may echo one)."""
    known = [] if include_secrets else request_credentials(exchange)
    request = exchange.request
    return (
        body_of(
            exchange.request_body,
            exchange.request_size,
            request.headers,
            chunked=request.chunked,
            include_secrets=include_secrets,
            known=known,
        ),
        body_of(
            exchange.response_body,
            exchange.response_size,
            response_headers(exchange),
            chunked=exchange.response_chunked,
            include_secrets=include_secrets,
            known=known,
        ),
    )


def response_headers(exchange: Exchange) -> list[tuple[str, str]]:
    return _split_head(exchange.response_head)[1]


def body_of(
    kept: bytes | bytearray,
    size: int,
    headers: Iterable[tuple[str, str]],
    *,
    chunked: bool = False,
    include_secrets: bool = False,
    known: Iterable[str] = (),
) -> Body:
    """A body as it may be shown: decoded, classified, masked."""
    body, decoded = _body_of(kept, size, headers, chunked, include_secrets, known)
    return dataclasses.replace(body, decoded_size=decoded)


def _body_of(
    kept: bytes | bytearray,
    size: int,
    headers: Iterable[tuple[str, str]],
    chunked: bool,
    include_secrets: bool,
    known: Iterable[str],
) -> tuple[Body, int]:
    """``body_of``'s body, and the size of what it decoded."""
    fields = {name.lower(): value for name, value in headers}
    content_type = fields.get("content-type", "")
    truncated = size > len(kept)
    data = bytes(kept)
    note = ""
    if chunked:
        data, complete = dechunk(data)
        if complete and not truncated:
            size = len(data)
    encoding = fields.get("content-encoding", "").strip().lower()
    if encoding in ("gzip", "x-gzip", "deflate") and data:
        try:
            wbits = 16 + zlib.MAX_WBITS if "gzip" in encoding else zlib.MAX_WBITS
            decoder = zlib.decompressobj(wbits)
            data = decoder.decompress(data, 4 * 1024 * 1024)
            note = f"decoded from {encoding}"
        except zlib.error:
            note = f"{encoding} that does not decode"
            return _binary(data, content_type, size, len(kept), truncated, note), len(data)
    elif encoding and encoding != "identity" and data:
        return (
            _binary(data, content_type, size, len(kept), truncated, f"{encoding}-encoded")
        ), len(data)
    if truncated:
        note = _join(note, f"only the first {len(kept):,} of {size:,} bytes were kept")
    if not data and not size:
        return Body("empty", content_type, 0, 0, False, "", ""), len(data)
    media = content_type.split(";", 1)[0].strip().lower()
    secrets = [] if include_secrets else [value for value in known if value]
    # JSON is JSON whatever it is labelled (text/plain, none): its secret fields are masked.
    looks_json = _looks_json(data) and media not in ("text/html", "application/xhtml+xml")
    if media == "application/json" or media.endswith("+json") or looks_json:
        try:
            document = json.loads(data)
        except ValueError:
            # Cut short by the capture, or broken: shown as text, secret-named fields masked.
            note = _join(note, "not valid JSON" if not truncated else "")
            text = data.decode("utf-8", "replace")
            if not include_secrets:
                text = mask_json_text(text)
            text = _scrub(text, secrets)
            return (
                Body("text", content_type, size, len(kept), truncated, _cap(text), text, None, note)
            ), len(data)
        else:
            if not include_secrets:
                document = _mask_document(document)
            pretty = _scrub(json.dumps(document, indent=2, ensure_ascii=False), secrets)
            compact = _scrub(json.dumps(document, ensure_ascii=False), secrets)
            return (
                Body("json", content_type, size, len(kept), truncated, pretty, compact, None, note)
            ), len(data)
    if media == "application/x-www-form-urlencoded":
        text = data.decode("utf-8", "replace")
        pairs = parse_qsl(text, keep_blank_values=True)
        if not include_secrets:
            pairs = [(k, _masked(v) if _secret_field(k) else v) for k, v in pairs]
            text = "&".join(_masked_item(item) for item in text.split("&"))
        shown = "\n".join(f"{k} = {v}" for k, v in pairs)
        return (
            Body(
                "form",
                content_type,
                size,
                len(kept),
                truncated,
                _scrub(shown, secrets),
                _scrub(text, secrets),
                None,
                note,
            )
        ), len(data)
    if media.startswith("multipart/"):
        text = data.decode("utf-8", "replace")
        if not include_secrets:
            text = _mask_parts(text)
        text = _scrub(text, secrets)
        return (
            Body("text", content_type, size, len(kept), truncated, _cap(text), text, None, note)
        ), len(data)
    textual = _is_text(media, data)
    if media in ("text/html", "application/xhtml+xml"):
        text = _scrub(data.decode("utf-8", "replace"), secrets)
        match = _TITLE.search(data)
        title = (
            " · title " + repr(match.group(1).decode("utf-8", "replace").strip()[:80])
            if match
            else ""
        )
        return (
            Body(
                "html",
                content_type,
                size,
                len(kept),
                truncated,
                f"HTML, {size:,} bytes{title}",
                text,
                None,
                note,
            )
        ), len(data)
    if textual:
        text = _scrub(data.decode("utf-8", "replace"), secrets)
        return (
            Body("text", content_type, size, len(kept), truncated, _cap(text), text, None, note)
        ), len(data)
    return _binary(data, content_type, size, len(kept), truncated, note), len(data)


# --- the JWT --------------------------------------------------------------------------------


def _jwt_detail(
    exchange: Exchange,
    token: tuple[str, str] | None,
    context: ViewContext,
    include_secrets: bool,
) -> dict[str, Any] | None:
    if token is None:
        return None
    where, value = token
    result: dict[str, Any] = {
        "carried_in": "Authorization header" if where == "header" else "?jwt= query parameter",
        "token": value if include_secrets else mask_value(value),
    }
    try:
        result["header"] = jwt.unverified_header(value)
        claims = jwt.unverified_claims(value)
    except jwt.JwtVerificationError as exc:
        result["error"] = exc.message
        return result
    result["claims"] = claims
    request = exchange.request
    canonical = jwt.canonical_request(
        request.method, request.path, request.query, context.public_path
    )
    computed = jwt.query_string_hash(canonical)
    carried = claims.get("qsh")
    # Its query holds the secret parameters (api_token=) the target shows masked: mask them.
    result["canonical_request"] = canonical if include_secrets else mask_path(f"?{canonical}")[1:]
    result["qsh_carried"] = carried
    result["qsh_computed"] = computed
    if carried == jwt.CONTEXT_QSH:
        result["qsh_match"] = "context token: the qsh names no request"
    else:
        result["qsh_match"] = "match" if carried == computed else "mismatch"
    exp, iat = claims.get("exp"), claims.get("iat")
    if isinstance(exp, int | float) and not isinstance(exp, bool):
        result["expires"] = _iso(float(exp))
        left = round(float(exp) - time.time())
        result["expired"] = left <= 0
        if isinstance(iat, int | float) and not isinstance(iat, bool):
            result["lifetime_s"] = round(float(exp) - float(iat))
    return result


# --- helpers --------------------------------------------------------------------------------


def _headers(headers: Iterable[tuple[str, str]], include_secrets: bool) -> list[list[str]]:
    if include_secrets:
        return [[name, value] for name, value in headers]
    return [[name, mask_header(name, value)] for name, value in headers]


def _split_head(head: str) -> tuple[str, list[tuple[str, str]]]:
    if not head:
        return "", []
    lines = head.split("\r\n")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers.append((name, value.strip(" \t")))
    return lines[0], headers


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _iso(seconds: float) -> str:
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{whole}.{int(seconds % 1 * 1000):03d}Z"


def verdict_word(verdict: Mapping[str, Any] | None) -> str:
    """The verdict in one word or two, as ``connect-dev requests`` says it ("" without a JWT)."""
    if verdict is None:
        return ""
    if verdict.get("verified") is True:
        return "verified"
    return str(verdict.get("verdict") or "not verified")


def tenant_of(verdict: Mapping[str, Any] | None) -> str:
    """The tenant a request's token named: its ``clientKey`` (``iss``), "" without a JWT."""
    if verdict is None:
        return ""
    return str(verdict.get("tenant") or verdict.get("iss") or "")


def _secret_field(name: str) -> bool:
    return name == jwt.JWT_PARAM or is_secret_name(name)


def _masked_item(item: str) -> str:
    """``name=value`` of a form body, its value masked when the name is a secret's."""
    name, sep, _ = item.partition("=")
    return f"{name}={MASK}" if sep and _secret_field(unquote_plus(name)) else item


def _masked(value: str) -> str:
    """A body field's secret, masked whole: unlike a header, no leading word is a scheme
    (``"correct horse battery staple"`` must not show "correct")."""
    return f"{MASK} ({len(value)} chars)" if value else value


def _mask_document(value: Any) -> Any:
    """Whatever a secret-named key holds is masked whole: a string, a number, a list of
    tokens, an object with the secret inside."""
    if isinstance(value, dict):
        return {
            key: (_masked(item) if isinstance(item, str) else MASK) if is_secret_name(key)
            else _mask_document(item)
            for key, item in value.items()
        }  # fmt: skip
    if isinstance(value, list):
        return [_mask_document(item) for item in value]
    return value


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if len(secret) >= 8 and secret in text:
            text = text.replace(secret, MASK)
    return text


def _cap(text: str) -> str:
    return text if len(text) <= MAX_SHOWN_TEXT else text[:MAX_SHOWN_TEXT] + "\n…"


# The tokens of JSON text: a string (perhaps cut short), a structural character, anything else.
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|[{}\[\]:,]|[^\s{}\[\]:,"]+|\s+')
# A part of a multipart/form-data body: its name, then its content up to the next boundary.
_PART = re.compile(
    r'(name="([^"]*)"[^\r\n]*(?:\r?\n[^\r\n]+)*\r?\n\r?\n)(.*?)(?=\r?\n--|\Z)', re.DOTALL
)


def mask_json_text(text: str) -> str:
    """JSON text that does not parse (cut short by the capture, or broken), with whatever a
    secret-named key holds masked whole: a string, a number, or an object or array up to its
    closing bracket (or the end of the text). A walk over its tokens, not a pattern: the value
    of a key may be any nesting of objects."""
    out: list[str] = []
    key_expected = False  # inside an object, before its next key
    containers: list[str] = []
    pending_secret = False  # the last key was a secret's and its value comes next
    skipping = 0  # depth inside a masked object or array
    last_key: str | None = None
    for match in _JSON_TOKEN.finditer(text):
        token = match.group(0)
        if skipping:
            if token in ("{", "["):
                skipping += 1
            elif token in ("}", "]"):
                skipping -= 1
                if not skipping:
                    containers.pop()
                    key_expected = False
            continue
        if token.isspace():
            out.append(token)
            continue
        if pending_secret and token != ":":
            pending_secret = False
            out.append(f'"{MASK}"')
            if token in ("{", "["):
                containers.append(token)
                skipping = 1
            continue
        if token in ("{", "["):
            containers.append(token)
            key_expected = token == "{"
        elif token in ("}", "]"):
            if containers:
                containers.pop()
            key_expected = False
        elif token == ",":
            key_expected = bool(containers) and containers[-1] == "{"
        elif token == ":":
            pending_secret = last_key is not None and is_secret_name(last_key)
            last_key = None
        elif key_expected and token.startswith('"'):
            last_key = token.strip('"')
            key_expected = False
        out.append(token)
    if pending_secret:
        out.append(f'"{MASK}"')
    return "".join(out)


def _mask_parts(text: str) -> str:
    def mask(match: re.Match[str]) -> str:
        return match.group(1) + MASK if is_secret_name(match.group(2)) else match.group(0)

    return _PART.sub(mask, text)


def _join(first: str, second: str) -> str:
    return "; ".join(part for part in (first, second) if part)


def _looks_json(data: bytes) -> bool:
    stripped = data.lstrip()[:1]
    return stripped in (b"{", b"[")


def _is_text(media: str, data: bytes) -> bool:
    if (
        media.startswith("text/")
        or media
        in (
            "application/javascript",
            "application/xml",
            "application/x-javascript",
            "image/svg+xml",
        )
        or media.endswith("+xml")
    ):
        return True
    if media:
        return False
    try:
        data[:4096].decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\x00" not in data[:4096]


def _binary(
    data: bytes, content_type: str, size: int, kept: int, truncated: bool, note: str
) -> Body:
    kind = content_type.split(";", 1)[0].strip() or "unknown type"
    return Body(
        "binary",
        content_type,
        size,
        kept,
        truncated,
        f"binary, {size:,} bytes ({kind})",
        None,
        base64.b64encode(data).decode("ascii"),
        note,
    )


def dechunk(data: bytes) -> tuple[bytes, bool]:
    """The payload of chunked framing, as far as ``data`` goes; and whether it ended."""
    out = bytearray()
    position = 0
    while True:
        line_end = data.find(b"\r\n", position)
        if line_end < 0:
            return bytes(out), False
        size_text = data[position:line_end].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return bytes(out), False
        if size == 0:
            return bytes(out), True
        start = line_end + 2
        out += data[start : start + size]
        if start + size + 2 > len(data):
            return bytes(out), False
        position = start + size + 2
