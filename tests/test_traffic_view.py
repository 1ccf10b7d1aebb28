"""traffic/view.py: a captured exchange as a person may see it.

Exchanges are made the way the relay makes them: a request head parsed by ``http1``, begun and
committed in a real ``Capture``, bodies added through the ``Exchange``'s own methods. Then
``detail``, ``body_of`` and ``summary`` must mask every credential (headers, URLs, query
parameters, JSON, form and multipart fields, the request's own JWT wherever it comes back),
decode what the wire carried (chunked framing, gzip, deflate) and decode the Connect JWT with
its qsh computed beside the one it carries. ``include_secrets`` shows everything.
"""

from __future__ import annotations

import base64
import gzip
import json
import time
import zlib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connect_devloop import jwt
from connect_devloop.proxy.capture import Capture, Exchange
from connect_devloop.proxy.http1 import parse_request_head
from connect_devloop.redact import _SECRET_PARTS, MASK, is_secret_name
from connect_devloop.traffic.view import ViewContext, body_of, dechunk, detail, summary

SECRET = "PLANTED-shared-secret-0f9e8d7c"
CONTEXT = ViewContext(public_url="https://tunnel.example", addon_url="http://127.0.0.1:3000")


def exchange(
    head: str,
    body: bytes = b"",
    *,
    response_head: str = "HTTP/1.1 200 OK\r\nContent-Type: text/plain",
    response_body: bytes = b"",
    response_chunked: bool = False,
    status: int = 200,
    verdict: dict[str, Any] | None = None,
    failure: str = "",
    limit: int = 64 * 1024,
    request_size: int | None = None,
    response_size: int | None = None,
) -> Exchange:
    """An exchange as the relay captures it. ``head`` is the request line and header lines,
    joined by CRLF (``Host`` added); ``*_size``: what went by when more than ``body``."""
    lines = head.split("\n")
    request = parse_request_head("\r\n".join([lines[0], "Host: proxy.test", *lines[1:]]))
    capture = Capture(body_limit=limit)
    made = capture.begin(request, 40000)
    made.add_request_body(body)
    if request_size is not None:
        made.request_size = request_size
    made.response_head = response_head
    made.response_chunked = response_chunked
    made.add_response_body(response_body, 0, len(response_body))
    if response_size is not None:
        made.response_size = response_size
    capture.commit(made, status, 0.0123, verdict, failure)
    return made


def token(
    path: str = "/page",
    query: str = "",
    *,
    method: str = "GET",
    now: int | None = None,
    ttl: int = 180,
    base_path: str = "",
    qsh: str | None = None,
) -> str:
    claims = jwt.make_claims(
        "tenant-key", method, path, query, base_path, ttl=ttl, sub="user-1", now=now
    )
    if qsh is not None:
        claims["qsh"] = qsh
    return jwt.encode_hs256(claims, SECRET)


def text_of(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False)


def headers_of(shown: dict[str, Any]) -> dict[str, str]:
    return {name: value for name, value in shown["headers"]}


def masked(value: str) -> str:
    return f"{MASK} ({len(value)} chars)"


# --- headers and URLs ---------------------------------------------------------------------


def test_credential_headers_and_urls_with_a_jwt_are_masked_both_ways() -> None:
    bearer = token()
    cookie = "session=PLANTED-cookie-value-77; theme=dark"
    api_token = "PLANTED-api-token-header-31"
    referer_token = token("/other")
    location_token = token("/elsewhere")
    made = exchange(
        "GET /page HTTP/1.1\n"
        f"Authorization: JWT {bearer}\n"
        f"Cookie: {cookie}\n"
        f"X-Api-Token: {api_token}\n"
        f"Referer: https://site.example/view?jwt={referer_token}&lang=en\n"
        "Accept: text/html",
        response_head=(
            "HTTP/1.1 302 Found\r\n"
            f"Location: /elsewhere?jwt={location_token}&x=1\r\n"
            "Set-Cookie: session=PLANTED-set-cookie-99; Path=/\r\n"
            "Content-Length: 0"
        ),
        status=302,
    )
    shown = detail(made, CONTEXT)
    request = headers_of(shown["request"])
    assert request["Authorization"] == f"JWT {masked(bearer)}"
    assert request["Cookie"] == masked(cookie)
    assert request["X-Api-Token"] == masked(api_token)
    assert request["Referer"] == f"https://site.example/view?jwt={MASK}&lang=en"
    assert request["Accept"] == "text/html"
    assert request["Host"] == "proxy.test"
    response = headers_of(shown["response"])
    assert response["Location"] == f"/elsewhere?jwt={MASK}&x=1"
    assert response["Set-Cookie"] == masked("session=PLANTED-set-cookie-99; Path=/")
    assert response["Content-Length"] == "0"
    text = text_of(shown)
    for secret in (bearer, api_token, referer_token, location_token, "PLANTED-"):
        assert secret not in text

    everything = text_of(detail(made, CONTEXT, include_secrets=True))
    for secret in (bearer, cookie, api_token, referer_token, location_token):
        assert secret in everything
    assert MASK not in everything


