"""HTTP/1.1 message heads and body framing for the proxy's byte relay (RFC 9112).

No I/O here: the relay in ``relay.py`` moves bytes, and this module decides what a head
says and where each body ends. That decision is what request smuggling attacks: a front end
(the tunnel) and a back end (the add-on) that disagree on where a request ends let an attacker
hide a second request in the first one's body. So requests are parsed strictly and anything
ambiguous is refused with 400 before a byte reaches the add-on: both ``Transfer-Encoding`` and
``Content-Length``, differing ``Content-Length`` values, a transfer coding other than
``chunked``, bare CR or LF, whitespace before a colon, folded lines, a bad chunk size.

Heads are decoded as Latin-1, which maps each byte to one character and back, so a header
forwarded as text goes out byte for byte as it came in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus

__all__ = [
    "MAX_HEAD",
    "ChunkedScanner",
    "HttpError",
    "RequestHead",
    "ResponseHead",
    "parse_request_head",
    "parse_response_head",
    "simple_response",
]

# Past this, a head is refused with 431 (a request) or treated as a broken add-on (a response).
MAX_HEAD = 64 * 1024
# A chunk-size line (with extensions) or a trailer section longer than this is an attack, not
# a body: chunked framing is scanned, not buffered, so only these bounds the memory it holds.
MAX_CHUNK_LINE = 4 * 1024
MAX_TRAILERS = 16 * 1024

# RFC 9110 §7.6.1: these describe one connection, never the next one. Transfer-Encoding is
# not dropped: the relay forwards chunked bodies as they are, so their framing goes with them.
HOP_BY_HOP = frozenset(
    (
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "upgrade",
    )
)

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]++"
# Any character but controls (HTAB is allowed): what a field value, a reason phrase or a chunk
# extension may hold. Quantifiers are possessive: a head that fails to match costs linear
# time, never a backtracking search.
_TEXT = r"[^\x00-\x08\x0a-\x1f\x7f]*+"
# A whole head in one match, in C: a bare CR or LF, a space before a colon, a folded line (one
# starting with whitespace), a control character or a line without a colon makes it fail.
_REQUEST_HEAD = re.compile(
    rf"({_TOKEN}) ([\x21-\x7e]++) HTTP/1\.([01])((?:\r\n{_TOKEN}:{_TEXT})*+)"
)
_RESPONSE_HEAD = re.compile(
    rf"HTTP/1\.([01]) ([1-5][0-9][0-9])(?: {_TEXT})?((?:\r\n{_TOKEN}:{_TEXT})*+)"
)
_TRAILER_FIELD = re.compile(rf"{_TOKEN}:{_TEXT}")
# The response fields the relay reads, found in the lower-cased head without looking at the
# others (their values are case-insensitive too).
_RESPONSE_SPECIALS = re.compile(
    r"\r\n(content-length|transfer-encoding|connection|keep-alive|proxy-connection"
    rf"|proxy-authenticate|proxy-authorization|te|upgrade):({_TEXT})"
)
_REQUEST_LINE = re.compile(rf"{_TOKEN} [\x21-\x7e]++ HTTP/[0-9]\.[0-9]")
_HOST = re.compile(r"[A-Za-z0-9\-._~%!$&'()*+,;=:\[\]]*+")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})(?:[ \t]*+;[^\x00-\x08\x0a-\x1f\x7f]*+)?")

# Request header names the parser must look at, by their lower-case name: hop-by-hop ones and
# those the relay writes itself are not forwarded as they came.
_REQUEST_SPECIAL = HOP_BY_HOP | {
    "host",
    "content-length",
    "transfer-encoding",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
}
# Header names as spelled on the wire -> their lower-case form when special, else "". Clients
# send the same few names again and again; the cache is bounded so that made-up names cannot
# grow it.
_NAME_KINDS: dict[str, str] = {}
_MAX_NAME_KINDS = 1024


def _kind(name: str) -> str:
    kind = _NAME_KINDS.get(name)
    if kind is None:
        lowered = name.lower()
        kind = lowered if lowered in _REQUEST_SPECIAL else ""
        if len(_NAME_KINDS) < _MAX_NAME_KINDS:
            _NAME_KINDS[name] = kind
    return kind


def _content_length(values: list[str], status: int) -> int:
    """The length that one or more Content-Length values agree on; ``HttpError(status)``
    when they do not, or one is not a plain decimal number."""
    first = values[0]
    if len(first) > 18 or not (first.isdigit() and first.isascii()):
        raise HttpError(status, "invalid Content-Length")
    if len(values) > 1 and any(value != first for value in values):
        raise HttpError(status, "conflicting Content-Length values")
    return int(first)


def _tokens(value: str) -> list[str]:
    """A comma-separated list, trimmed (and lower-cased: these are case-insensitive)."""
    if "," not in value:
        return [value.strip(" \t").lower()]
    return [item.strip(" \t").lower() for item in value.split(",")]


class HttpError(Exception):
    """A message the relay refuses; ``status`` is what a client is answered."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(slots=True)
