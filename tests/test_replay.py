"""traffic/replay.py: the edit file, and sending a captured request again, re-signed.

The edit file (``editable_text``/``parse_edited``) must hold no credential and give each one
back when read. ``replay()`` runs against a real ``Proxy`` with a ``Capture`` in front of a tiny
aiohttp add-on that verifies Connect JWTs as an add-on does: HS256 with the tenant's
sharedSecret, ``exp``, and ``qsh`` for the request it received (context tokens only where the
add-on allows them). A token the add-on accepts is the proof that the re-signing is right.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from connect_devloop import jwt
from connect_devloop.errors import DevloopError
from connect_devloop.events import RequestServed
from connect_devloop.proxy import Proxy
from connect_devloop.proxy.capture import Capture, Exchange
from connect_devloop.proxy.http1 import parse_request_head
from connect_devloop.redact import MASK
from connect_devloop.secret import Secret
from connect_devloop.traffic.replay import (
    NotCapturedError,
    ReplayError,
    editable_text,
    parse_edited,
    replay,
)
from connect_devloop.traffic.view import ViewContext

from .conftest import EventLog
from .servers import serve

SHARED_SECRET = "PLANTED-tenant-shared-secret-5a1b"
TENANT = "tenant-1"
CONTEXT = ViewContext(public_url="https://tunnel.example", addon_url="")
STEP = 10.0


def sign(
    method: str,
    path: str,
    query: str = "",
    *,
    iss: str = TENANT,
    age: int = 0,
    ttl: int = 60,
    qsh: str | None = None,
    **extra: Any,
) -> str:
    """An HS256 token issued ``age`` seconds ago."""
    claims = jwt.make_claims(iss, method, path, query, ttl=ttl, now=int(time.time()) - age)
    claims.update(extra)
    if qsh is not None:
        claims["qsh"] = qsh
    return jwt.encode_hs256(claims, SHARED_SECRET)


# --- the edit file ------------------------------------------------------------------------


def captured(head: str, body: bytes = b"", *, limit: int = 64 * 1024) -> Exchange:
    """An exchange as the relay captures it (``head``: lines joined by \\n, Host added)."""
    lines = head.split("\n")
    request = parse_request_head("\r\n".join([lines[0], "Host: proxy.test", *lines[1:]]))
    capture = Capture(body_limit=limit)
    made = capture.begin(request, 40000)
    made.add_request_body(body)
    capture.commit(made, 200, 0.01, None, "")
    return made


TOKEN = sign("POST", "/save", "api_token=PLANTED-query-key-77&lang=en")
BODY = {"user": "ann", "password": "PLANTED-body-password-1", "nested": {"apiToken": "PLANTED-t2"}}
SECRETS = (
    TOKEN,
    "PLANTED-query-key-77",
    "PLANTED-cookie-9f",
    "PLANTED-header-key-31",
    "PLANTED-body-password-1",
    "PLANTED-t2",
)


def full_request() -> Exchange:
    body = json.dumps(BODY).encode()
    return captured(
        "POST /save?api_token=PLANTED-query-key-77&lang=en HTTP/1.1\n"
        f"Authorization: JWT {TOKEN}\n"
        "Cookie: session=PLANTED-cookie-9f\n"
        "X-Api-Key: PLANTED-header-key-31\n"
        "Content-Type: application/json\n"
        "Connection: keep-alive\n"
        f"Content-Length: {len(body)}",
        body,
    )


def test_the_edit_file_holds_no_credential_and_reading_it_puts_them_back() -> None:
    original = full_request()
    text = editable_text(original)
    for secret in SECRETS:
        assert secret not in text
    assert "PLANTED" not in text
    lines = text.split("\n")
    assert lines[0] == "# connect-dev: replay of request 1. Edit, save and quit the editor to"
    assert re.fullmatch(rf"POST /save\?api_token={MASK}\[\d\]&lang=en HTTP/1\.1", lines[3])
    assert f"Authorization: JWT {MASK}[0]" in lines  # the longest first
    assert len(set(re.findall(rf"{MASK}\[\d+\]", text))) == len(SECRETS)
    assert "Content-Type: application/json" in lines
    # The framing and hop-by-hop headers are the replay's to write.
    assert not any(line.startswith(("Content-Length", "Connection")) for line in lines)

    request = parse_edited(text, original)
    assert request.method == "POST"
    assert request.target == original.request.target
    assert request.headers == [
        (name, value)
        for name, value in original.request.headers
        if name not in ("Content-Length", "Connection")
    ]
    assert request.body == bytes(original.request_body)
    # An editor that ends the file with a newline does not change the body.
    assert parse_edited(text + "\n", original).body == bytes(original.request_body)


def test_edits_keep_the_placeholders_where_they_are_and_take_new_values() -> None:
    original = full_request()
    text = editable_text(original)
    edited = (
        text.replace("lang=en", "lang=de")
        .replace("X-Api-Key: ", "X-Extra: added\nX-Api-Key: ")
        .replace('"user": "ann"', '"user": "bob"')
    )
    request = parse_edited(edited, original)
    assert request.target == "/save?api_token=PLANTED-query-key-77&lang=de"
    headers = dict(request.headers)
    assert headers["X-Extra"] == "added"
    assert headers["X-Api-Key"] == "PLANTED-header-key-31"
    assert headers["Authorization"] == f"JWT {TOKEN}"
    assert json.loads(request.body) == {**BODY, "user": "bob"}
    # A value written instead of a placeholder is sent as written.
    replaced = parse_edited(text.replace(f"{MASK}[0]", "written-by-hand"), original)
    assert dict(replaced.headers)["Authorization"] == "JWT written-by-hand"


def test_a_jwt_in_the_query_and_a_form_body_are_placeholders_too() -> None:
    query_token = sign("GET", "/panel", "lang=en")
    form = b"user=ann&password=PLANTED-form-pw-4&lang=en"
    original = captured(
        f"POST /panel?lang=en&jwt={query_token} HTTP/1.1\n"
        "Content-Type: application/x-www-form-urlencoded\n"
        f"Content-Length: {len(form)}",
        form,
    )
    text = editable_text(original)
    assert query_token not in text
    assert "PLANTED-form-pw-4" not in text
    assert "password=" + MASK in text
    request = parse_edited(text, original)
    assert request.target == original.request.target
    assert request.body == form


def test_percent_encoded_credentials_do_not_reach_the_edit_file() -> None:
    form = b"user=ann&password=p%40ss+w0rd%21-PLANTED"
    original = captured(
        "POST /login?api_token=key%2Bwith%2Fslash-PLANTED&x=1 HTTP/1.1\n"
        "Content-Type: application/x-www-form-urlencoded\n"
        f"Content-Length: {len(form)}",
        form,
    )
    text = editable_text(original)
    assert "PLANTED" not in text
    request = parse_edited(text, original)
    assert request.target == original.request.target
    assert request.body == form


def test_body_lines_that_start_with_a_hash_are_the_bodys() -> None:
    body = b"# Release notes\n\n## Fixed\n- the bug\n#hashtag"
    original = captured(
        f"PUT /notes HTTP/1.1\nContent-Type: text/markdown\nContent-Length: {len(body)}", body
    )
    text = editable_text(original)
    assert parse_edited(text, original).body == body
    assert parse_edited(text.replace("the bug", "two bugs"), original).body == body.replace(
        b"the bug", b"two bugs"
    )


def test_a_chunked_request_is_edited_without_its_framing() -> None:
    original = captured(
        "POST /hook HTTP/1.1\nTransfer-Encoding: chunked\nContent-Type: text/plain",
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    text = editable_text(original)
    assert text.endswith("\n\nhello world")
    assert "Transfer-Encoding" not in text
    assert parse_edited(text, original).body == b"hello world"


@pytest.mark.parametrize(
    ("edit", "message", "hint"),
    [
        (
            lambda text: text.replace("POST /save?", "POST save?"),
            "line 4 of the edited request is not a request line: 'POST save?",
            "Write it as METHOD /path?query HTTP/1.1",
        ),
        (
            lambda text: text.replace("POST /save?api_token", "POST /save? api_token"),
            "line 4 of the edited request is not a request line",
            "Write it as METHOD /path?query HTTP/1.1",
        ),
        (
            lambda text: text.replace("Content-Type: application/json", "Content-Type application"),
            "line 9 of the edited request is not a header: 'Content-Type application'",
            "Write headers as Name: value, then an empty line before the body.",
        ),
        (
            lambda text: text.replace("X-Api-Key:", " X-Api-Key:"),
            "line 8 of the edited request is not a header: ' X-Api-Key: ",
            "Write headers as Name: value, then an empty line before the body.",
        ),
        (
            lambda text: text.replace(f"{MASK}[0]", f"{MASK}[17]"),
            f"the edited request names {MASK}[17], which stands for no captured credential",
            "Keep the placeholders as they were written, or write the value itself.",
        ),
    ],
)
def test_mistakes_in_the_edit_file_name_the_line_with_a_hint(
    edit: Any, message: str, hint: str
) -> None:
    original = full_request()
    text = editable_text(original)
    with pytest.raises(ReplayError) as info:
        parse_edited(edit(text), original)
    assert info.value.message.startswith(message), info.value.message
    assert info.value.hint == hint
    assert "PLANTED" not in info.value.message  # quoted as written: placeholders
    # The line named is the line the editor shows.
    if "line " in message:
        number = int(message.split("line ")[1].split(" ")[0])
        wrong = edit(text).split("\n")[number - 1]
        assert wrong.strip(), wrong
        assert not wrong.startswith("#")


@pytest.mark.parametrize("text", ["", "\n\n", "# only\n# comments\n", "   \n# x\n"])
def test_an_empty_edit_file_sends_nothing(text: str) -> None:
    with pytest.raises(ReplayError) as info:
        parse_edited(text, full_request())
    assert info.value.message == "the edited request is empty: nothing was sent"


# --- replays through a real proxy to an add-on that verifies tokens --------------------------


@dataclass
class Seen:
    method: str
    target: str
    token: str | None
    body: bytes
    claims: dict[str, Any] | None = None
    reason: str = ""


@dataclass
class Rig:
    proxy: Proxy
    capture: Capture
    events: EventLog
    seen: list[Seen] = field(default_factory=list)
    signed_for: list[Mapping[str, Any]] = field(default_factory=list)

    async def signer(self, claims: Mapping[str, Any]) -> tuple[str, Secret]:
        self.signed_for.append(dict(claims))
        if claims.get("iss") != TENANT:
            raise DevloopError(f"no sharedSecret is stored for clientKey {claims.get('iss')!r}")
        return TENANT, Secret(SHARED_SECRET)

    async def send(self, raw: bytes) -> Exchange:
        """Send one raw request through the proxy; the exchange the capture kept of it."""
        before = self.capture.last_id
        host, port = self.proxy.url.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(raw)
            async with asyncio.timeout(STEP):
                while await reader.read(65536):
                    pass
                while self.capture.last_id == before:  # noqa: ASYNC110 - no event to await
                    await asyncio.sleep(0.01)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        exchange = self.capture.get(self.capture.last_id)
        assert exchange is not None
        return exchange

    async def replay(self, exchange_id: int, **options: Any) -> Any:
        return await replay(
            self.capture,
            self.proxy.url,
            exchange_id,
            signer=self.signer,
            context=CONTEXT,
            **options,
        )


def wire(method: str, target: str, *headers: str, body: bytes = b"") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: proxy.test", *headers]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@contextlib.asynccontextmanager
async def rig_with(events: EventLog, **capture_options: Any) -> AsyncIterator[Rig]:
    seen: list[Seen] = []

    async def verify(request: web.Request) -> web.Response:
        body = await request.read()
        token = jwt.token_from_request(request.headers.get("Authorization"), request.query)
        note = Seen(request.method, request.raw_path, token, body)
        seen.append(note)
        if token is None:
            return web.json_response({"signed": False, "body": body.decode()})
        try:
            claims = jwt.decode_hs256(token, SHARED_SECRET)
            canonical = jwt.canonical_request(
                request.method, request.path, request.rel_url.raw_query_string
            )
            jwt.check_qsh(claims, canonical, allow_context_qsh=request.path.startswith("/ctx"))
        except jwt.JwtVerificationError as exc:
            note.reason = exc.reason
            return web.json_response({"error": exc.reason}, status=401)
        note.claims = claims
        return web.json_response({"signed": True, "body": body.decode()})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", verify)
    capture = Capture(**capture_options)
    async with serve(app) as url:
        proxy = Proxy(url, events, port=0, capture=capture)
        await proxy.start()
        try:
            yield Rig(proxy, capture, events, seen)
        finally:
            await proxy.close()


@pytest.fixture
async def rig(events: EventLog) -> AsyncIterator[Rig]:
    async with rig_with(events) as made:
        yield made


async def test_an_expired_token_is_re_signed_and_accepted(rig: Rig) -> None:
    context_claim = {"user": {"accountId": "abc-123"}}
    expired = sign(
        "POST", "/echo", "n=1", age=600, ttl=60, sub="user-9", aud=TENANT, context=context_claim
    )
    original = await rig.send(
        wire("POST", "/echo?n=1", f"Authorization: JWT {expired}", body=b'{"issue": "DEV-1"}')
    )
    assert (original.status, rig.seen[-1].reason) == (401, "expired")

    issued = int(time.time()) - 5
    outcome = await rig.replay(original.id, clock=lambda: issued + 0.9)
    assert outcome.signing == "re-signed"
    assert outcome.original is original
    assert outcome.replay.status == 200
    assert outcome.replay.replay_of == original.id
    assert outcome.replay.id == original.id + 1
    assert outcome.note == (
        f"re-signed with the sharedSecret of tenant {TENANT!r}: iat now, exp in 60 s, "
        "qsh recomputed for 'POST&/echo&n=1'"
    )
    seen = rig.seen[-1]
    assert (seen.method, seen.target, seen.body) == ("POST", "/echo?n=1", b'{"issue": "DEV-1"}')
    assert seen.claims is not None
    # The same claims, fresh times.
    before = jwt.unverified_claims(expired)
    assert {k: v for k, v in seen.claims.items() if k not in ("iat", "exp")} == {
        k: v for k, v in before.items() if k not in ("iat", "exp")
    }
    assert (seen.claims["iat"], seen.claims["exp"]) == (issued, issued + 60)
    assert rig.signed_for == [before]
    served = [e for e in rig.events.of("request") if isinstance(e, RequestServed)]
    assert [(e.id, e.replay_of, e.status) for e in served] == [(1, 0, 401), (2, 1, 200)]
    summary = outcome.to_dict()
    assert summary["signing"] == "re-signed"
    assert summary["replay"]["replay_of"] == original.id
    assert '"error": "expired"' in summary["body_diff"]
    assert summary["body_diff"].startswith(f"--- response #{original.id}\n+++ response #2")


async def test_an_edited_request_gets_the_qsh_of_what_is_sent(rig: Rig) -> None:
    token = sign("POST", "/echo", "n=1")
    original = await rig.send(
        wire("POST", "/echo?n=1", f"Authorization: JWT {token}", body=b"first")
    )
    assert original.status == 200
    text = editable_text(original)
    assert token not in text
    edited = text.replace("/echo?n=1", "/echo?n=2&b=x%20y").replace("first", "second")
    outcome = await rig.replay(original.id, edited=edited)
    assert outcome.replay.status == 200, rig.seen[-1].reason
    assert "qsh recomputed for 'POST&/echo&b=x%20y&n=2'" in outcome.note
    seen = rig.seen[-1]
    assert (seen.target, seen.body) == ("/echo?n=2&b=x%20y", b"second")
    assert outcome.replay.request.target == "/echo?n=2&b=x%20y"


async def test_a_context_token_keeps_its_context_qsh(rig: Rig) -> None:
    token = sign("GET", "/ctx/data", age=600, qsh=jwt.CONTEXT_QSH)
    original = await rig.send(wire("GET", "/ctx/data?page=2", f"Authorization: JWT {token}"))
    assert rig.seen[-1].reason == "expired"
    outcome = await rig.replay(original.id)
    assert outcome.replay.status == 200, rig.seen[-1].reason
    assert 'qsh kept as "context-qsh" (a context token)' in outcome.note
    claims = rig.seen[-1].claims
    assert claims is not None
    assert claims["qsh"] == "context-qsh"


async def test_a_token_in_the_query_is_re_signed_in_place(rig: Rig) -> None:
    token = sign("GET", "/panel", "lang=en&xdm_e=https%3A%2F%2Fsite", age=600)
    target = f"/panel?lang=en&jwt={token}&xdm_e=https%3A%2F%2Fsite"
    original = await rig.send(wire("GET", target))
    assert rig.seen[-1].reason == "expired"
    outcome = await rig.replay(original.id)
    assert outcome.replay.status == 200, rig.seen[-1].reason
    seen = rig.seen[-1]
    assert seen.token is not None
    assert seen.token != token
    assert seen.target == f"/panel?lang=en&jwt={seen.token}&xdm_e=https%3A%2F%2Fsite"


async def test_a_chunked_request_is_replayed_with_its_body(rig: Rig) -> None:
    token = sign("POST", "/hook", age=600)
    original = await rig.send(
        wire("POST", "/hook", f"Authorization: JWT {token}", "Transfer-Encoding: chunked")
        .replace(b"Content-Length: 0\r\n", b"")
        .replace(b"\r\n\r\n", b"\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    )
    assert original.request.chunked
    outcome = await rig.replay(original.id)
    assert outcome.replay.status == 200, rig.seen[-1].reason
    assert rig.seen[-1].body == b"hello world"
    assert not outcome.replay.request.chunked


async def test_unchanged_sends_the_token_as_captured(rig: Rig) -> None:
    expired = sign("GET", "/page", age=600)
    original = await rig.send(wire("GET", "/page", f"Authorization: JWT {expired}"))
    outcome = await rig.replay(original.id, unchanged=True)
    assert outcome.signing == "unchanged"
    assert outcome.note == "sent with the token as captured (not re-signed)"
    assert outcome.replay.status == 401
    assert (rig.seen[-1].token, rig.seen[-1].reason) == (expired, "expired")
    assert rig.signed_for == []


async def test_a_request_without_a_jwt_is_sent_as_captured(rig: Rig) -> None:
    original = await rig.send(wire("PUT", "/plain?x=1", "X-Note: n", body=b"data"))
    outcome = await rig.replay(original.id)
    assert (outcome.signing, outcome.replay.status) == ("none", 200)
    assert outcome.note == "the request carried no Connect JWT: sent as captured"
    assert (rig.seen[-1].target, rig.seen[-1].body) == ("/plain?x=1", b"data")
    assert outcome.to_dict()["body_diff"] == ""


async def test_an_rs256_token_is_not_re_signed(rig: Rig) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = jwt.make_claims(TENANT, "POST", "/installed")
    token = jwt.encode_rs256(claims, key, "kid-1")
    original = await rig.send(wire("POST", "/installed", f"Authorization: JWT {token}", body=b"{}"))
    with pytest.raises(ReplayError) as info:
        await rig.replay(original.id)
    assert info.value.message == (
        f"request {original.id} cannot be re-signed: its token is signed with RS256, which "
        "only the host can sign (install callbacks are signed with the host's own RSA key)"
    )
    assert f"`connect-dev replay {original.id} --unchanged`" in (info.value.hint or "")
    assert rig.capture.last_id == original.id  # nothing was sent
    assert rig.signed_for == []


async def test_a_token_the_signer_cannot_sign_stops_the_replay_with_the_reason(rig: Rig) -> None:
    stranger = sign("GET", "/page", iss="not-installed-here")
    original = await rig.send(wire("GET", "/page", f"Authorization: JWT {stranger}"))
    with pytest.raises(ReplayError) as info:
        await rig.replay(original.id)
    assert info.value.message == (
        f"request {original.id} cannot be re-signed: "
        "no sharedSecret is stored for clientKey 'not-installed-here'"
    )
    assert info.value.hint == (
        f"`connect-dev replay {original.id} --unchanged` sends it with the token as captured "
        "(the add-on rejects it once it has expired)."
    )
    assert rig.capture.last_id == original.id
    # Sent unchanged when asked: the add-on judges it.
    outcome = await rig.replay(original.id, unchanged=True)
    assert outcome.replay.replay_of == original.id
    assert rig.seen[-1].token == stranger


async def test_a_token_that_is_not_a_jwt_is_not_re_signed(rig: Rig) -> None:
    original = await rig.send(wire("GET", "/page", "Authorization: JWT not-a-jwt"))
    with pytest.raises(ReplayError) as info:
        await rig.replay(original.id)
    assert (
        info.value.message == f"request {original.id} cannot be re-signed: its token is not a JWT"
    )
    assert "--unchanged" in (info.value.hint or "")


async def test_a_request_whose_body_was_cut_short_cannot_be_sent_again(events: EventLog) -> None:
    async with rig_with(events, body_limit=50) as rig:
        original = await rig.send(wire("POST", "/big", body=b"x" * 200))
        assert original.request_truncated
        with pytest.raises(ReplayError) as info:
            await rig.replay(original.id)
        assert rig.capture.last_id == original.id
    assert info.value.message == (
        f"request {original.id} cannot be sent again: its body was 200 bytes and the capture "
        "kept only 50"
    )
    assert info.value.hint == (
        "Raise [inspector] max_body in connect-dev.toml to capture whole bodies."
    )


async def test_an_id_the_capture_does_not_keep(events: EventLog) -> None:
    async with rig_with(events, keep=2) as rig:
        with pytest.raises(NotCapturedError) as info:
            await rig.replay(1)
        assert info.value.message == "request 1 is not in the capture: no request was captured yet"
        assert info.value.hint == "`connect-dev requests` lists the ids it keeps."
        for n in range(4):
            await rig.send(wire("GET", f"/n{n}"))
        with pytest.raises(NotCapturedError) as info:
            await rig.replay(1)
        assert info.value.message == (
            "request 1 is not in the capture: the capture keeps the last 2 (3-4)"
        )
        for wrong in (99, 0, -1):
            with pytest.raises(NotCapturedError) as info:
                await rig.replay(wrong)
            assert info.value.message == (
                f"request {wrong} is not in the capture: the last request so far is 4"
            )
        assert isinstance(info.value, ReplayError)
        assert rig.capture.last_id == 4


async def test_a_proxy_that_is_gone_is_a_replay_error(events: EventLog) -> None:
    async with rig_with(events) as rig:
        original = await rig.send(wire("GET", "/page"))
        url = rig.proxy.url
    with pytest.raises(ReplayError) as info:
        await replay(rig.capture, url, original.id, signer=rig.signer, context=CONTEXT)
    assert info.value.message.startswith(f"cannot reach the proxy at {url}: ")


def test_the_body_diff_of_two_pages_is_their_html_not_their_summaries() -> None:
    from connect_devloop.traffic.replay import body_diff

    def page(number: int, text: str) -> Exchange:
        head = parse_request_head("GET /page HTTP/1.1\r\nHost: h")
        made = Exchange(head, 0.0, 65536)
        made.id = number
        made.response_head = "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8"
        made.add_response_body(text.encode(), 0, len(text.encode()))
        return made

    diff = body_diff(page(1, "<p>before</p>\n"), page(2, "<p>after!</p>\n"))
    assert "-<p>before</p>" in diff
    assert "+<p>after!</p>" in diff


async def test_a_token_in_both_the_header_and_the_query_is_re_signed_in_both(rig: Rig) -> None:
    token = sign("GET", "/panel", "lang=en", age=600)
    original = await rig.send(
        wire("GET", f"/panel?lang=en&jwt={token}", f"Authorization: JWT {token}")
    )
    outcome = await rig.replay(original.id)
    assert outcome.replay.status == 200, rig.seen[-1].reason
    seen = rig.seen[-1]
    assert seen.token is not None
    assert seen.token != token
    assert seen.target == f"/panel?lang=en&jwt={seen.token}"