def test_secret_query_parameters_are_masked_in_the_target_summary_and_canonical_request() -> None:
    bearer = token("/search", "api_token=PLANTED-query-token-11&q=bugs")
    made = exchange(
        "GET /search?api_token=PLANTED-query-token-11&q=bugs&password=PLANTED-pw-22 HTTP/1.1\n"
        f"Authorization: JWT {bearer}"
    )
    shown = detail(made, CONTEXT)
    assert shown["request"]["target"] == f"/search?api_token={MASK}&q=bugs&password={MASK}"
    assert shown["path"] == shown["request"]["target"]
    assert summary(made)["path"] == shown["request"]["target"]
    canonical = shown["jwt_detail"]["canonical_request"]
    assert canonical == f"GET&/search&api_token={MASK}&password={MASK}&q=bugs"
    assert "PLANTED" not in text_of(shown)

    full = detail(made, CONTEXT, include_secrets=True)
    assert full["request"]["target"] == made.request.target
    assert full["jwt_detail"]["canonical_request"] == (
        "GET&/search&api_token=PLANTED-query-token-11&password=PLANTED-pw-22&q=bugs"
    )


def test_a_jwt_in_the_query_is_masked_and_decoded() -> None:
    carried = token("/panel", "lang=en")
    made = exchange(f"GET /panel?lang=en&jwt={carried} HTTP/1.1")
    shown = detail(made, CONTEXT)
    assert shown["request"]["target"] == f"/panel?lang=en&jwt={MASK}"
    found = shown["jwt_detail"]
    assert found["carried_in"] == "?jwt= query parameter"
    assert found["token"] == masked(carried)
    assert found["canonical_request"] == "GET&/panel&lang=en"  # jwt never enters it
    assert found["qsh_match"] == "match"
    assert carried not in text_of(shown)


# --- bodies: JSON, forms, multipart -------------------------------------------------------


def test_json_secret_fields_are_masked_at_any_depth_and_of_any_type() -> None:
    document = {
        "clientKey": "client-1",
        "sharedSecret": SECRET,
        "baseUrl": "https://site.example",
        "nested": {
            "list": [{"password": 123456789}, {"apiToken": ["PLANTED-a-1", "PLANTED-b-2"]}],
            "session": {"id": "PLANTED-session-id-3"},
            "x-api-key": None,
            "refresh_token": "",
        },
        "SIGNATURE": 3.25,
    }
    made = exchange(
        "POST /installed HTTP/1.1\nContent-Type: application/json; charset=utf-8\n"
        f"Content-Length: {len(json.dumps(document))}",
        json.dumps(document).encode(),
    )
    body = detail(made, CONTEXT)["request"]["body"]
    assert body["kind"] == "json"
    assert body["truncated"] is False
    shown = json.loads(body["shown"])
    assert shown["clientKey"] == "client-1"
    assert shown["baseUrl"] == "https://site.example"
    assert shown["sharedSecret"] == masked(SECRET)
    assert shown["nested"]["list"] == [{"password": MASK}, {"apiToken": MASK}]
    assert shown["nested"]["session"] == MASK
    assert shown["nested"]["x-api-key"] == MASK
    assert shown["nested"]["refresh_token"] == ""  # nothing to hide
    assert shown["SIGNATURE"] == MASK
    for planted in ("PLANTED", "123456789", "3.25"):
        assert planted not in body["shown"]

    full = json.loads(detail(made, CONTEXT, include_secrets=True)["request"]["body"]["shown"])
    assert full == document