class RequestHead:
    method: str
    target: str  # origin-form path and query exactly as received (or "*")
    version: str  # "HTTP/1.1" or "HTTP/1.0"
    headers: list[tuple[str, str]]  # as received: names in their case, in order
    host: str  # Host (or the authority of an absolute-form target), "" when absent
    fields: str  # the header lines to forward as they came, each after a CRLF
    path: str = ""  # the target's path, still percent-encoded (without the query)
    content_length: int | None = None
    chunked: bool = False
    keep_alive: bool = True
    upgrade: str | None = None  # the Upgrade value of a request that asks to switch protocols
    forwarded_for: str = ""
    forwarded_proto: str | None = None
    forwarded_host: str | None = None

    @property
    def query(self) -> str:
        return self.target.partition("?")[2]

    def upstream_head(self, *, host: str, prefix: str, peer: str, local_host: str) -> bytes:
        """The head to send to the add-on at ``host`` (its Host header), whose base path is
        ``prefix``, for a request from ``peer`` that reached this proxy as ``local_host``."""
        target = self.target if self.target == "*" else prefix + self.target
        # The framing the relay follows, said once, whatever the client's spelling was.
        if self.chunked:
            framing = "\r\nTransfer-Encoding: chunked"
        elif self.content_length is not None:
            framing = f"\r\nContent-Length: {self.content_length}"
        else:
            framing = ""
        if self.upgrade is not None:
            framing += f"\r\nUpgrade: {self.upgrade}\r\nConnection: upgrade"
        chain = f"{self.forwarded_for}, {peer}" if self.forwarded_for else peer
        # A tunnel agent in front of us (ngrok) already says https; keep what it said.
        proto = self.forwarded_proto or "http"
        forwarded_host = self.forwarded_host or self.host or local_host
        return (
            f"{self.method} {target} {self.version}\r\nHost: {host}{self.fields}{framing}"
            f"\r\nX-Forwarded-For: {chain}\r\nX-Forwarded-Proto: {proto}"
            f"\r\nX-Forwarded-Host: {forwarded_host}\r\n\r\n"
        ).encode("latin-1")


# Connection may name headers that stop at this hop, but never those that frame the message:
# dropping one of them while the relay frames by it would be request smuggling.
_FRAMING = frozenset(("content-length", "transfer-encoding", "host"))
# Connection options that name no header (or one that is never forwarded anyway).
_KNOWN_OPTIONS = _REQUEST_SPECIAL | {"close", ""}


def parse_request_head(text: str) -> RequestHead:
    """Parse a request head (without its final empty line); raises ``HttpError``."""
    match = _REQUEST_HEAD.fullmatch(text)
    if match is None:
        raise _diagnose(text)
    method, target, minor, block = match.groups()
    http11 = minor == "1"
    host_from_target = None
    if target[0] != "/":
        target, host_from_target = _origin_form(method, target)

    headers: list[tuple[str, str]] = []
    fields: list[str] = [""]  # forwarded as they came; "" so that the join starts with CRLF
    hosts: list[str] = []
    lengths: list[str] = []
    codings: list[str] = []
    connection: list[str] = []
    forwarded_for: list[str] = []
    forwarded_proto = forwarded_host = upgrade = None
    for line in block.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        value = value.strip(" \t")
        headers.append((name, value))
        kind = _kind(name)
        if not kind:
            fields.append(line)
        elif kind == "host":
            hosts.append(value)
        elif kind == "content-length":
            lengths.extend(_tokens(value))
        elif kind == "transfer-encoding":
            codings.extend(_tokens(value))
        elif kind == "connection":
            connection.extend(_tokens(value))
        elif kind == "upgrade":
            upgrade = value
        elif kind == "x-forwarded-for":
            forwarded_for.append(value)
        elif kind == "x-forwarded-proto":
            forwarded_proto = value
        elif kind == "x-forwarded-host":
            forwarded_host = value
        # else: hop-by-hop, not forwarded

    if len(hosts) > 1 or (http11 and not hosts and host_from_target is None):
        raise HttpError(400, "a request needs exactly one Host header")
    host = host_from_target if host_from_target is not None else (hosts[0] if hosts else "")
    if not _HOST.fullmatch(host):
        raise HttpError(400, "malformed Host header")
    named = set(connection).difference(_KNOWN_OPTIONS, _FRAMING) if connection else None
    if named:  # the headers that Connection names stop here too
        fields = [line for line in fields if line.partition(":")[0].lower() not in named]
    head = RequestHead(
        method,
        target,
        "HTTP/1.1" if http11 else "HTTP/1.0",
        headers,
        host,
        "\r\n".join(fields),
        target.partition("?")[0],
        keep_alive=http11 and "close" not in connection,
        forwarded_for=", ".join(forwarded_for),
        forwarded_proto=forwarded_proto,
        forwarded_host=forwarded_host,
    )
    if codings:
        if not http11:
            raise HttpError(400, "Transfer-Encoding in an HTTP/1.0 request")
        if lengths:
            raise HttpError(400, "both Transfer-Encoding and Content-Length")
        if codings != ["chunked"]:
            raise HttpError(400, "the only transfer coding accepted is chunked")
        head.chunked = True
    elif lengths:
        head.content_length = _content_length(lengths, 400)
    if upgrade is not None and http11 and "upgrade" in connection:
        head.upgrade = upgrade
    return head


def _diagnose(text: str) -> HttpError:
    """Why a request head did not parse."""
    line = text.partition("\r\n")[0]
    if not _REQUEST_LINE.fullmatch(line):
        return HttpError(400, "malformed request line")
    version = line.rpartition(" ")[2]
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        return HttpError(505, f"{version} is not supported")
    return HttpError(400, "malformed header line")


def _origin_form(method: str, target: str) -> tuple[str, str | None]:
    """The origin-form of an absolute-form target (and its authority), or of ``*``."""
    if target == "*" and method == "OPTIONS":
        return target, None
    scheme, sep, rest = target.partition("://")
    if sep and scheme.lower() in ("http", "https"):
        cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
        authority, path = rest[:cut], rest[cut:]
        if authority and "@" not in authority:
            return (path if path.startswith("/") else "/" + path), authority
    raise HttpError(400, "malformed request target")


@dataclass(slots=True)
class ResponseHead:
    status: int
    # The body's length; -1: it runs to the end of the connection; None: chunked.
    length: int | None
    keep_alive: bool  # the add-on keeps its connection open after this response
    text: str
    # Lower-case names of the headers that stop here (hop-by-hop, or named by Connection);
    # empty when the head can be sent as it came, which is the common case.
    dropped: frozenset[str]

    def for_client(self, raw: bytes, *, close: bool = False, switching: bool = False) -> bytes:
        """The head to send to the client, given the head ``raw`` as received. ``close``: the
        client connection closes after this response, so the head says so. ``switching``: a
        101 answering an upgrade keeps its ``Upgrade`` and says ``Connection: upgrade``."""
        if not (self.dropped or close or switching or self.text[5:8] != "1.1"):
            return raw
        lines = self.text.split("\r\n")
        dropped = self.dropped or HOP_BY_HOP
        out = [f"HTTP/1.1{lines[0][8:]}"]
        out.extend(line for line in lines[1:] if line.partition(":")[0].lower() not in dropped)
        if switching:
            out.extend(line for line in lines[1:] if line.partition(":")[0].lower() == "upgrade")
            out.append("Connection: upgrade")
        elif close:
            out.append("Connection: close")
        out.append("\r\n")
        return "\r\n".join(out).encode("latin-1")