def test_a_json_body_without_a_content_type_is_recognised() -> None:
    found = body_of(b' {"password": "PLANTED-pw-77", "user": "ann"}', 44, [])
    assert found.kind == "json"
    assert json.loads(found.shown) == {"password": masked("PLANTED-pw-77"), "user": "ann"}


def test_form_bodies_mask_secret_fields_in_the_pairs_and_the_text() -> None:
    raw = (
        b"user=ann&password=PLANTED-pw-1&pass%77ord=PLANTED-pw-2&x_token=PLANTED-t"
        b"&jwt=PLANTED-j&lang=en"
    )
    headers = [("Content-Type", "application/x-www-form-urlencoded")]
    found = body_of(raw, len(raw), headers)
    assert found.kind == "form"
    assert found.shown.splitlines() == [
        "user = ann",
        f"password = {masked('PLANTED-pw-1')}",
        f"password = {masked('PLANTED-pw-2')}",
        f"x_token = {masked('PLANTED-t')}",
        f"jwt = {masked('PLANTED-j')}",
        "lang = en",
    ]
    assert found.text == (
        f"user=ann&password={MASK}&pass%77ord={MASK}&x_token={MASK}&jwt={MASK}&lang=en"
    )
    assert "PLANTED" not in found.shown + (found.text or "")
    everything = body_of(raw, len(raw), headers, include_secrets=True)
    assert everything.text == raw.decode()
    assert "password = PLANTED-pw-1" in everything.shown


def test_multipart_parts_with_secret_names_are_masked() -> None:
    raw = (
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="user"\r\n\r\n'
        b"ann\r\n"
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="password"\r\n\r\n'
        b"PLANTED-multipart-pw\r\n"
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="api_token"\r\n'
        b"Content-Type: text/plain\r\n\r\n"
        b"PLANTED-multipart-token\r\n"
        b"--XyZ--\r\n"
    )
    headers = [("Content-Type", "multipart/form-data; boundary=XyZ")]
    found = body_of(raw, len(raw), headers)
    assert found.kind == "text"
    assert "PLANTED" not in found.shown
    assert 'name="user"\r\n\r\nann\r\n' in found.shown
    assert f'name="password"\r\n\r\n{MASK}\r\n--XyZ' in found.shown
    assert f"Content-Type: text/plain\r\n\r\n{MASK}\r\n--XyZ--" in found.shown
    assert body_of(raw, len(raw), headers, include_secrets=True).shown == raw.decode()


def test_json_cut_short_is_shown_as_text_with_secret_fields_masked() -> None:
    whole = json.dumps(
        {
            "user": "ann",
            "apiToken": "PLANTED-cut-token-1",
            "pin_password": 4711,
            "filler": "x" * 500,
        }
    ).encode()
    made = exchange(
        f"POST /save HTTP/1.1\nContent-Type: application/json\nContent-Length: {len(whole)}",
        whole,
        limit=100,
    )
    body = detail(made, CONTEXT)["request"]["body"]
    assert body["kind"] == "text"
    assert body["truncated"] is True
    assert (body["size"], body["kept"]) == (len(whole), 100)
    assert body["note"] == f"only the first 100 of {len(whole):,} bytes were kept"
    assert '"user": "ann"' in body["shown"]
    assert f'"apiToken": "{MASK}"' in body["shown"]
    assert f'"pin_password": "{MASK}"' in body["shown"]
    assert "PLANTED" not in body["shown"]
    assert "4711" not in body["shown"]
    full = detail(made, CONTEXT, include_secrets=True)["request"]["body"]
    assert "PLANTED-cut-token-1" in full["shown"]


def test_json_cut_inside_a_secret_value_shows_none_of_it() -> None:
    whole = b'{"user": "ann", "sharedSecret": "PLANTED-the-secret-is-long-enough"}'
    cut = whole[: whole.index(b"is-long")]
    found = body_of(cut, len(whole), [("Content-Type", "application/json")])
    assert found.kind == "text"
    assert found.shown == f'{{"user": "ann", "sharedSecret": "{MASK}"'
    assert found.truncated


def test_broken_json_says_so() -> None:
    found = body_of(b'{"token": "PLANTED-broken-1",}', 30, [("Content-Type", "application/json")])
    assert (found.kind, found.note) == ("text", "not valid JSON")
    assert "PLANTED" not in found.shown


# --- decoding -----------------------------------------------------------------------------


def test_gzip_and_deflate_bodies_are_decoded_then_masked() -> None:
    document = {"accessToken": "PLANTED-gzip-token", "items": list(range(50))}
    plain = json.dumps(document).encode()
    for encoding, data in (
        ("gzip", gzip.compress(plain)),
        ("x-gzip", gzip.compress(plain)),
        ("deflate", zlib.compress(plain)),
    ):
        headers = [("Content-Type", "application/json"), ("Content-Encoding", encoding)]
        found = body_of(data, len(data), headers)
        assert found.kind == "json", encoding
        assert found.note == f"decoded from {encoding}"
        assert json.loads(found.shown) == {**document, "accessToken": masked("PLANTED-gzip-token")}
        assert found.size == len(data)  # on the wire


def test_bodies_that_do_not_decode_are_binary_and_say_why() -> None:
    junk = b"\x1f\x8b not gzip at all"
    broken = body_of(junk, len(junk), [("Content-Encoding", "gzip")])
    assert (broken.kind, broken.note) == ("binary", "gzip that does not decode")
    assert broken.base64 == base64.b64encode(junk).decode()
    brotli = body_of(b"\x0b\x02\x80", 3, [("Content-Encoding", "br"), ("Content-Type", "text/css")])
    assert (brotli.kind, brotli.note) == ("binary", "br-encoded")
    assert brotli.shown == "binary, 3 bytes (text/css)"


def test_chunked_bodies_are_unframed() -> None:
    payload = b'{"password": "PLANTED-chunked-pw", "n": 1}'
    framed = b"%x\r\n%s\r\n%x;ext=1\r\n%s\r\n0\r\nX-Trailer: t\r\n\r\n" % (
        10,
        payload[:10],
        len(payload) - 10,
        payload[10:],
    )
    assert dechunk(framed) == (payload, True)
    assert dechunk(framed[: framed.index(b"0\r\nX-")]) == (payload, False)
    assert dechunk(framed[:15]) == (payload[:10], False)
    made = exchange(
        "POST /hook HTTP/1.1\nTransfer-Encoding: chunked\nContent-Type: application/json",
        framed,
        response_head="HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain",
        response_body=b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        response_chunked=True,
    )
    shown = detail(made, CONTEXT)
    request = shown["request"]["body"]
    assert request["kind"] == "json"
    assert request["size"] == len(payload)  # all of it kept: the payload's size
    assert json.loads(request["shown"]) == {"password": masked("PLANTED-chunked-pw"), "n": 1}
    response = shown["response"]["body"]
    assert (response["kind"], response["shown"], response["size"]) == ("text", "hello world", 11)


def test_a_chunked_and_gzipped_response_is_unframed_then_decoded() -> None:
    plain = b"line of text\n" * 40
    packed = gzip.compress(plain)
    framed = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (20, packed[:20], len(packed) - 20, packed[20:])
    found = body_of(
        framed,
        len(framed),
        [("Content-Encoding", "gzip"), ("Content-Type", "text/plain")],
        chunked=True,
    )
    assert (found.kind, found.shown, found.note) == ("text", plain.decode(), "decoded from gzip")


def test_a_chunked_body_cut_short_keeps_its_wire_size() -> None:
    framed = b"a\r\n0123456789\r\n" * 10 + b"0\r\n\r\n"
    found = body_of(framed[:40], len(framed), [("Content-Type", "text/plain")], chunked=True)
    assert found.truncated
    assert found.size == len(framed)
    assert found.shown == "0123456789" * 2 + "0123456"  # 15 bytes a chunk on the wire
    assert found.note == f"only the first 40 of {len(framed):,} bytes were kept"