def parse_response_head(text: str, *, head_request: bool) -> ResponseHead:
    """Parse an add-on's response head (without its final empty line) and decide how its
    body is framed (RFC 9112 §6.3); raises ``HttpError``."""
    match = _RESPONSE_HEAD.fullmatch(text)
    if match is None:
        raise HttpError(502, "malformed response head")
    minor, code, block = match.groups()
    status = int(code)
    lengths: list[str] = []
    codings: list[str] = []
    connection: list[str] = []
    drop = False  # some header must not reach the client
    for name, value in _RESPONSE_SPECIALS.findall(block.lower()) if block else ():
        if name == "content-length":
            lengths.extend(_tokens(value))
        elif name == "transfer-encoding":
            codings.extend(_tokens(value))
        else:
            drop = True
            if name == "connection":
                connection.extend(_tokens(value))

    keep_alive = ("close" not in connection) if minor == "1" else ("keep-alive" in connection)
    dropped = HOP_BY_HOP.union(connection).difference(_FRAMING) if drop else _NOTHING
    length: int | None
    if head_request or status < 200 or status in (204, 304):
        length = 0
    elif codings:
        # Transfer-Encoding overrides Content-Length (which must not be passed on then);
        # unless chunked comes last, only the end of the connection ends the body.
        length = None if codings[-1] == "chunked" else -1
        if lengths:
            dropped = dropped.union(HOP_BY_HOP, ("content-length",))
    elif lengths:
        length = _content_length(lengths, 502)
    else:
        length = -1
    if length == -1:
        keep_alive = False
    return ResponseHead(status, length, keep_alive, text, dropped)


_NOTHING: frozenset[str] = frozenset()


class ChunkedScanner:
    """Finds where a chunked body ends in a stream of bytes, without decoding it.

    The relay forwards the chunked bytes as they are; the scanner only follows the chunk
    sizes, so that the next request (or response) on the connection starts at the right byte.
    Strict: a chunk size that is not hex, data not followed by CRLF, a bare LF, an overlong
    size line or trailer section all raise ``HttpError(400)``.
    """

    __slots__ = ("_line", "_remaining", "_state", "_trailers")

    _SIZE, _DATA, _DATA_END, _TRAILER = range(4)

    def __init__(self) -> None:
        self._state = self._SIZE
        self._remaining = 0
        self._line = b""  # a line split across reads
        self._trailers = 0

    def feed(self, data: bytes | bytearray, start: int = 0) -> int:
        """Follow ``data[start:]``; the index just past the body's last byte when it ends
        in ``data``, else -1 (everything from ``start`` on belongs to the body)."""
        position, size = start, len(data)
        while position < size:
            if self._state == self._DATA:
                take = min(self._remaining, size - position)
                position += take
                self._remaining -= take
                if not self._remaining:
                    self._state = self._DATA_END
                continue
            end = data.find(b"\n", position)
            if end < 0:
                self._line += data[position:]
                if len(self._line) > MAX_CHUNK_LINE:
                    raise HttpError(400, "chunked framing: line too long")
                return -1
            line = self._line + data[position : end + 1] if self._line else data[position : end + 1]
            self._line = b""
            position = end + 1
            if len(line) > MAX_CHUNK_LINE:
                raise HttpError(400, "chunked framing: line too long")
            if line[-2:-1] != b"\r":
                raise HttpError(400, "chunked framing: bare LF")
            line = line[:-2]
            if self._state == self._SIZE:
                match = _CHUNK_SIZE.fullmatch(line)
                if match is None:
                    raise HttpError(400, "chunked framing: invalid chunk size")
                self._remaining = int(match[1], 16)
                self._state = self._DATA if self._remaining else self._TRAILER
            elif self._state == self._DATA_END:
                if line:
                    raise HttpError(400, "chunked framing: chunk data longer than its size")
                self._state = self._SIZE
            else:  # a trailer field, or the empty line that ends the body
                if not line:
                    self._state = self._SIZE
                    return position
                self._trailers += len(line)
                if self._trailers > MAX_TRAILERS or not _TRAILER_FIELD.fullmatch(
                    line.decode("latin-1")
                ):
                    raise HttpError(400, "chunked framing: invalid trailer section")
        return -1


def simple_response(
    status: int,
    body: bytes,
    *,
    content_type: str = "text/plain; charset=utf-8",
    headers: tuple[tuple[str, str], ...] = (),
    close: bool = False,
    head_request: bool = False,
) -> bytes:
    """A complete response the proxy answers itself."""
    lines = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in headers),
    ]
    if close:
        lines.append("Connection: close")
    lines.append("\r\n")
    head = "\r\n".join(lines).encode("latin-1")
    return head if head_request else head + body