def test_html_is_summarised_with_its_title() -> None:
    page = b"<!doctype html><html><head><TITLE lang=en>\n  My add-on page </TITLE></head></html>"
    found = body_of(page, len(page), [("Content-Type", "text/html; charset=utf-8")])
    assert found.kind == "html"
    assert found.shown == f"HTML, {len(page)} bytes · title 'My add-on page'"
    assert found.text == page.decode()
    untitled = body_of(b"<p>hi</p>", 9, [("Content-Type", "application/xhtml+xml")])
    assert untitled.shown == "HTML, 9 bytes"


def test_binary_bodies_are_summarised_and_kept_as_base64() -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    found = body_of(png, 5000, [("Content-Type", "image/png")])
    assert found.kind == "binary"
    assert found.shown == "binary, 5,000 bytes (image/png)"
    assert found.text is None
    assert found.base64 == base64.b64encode(png).decode()
    assert found.truncated
    unknown = body_of(b"\x00\xff\xfe", 3, [])
    assert unknown.shown == "binary, 3 bytes (unknown type)"
    sniffed = body_of(b"plain words", 11, [])
    assert (sniffed.kind, sniffed.shown) == ("text", "plain words")
    assert body_of(b"", 0, []).to_dict() == {
        "kind": "empty",
        "content_type": "",
        "size": 0,
        "kept": 0,
        "truncated": False,
        "shown": "",
    }


def test_the_requests_own_jwt_is_scrubbed_where_the_response_echoes_it() -> None:
    bearer = token("/echo")
    for content_type, body in (
        ("text/plain", f"you sent {bearer} to me".encode()),
        ("application/json", json.dumps({"echo": bearer, "list": [bearer]}).encode()),
        ("text/html", f"<html><title>t</title><p>{bearer}</p></html>".encode()),
    ):
        made = exchange(
            f"GET /echo HTTP/1.1\nAuthorization: JWT {bearer}",
            response_head=f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}",
            response_body=body,
        )
        shown = detail(made, CONTEXT)
        assert bearer not in text_of(shown), content_type
        if content_type != "text/html":  # html is summarised: the title, not the text
            assert MASK in shown["response"]["body"]["shown"], content_type
        assert bearer in text_of(detail(made, CONTEXT, include_secrets=True))


def test_summary_of_an_exchange() -> None:
    made = exchange(
        "POST /hook?jwt=abc.def.ghi&x=1 HTTP/1.1\nContent-Length: 4",
        b"body",
        response_body=b"answer",
        status=502,
        verdict={"verified": False, "verdict": "expired", "iss": "tenant-9"},
        failure="connection refused",
    )
    made.replay_of = 3
    assert summary(made) == {
        "id": 1,
        "ts": round(made.started, 3),
        "method": "POST",
        "path": f"/hook?jwt={MASK}&x=1",
        "status": 502,
        "duration_ms": 12.3,
        "jwt": "expired",
        "tenant": "tenant-9",
        "request_size": 4,
        "response_size": 6,
        "replay_of": 3,
        "addon_error": "connection refused",
    }
    verified = exchange("GET / HTTP/1.1", verdict={"verified": True, "tenant": "t-1"})
    assert (summary(verified)["jwt"], summary(verified)["tenant"]) == ("verified", "t-1")
    unverified = exchange("GET / HTTP/1.1", verdict={"verified": False})
    assert summary(unverified)["jwt"] == "not verified"
    assert summary(exchange("GET / HTTP/1.1"))["jwt"] == ""


def test_detail_of_a_response_the_proxy_answered_and_a_verdict_with_a_secret() -> None:
    made = exchange(
        "GET /x HTTP/1.1",
        verdict={"verified": False, "token": "PLANTED-verdict-token", "reason": "bad signature"},
    )
    made.set_local_response(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 4\r\n\r\ngone")
    shown = detail(made, CONTEXT)
    assert shown["response"]["local"] is True
    assert shown["response"]["reason"] == "Bad Gateway"
    assert shown["response"]["http_version"] == "HTTP/1.1"
    assert shown["response"]["body"]["shown"] == "gone"
    assert shown["verdict"]["token"] == masked("PLANTED-verdict-token")
    assert shown["verdict"]["reason"] == "bad signature"
    assert shown["jwt_detail"] is None
    assert shown["started"].endswith("Z")
    assert detail(made, CONTEXT, include_secrets=True)["verdict"]["token"] == (
        "PLANTED-verdict-token"
    )
    # No response head at all (a client that left before any answer): the reason from status.
    gone = exchange("GET /y HTTP/1.1", response_head="", status=499)
    assert detail(gone, CONTEXT)["response"]["reason"] == ""
    assert detail(gone, CONTEXT)["response"]["headers"] == []


# --- the JWT ------------------------------------------------------------------------------


def test_jwt_detail_decodes_claims_and_finds_the_qsh_matches() -> None:
    now = int(time.time())
    carried = token("/issue", "b=2&a=1", method="POST", now=now)
    made = exchange(f"POST /issue?b=2&a=1 HTTP/1.1\nAuthorization: JWT {carried}")
    found = detail(made, CONTEXT)["jwt_detail"]
    assert found["carried_in"] == "Authorization header"
    assert found["header"] == {"alg": "HS256", "typ": "JWT"}
    assert found["claims"]["iss"] == "tenant-key"
    assert found["claims"]["sub"] == "user-1"
    assert found["canonical_request"] == "POST&/issue&a=1&b=2"
    assert found["qsh_computed"] == jwt.query_string_hash("POST&/issue&a=1&b=2")
    assert found["qsh_carried"] == found["qsh_computed"]
    assert found["qsh_match"] == "match"
    assert found["expired"] is False
    assert found["lifetime_s"] == 180
    assert found["expires"] == time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now + 180))


def test_jwt_detail_mismatch_context_and_expired() -> None:
    other = token("/issue", "a=2", method="POST")
    made = exchange(f"POST /issue?a=1 HTTP/1.1\nAuthorization: JWT {other}")
    found = detail(made, CONTEXT)["jwt_detail"]
    assert found["qsh_match"] == "mismatch"
    assert found["qsh_carried"] != found["qsh_computed"]

    context_token = token(qsh=jwt.CONTEXT_QSH)
    made = exchange(f"GET /rest/data HTTP/1.1\nAuthorization: JWT {context_token}")
    found = detail(made, CONTEXT)["jwt_detail"]
    assert found["qsh_carried"] == "context-qsh"
    assert found["qsh_match"] == "context token: the qsh names no request"

    expired = token(now=int(time.time()) - 1000, ttl=60)
    found = detail(exchange(f"GET /page HTTP/1.1\nAuthorization: JWT {expired}"), CONTEXT)[
        "jwt_detail"
    ]
    assert found["expired"] is True
    assert found["lifetime_s"] == 60
    assert found["qsh_match"] == "match"


def test_jwt_detail_strips_the_public_base_path() -> None:
    carried = token("/wiki/page", "x=1", base_path="/wiki")
    made = exchange(f"GET /wiki/page?x=1 HTTP/1.1\nAuthorization: JWT {carried}")
    at_wiki = ViewContext(public_url="https://site.example/wiki/", addon_url="")
    assert detail(made, at_wiki)["jwt_detail"]["qsh_match"] == "match"
    assert detail(made, at_wiki)["jwt_detail"]["canonical_request"] == "GET&/page&x=1"
    assert detail(made, ViewContext())["jwt_detail"]["qsh_match"] == "mismatch"


def test_jwt_detail_of_a_token_that_is_not_a_jwt() -> None:
    made = exchange("GET /page HTTP/1.1\nAuthorization: JWT not-a-token-at-all")
    found = detail(made, CONTEXT)["jwt_detail"]
    assert found["token"] == masked("not-a-token-at-all")
    assert "malformed" in found["error"]
    assert "claims" not in found
    # A Bearer token is not a Connect JWT: no section.
    assert (
        detail(exchange("GET / HTTP/1.1\nAuthorization: Bearer abc"), CONTEXT)["jwt_detail"] is None
    )


# --- the property: a secret under a secret-named key never shows ----------------------------

_PLAIN = "abcdfghilmnqruvxyz0123456789_"  # no secret part can be spelled with these
plain_keys = st.text(_PLAIN, min_size=1, max_size=8).filter(lambda k: not is_secret_name(k))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1000, 1000),
    st.text(_PLAIN + " ", max_size=10),
)
fillers = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(plain_keys, inner, max_size=3),
    max_leaves=6,
)
secret_keys = st.builds(
    lambda before, part, case, after: before + (part.upper() if case else part) + after,
    st.text(_PLAIN, max_size=4),
    st.sampled_from(_SECRET_PARTS),
    st.booleans(),
    st.text(_PLAIN, max_size=4),
)
secret_texts = st.builds(
    lambda tail: "PLANTED" + tail,
    st.text(
        st.characters(categories=("L", "N")) | st.sampled_from("-_.~"), min_size=6, max_size=30
    ),
)
secret_numbers = st.integers(10**12, 10**15)


@st.composite
def planted_documents(draw: st.DrawFn) -> tuple[Any, str]:
    """A random JSON document with one secret somewhere under a secret-named key, and the
    secret as it would appear in JSON text."""
    secret: str | int = draw(secret_texts | secret_numbers)
    holder: Any = draw(
        st.sampled_from(["value", "list", "object", "deep"]).map(
            lambda kind: {
                "value": secret,
                "list": ["x", secret],
                "object": {"inner": secret},
                "deep": [{"a": [secret]}],
            }[kind]
        )
    )
    document: Any = {draw(secret_keys): holder}
    for _ in range(draw(st.integers(0, 4))):
        siblings = draw(st.dictionaries(plain_keys, fillers, max_size=3))
        if draw(st.booleans()):
            document = [*draw(st.lists(fillers, max_size=2)), document]
        else:
            document = {**siblings, draw(plain_keys): document}
    return document, str(secret)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(planted=planted_documents(), where=st.sampled_from(["request", "response"]))
def test_a_planted_secret_never_shows_in_detail_unless_asked(
    planted: tuple[Any, str], where: str
) -> None:
    document, secret = planted
    raw = json.dumps(document, ensure_ascii=False).encode()
    if where == "request":
        made = exchange(
            f"PUT /data HTTP/1.1\nContent-Type: application/json\nContent-Length: {len(raw)}",
            raw,
        )
    else:
        made = exchange(
            "GET /data HTTP/1.1",
            response_head="HTTP/1.1 200 OK\r\nContent-Type: application/vnd.api+json",
            response_body=raw,
        )
    assert secret not in text_of(detail(made, CONTEXT))
    assert secret in text_of(detail(made, CONTEXT, include_secrets=True))


def test_json_cut_short_is_masked_at_any_depth() -> None:
    # The capture cut it: it does not parse, and every secret in it is still masked.
    document = {
        "user": "ann",
        "session": {"token": "LEAK-A"},
        "data": {"nested": [{"password": "LEAK-B"}], "apiKey": 12345678},
        "secret": {"value": "LEAK-C"},
        "filler": "x" * 300,
    }
    cut = json.dumps(document).encode()[:230]
    body = body_of(cut, 400, [("Content-Type", "application/json")])
    assert body.kind == "text"
    for leak in ("LEAK-A", "LEAK-B", "LEAK-C", "12345678"):
        assert leak not in body.shown
    assert '"user": "ann"' in body.shown


def test_a_secret_field_shows_no_word_of_it() -> None:
    body = body_of(
        b'{"password": "correct horse battery staple"}', 45, [("Content-Type", "application/json")]
    )
    assert "correct" not in body.shown
    form = body_of(
        b"password=correct+horse", 22, [("Content-Type", "application/x-www-form-urlencoded")]
    )
    assert "correct" not in form.shown


def test_json_labelled_as_text_is_masked_as_json() -> None:
    body = body_of(b'{"sharedSecret": "LEAK-D", "ok": 1}', 35, [("Content-Type", "text/plain")])
    assert body.kind == "json"
    assert "LEAK-D" not in body.shown


def test_a_percent_encoded_secret_parameter_name_is_masked() -> None:
    from connect_devloop.redact import mask_path

    assert mask_path("/p?%6Awt=LEAK-E&a=1") == "/p?%6Awt=••••••&a=1"
