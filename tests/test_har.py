"""The HAR export (traffic/har.py) of exchanges captured by the real proxy.

An aiohttp add-on behind a real ``Proxy`` with a ``Capture`` answers a Connect-style install
POST, a login form, gzip JSON, a PNG, bodies over the capture limit and a chunked stream. The
requests carry planted secrets everywhere a credential travels (JWT header, cookie, API-token
header, query parameter, JSON and form fields, Set-Cookie): the masked HAR holds none of them,
the ``include_secrets`` HAR all of them. The real npm ``har-validator`` 5.1.5 (ajv and
har-schema; installed once per session, tests/har_validator/) checks both documents against
HAR 1.2.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import pytest
from aiohttp import web

import connect_devloop
from connect_devloop import jwt
from connect_devloop.proxy import Proxy
from connect_devloop.proxy.capture import Capture, Exchange
from connect_devloop.redact import MASK
from connect_devloop.traffic.har import to_har
from connect_devloop.traffic.view import ViewContext

from .conftest import EventLog, eventually
from .npm_peer import NPM_TIMEOUT_S, NpmUnavailable, ensure_npm_peer
from .servers import serve

HAR_VALIDATOR_VERSION = "5.1.5"
VALIDATOR_DIR = Path(__file__).parent / "har_validator"
BODY_LIMIT = 1024
PUBLIC_URL = "https://planted-tunnel.example"

# Every place a credential travels; each is long enough for view's scrubbing (8 characters+).
SHARED_SECRET = "PLANTED1-shared-secret-7f3a9c"  # install body; also signs the JWT
SESSION_COOKIE = "PLANTED2-session-cookie-51e0"
API_TOKEN_HEADER = "PLANTED3-api-token-header-c2d8"
API_TOKEN_QUERY = "PLANTED4-api-token-query-9b41"
PASSWORD = "PLANTED5-password-field-e6a7"
SET_COOKIE = "PLANTED6-set-cookie-value-3d5f"
BIG_JSON_TOKEN = "PLANTED7-token-in-cut-json-0c92"

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 2
GZIP_DOCUMENT = {"items": ["same again"] * 600}  # ~8 KB of JSON, ~100 bytes gzipped
BIG_TEXT = "".join(f"line {index:04d} of a long text answer\n" for index in range(200))
STREAM_PIECES = [f"chunk {index}\n" for index in range(40)]


def _token() -> str:
    claims = jwt.make_claims(
        "planted-client-key", "POST", "/install", f"api_token={API_TOKEN_QUERY}&lang=en"
    )
    return jwt.encode_hs256(claims, SHARED_SECRET)


TOKEN = _token()
PLANTED = {
    "jwt": TOKEN,
    "shared secret": SHARED_SECRET,
    "session cookie": SESSION_COOKIE,
    "api token header": API_TOKEN_HEADER,
    "api token query": API_TOKEN_QUERY,
    "password": PASSWORD,
    "set-cookie": SET_COOKIE,
    "token in cut JSON": BIG_JSON_TOKEN,
}


# --- the add-on, the proxy and the traffic ---------------------------------------------------


def addon_app() -> web.Application:
    async def install(request: web.Request) -> web.Response:
        await request.read()
        # An add-on that echoes the token it got: view scrubs the request's own JWT anywhere.
        response = web.json_response({"installed": True, "echo": TOKEN})
        response.headers["Set-Cookie"] = f"session={SET_COOKIE}; Path=/; HttpOnly; Max-Age=3600"
        return response

    async def login(request: web.Request) -> web.Response:
        await request.post()
        raise web.HTTPFound("/home")

    async def gzipped(request: web.Request) -> web.Response:
        body = gzip.compress(json.dumps(GZIP_DOCUMENT).encode())
        return web.Response(
            body=body,
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )

    async def logo(request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    async def big_text(request: web.Request) -> web.Response:
        return web.Response(text=BIG_TEXT)

    async def big_json(request: web.Request) -> web.Response:
        return web.json_response({"apiToken": BIG_JSON_TOKEN, "filler": "x" * 3000})

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for piece in STREAM_PIECES:
            await response.write(piece.encode())
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/install", install)
    app.router.add_post("/login", login)
    app.router.add_get("/gzip", gzipped)
    app.router.add_get("/logo.png", logo)
    app.router.add_get("/big-text", big_text)
    app.router.add_get("/big-json", big_json)
    app.router.add_get("/stream", stream)
    return app


class StaticInspector:
    """An inspector that judges every request with a Connect JWT "verified", so that HAR
    entries carry a verdict (the real one needs a tenant store and keys)."""

    def wants_body(self, method: str, path: str) -> bool:
        return False

    def wants_request(self, method: str, path: str, query: str, authorization: str | None) -> bool:
        return authorization is not None

    async def inspect(self, request: Any) -> dict[str, Any] | None:
        return {"verified": True, "verdict": "verified", "signature": "HS256", "tenant": "t1"}


@dataclass
class Traffic:
    exchanges: list[Exchange]
    addon_url: str
    proxy_url: str


@pytest.fixture
async def traffic(events: EventLog) -> AsyncIterator[Traffic]:
    """The scenario's exchanges, as the real proxy captured them."""
    capture = Capture(body_limit=BODY_LIMIT)
    async with serve(addon_app()) as addon_url:
        proxy = Proxy(addon_url, events, port=0, capture=capture, inspector=StaticInspector())
        await proxy.start()
        try:
            async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
                await _send(client, proxy.url)
            await eventually(lambda: len(capture.all()) == 7)
            yield Traffic(capture.all(), addon_url, proxy.url)
        finally:
            await proxy.close()


async def _send(client: aiohttp.ClientSession, base: str) -> None:
    headers = {
        "Authorization": f"JWT {TOKEN}",
        "Cookie": f"session={SESSION_COOKIE}; theme=dark",
        "X-Api-Token": API_TOKEN_HEADER,
    }
    install = {"clientKey": "planted-client-key", "sharedSecret": SHARED_SECRET}
    async with client.post(
        f"{base}/install?api_token={API_TOKEN_QUERY}&lang=en", json=install, headers=headers
    ) as response:
        assert response.status == 200
        await response.read()
    async with client.post(
        f"{base}/login", data={"user": "ann", "password": PASSWORD}, allow_redirects=False
    ) as response:
        assert response.status == 302
    for path in ("/gzip", "/logo.png", "/big-text", "/big-json", "/stream"):
        async with client.get(base + path) as response:
            assert response.status == 200
            await response.read()


# --- helpers --------------------------------------------------------------------------------


def entry(har: dict[str, Any], path: str) -> dict[str, Any]:
    found = [e for e in har["log"]["entries"] if urlsplit(e["request"]["url"]).path == path]
    assert len(found) == 1, f"{len(found)} entries for {path}"
    only: dict[str, Any] = found[0]
    return only


def everything(har: dict[str, Any]) -> str:
    """The document as text, and every base64 body decoded: a secret must not hide in either."""
    parts = [json.dumps(har, ensure_ascii=False)]
    for item in har["log"]["entries"]:
        for holder in (item["request"].get("postData", {}), item["response"]["content"]):
            if holder.get("encoding") == "base64" or holder.get("_encoding") == "base64":
                parts.append(base64.b64decode(holder["text"]).decode("latin-1"))
    return "\n".join(parts)


# --- the real har-validator -----------------------------------------------------------------


@pytest.fixture(scope="session")
def har_validator_modules(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """node_modules with har-validator (ajv, har-schema), installed from the npm registry once
    and kept in the pytest cache between sessions when there is one."""
    name = f"har-validator-{HAR_VALIDATOR_VERSION}"
    cache = getattr(request.config, "cache", None)
    directory = cache.mkdir(name) if cache is not None else tmp_path_factory.mktemp(name)
    try:
        return ensure_npm_peer(
            directory, VALIDATOR_DIR / "package.json", {"har-validator": HAR_VALIDATOR_VERSION}
        )
    except NpmUnavailable as exc:
        pytest.fail(str(exc))


async def validate(node_modules: Path, har: dict[str, Any]) -> None:
    process = await asyncio.create_subprocess_exec(
        "node",
        str(VALIDATOR_DIR / "validate.js"),
        str(node_modules),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(json.dumps(har).encode()), 60)
    assert process.returncode == 0, f"har-validator rejects the HAR:\n{err.decode()}"
    assert out.decode().strip() == "valid"


@pytest.mark.skipif(
    not (shutil.which("node") and shutil.which("npm")),
    reason="node and npm are needed to run the real har-validator (CI has them)",
)
# The first run waits for npm install.
@pytest.mark.timeout(NPM_TIMEOUT_S + 120)
async def test_the_har_validator_accepts_both_exports(
    traffic: Traffic, har_validator_modules: Path
) -> None:
    context = ViewContext(public_url=PUBLIC_URL, addon_url=traffic.addon_url)
    for include_secrets in (False, True):
        await validate(
            har_validator_modules,
            to_har(traffic.exchanges, context, include_secrets=include_secrets),
        )
    # And one with no public URL, the other origin.
    await validate(har_validator_modules, to_har(traffic.exchanges, ViewContext()))


# --- masking ----------------------------------------------------------------------------------


async def test_the_masked_har_holds_no_planted_secret(traffic: Traffic) -> None:
    har = to_har(traffic.exchanges, ViewContext(PUBLIC_URL, traffic.addon_url))
    text = everything(har)
    leaked = [where for where, secret in PLANTED.items() if secret in text]
    assert leaked == []
    assert MASK in text


async def test_the_har_with_secrets_holds_every_planted_secret(traffic: Traffic) -> None:
    har = to_har(
        traffic.exchanges, ViewContext(PUBLIC_URL, traffic.addon_url), include_secrets=True
    )
    text = everything(har)
    missing = [where for where, secret in PLANTED.items() if secret not in text]
    assert missing == []
    assert MASK not in text


async def test_credentials_are_masked_where_they_travel(traffic: Traffic) -> None:
    har = to_har(traffic.exchanges, ViewContext(PUBLIC_URL, traffic.addon_url))
    install = entry(har, "/install")
    request = install["request"]
    headers = {h["name"]: h["value"] for h in request["headers"]}
    assert headers["Authorization"] == f"JWT {MASK} ({len(TOKEN)} chars)"
    assert headers["X-Api-Token"] == f"{MASK} ({len(API_TOKEN_HEADER)} chars)"
    assert request["cookies"] == [
        {"name": "session", "value": f"{MASK} ({len(SESSION_COOKIE)} chars)"},
        {"name": "theme", "value": f"{MASK} (4 chars)"},  # the whole Cookie header is masked
    ]
    assert request["queryString"] == [
        {"name": "api_token", "value": MASK},
        {"name": "lang", "value": "en"},
    ]
    assert json.loads(request["postData"]["text"])["sharedSecret"].startswith(MASK)
    cookie = install["response"]["cookies"][0]
    assert cookie["name"] == "session"
    assert cookie["value"] == f"{MASK} ({len(SET_COOKIE)} chars)"
    assert json.loads(install["response"]["content"]["text"])["echo"] == MASK
    login = entry(har, "/login")["request"]["postData"]
    assert login["params"] == [
        {"name": "user", "value": "ann"},
        {"name": "password", "value": MASK},
    ]
    # The verdict is there, and so is the decoded token, masked.
    assert install["_jwt"]["verdict"] == "verified"
    assert install["_jwt"]["checks"]["tenant"] == "t1"
    assert install["_jwt"]["token"]["token"] == f"{MASK} ({len(TOKEN)} chars)"
    assert install["_jwt"]["token"]["qsh_match"] == "match"


async def test_a_json_body_cut_short_is_masked_as_text_unless_secrets_are_included(
    traffic: Traffic,
) -> None:
    # JSON the capture cut short does not parse: view shows it as text with the values of
    # secret-named fields masked, and the file carries the same.
    context = ViewContext(PUBLIC_URL, traffic.addon_url)
    masked = entry(to_har(traffic.exchanges, context), "/big-json")["response"]["content"]
    assert '"apiToken": "' + MASK in masked["text"]
    assert BIG_JSON_TOKEN not in masked["text"]
    assert masked["_truncated"] is True
    full = to_har(traffic.exchanges, context, include_secrets=True)
    content = entry(full, "/big-json")["response"]["content"]
    assert len(content["text"].encode()) == BODY_LIMIT
    assert BIG_JSON_TOKEN in content["text"]


# --- what the entries say -----------------------------------------------------------------


async def test_the_log_and_its_entries(traffic: Traffic) -> None:
    har = to_har(traffic.exchanges, ViewContext(PUBLIC_URL, traffic.addon_url))
    log = har["log"]
    assert log["version"] == "1.2"
    assert log["creator"] == {"name": "connect-dev", "version": connect_devloop.__version__}
    entries = log["entries"]
    assert [e["_id"] for e in entries] == sorted(e.id for e in traffic.exchanges)
    for item in entries:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", item["startedDateTime"])
        timings = item["timings"]
        assert item["time"] == sum(v for v in timings.values() if v != -1)
        assert timings["send"] == 0
        assert timings["receive"] == 0
        assert item["cache"] == {}
        assert item["_replayOf"] is None
        assert item["request"]["url"].startswith(PUBLIC_URL + "/")
        assert item["request"]["headersSize"] == -1
        assert item["response"]["headersSize"] == -1
        assert item["request"]["httpVersion"] == "HTTP/1.1"
        assert item["response"]["httpVersion"] == "HTTP/1.1"
    install = entry(har, "/install")
    # The mask is percent-encoded in the URL, and decoded in queryString.
    bullets = quote(MASK)
    assert install["request"]["url"] == f"{PUBLIC_URL}/install?api_token={bullets}&lang=en"
    assert install["request"]["method"] == "POST"
    assert install["request"]["postData"]["mimeType"] == "application/json"
    assert install["response"]["status"] == 200
    assert install["response"]["statusText"] == "OK"
    assert install["response"]["cookies"][0]["path"] == "/"
    assert install["response"]["cookies"][0]["httpOnly"] is True
    assert install["response"]["cookies"][0]["expires"].endswith("Z")
    login = entry(har, "/login")
    assert login["response"]["status"] == 302
    assert login["response"]["redirectURL"] == "/home"
    assert login["request"]["postData"]["mimeType"] == "application/x-www-form-urlencoded"
    assert entry(har, "/gzip")["request"]["bodySize"] == 0
    assert "postData" not in entry(har, "/gzip")["request"]


async def test_a_gzip_response_is_decoded(traffic: Traffic) -> None:
    har = to_har(traffic.exchanges, ViewContext(PUBLIC_URL, traffic.addon_url))
    item = entry(har, "/gzip")
    content = item["response"]["content"]
    decoded = json.dumps(GZIP_DOCUMENT).encode()
    assert json.loads(content["text"]) == GZIP_DOCUMENT
    assert content["size"] == len(decoded)
    assert content["compression"] == len(decoded) - item["response"]["bodySize"]
    assert content["comment"] == "decoded from gzip"
    assert "_truncated" not in content


async def test_a_binary_response_is_base64(traffic: Traffic) -> None:
    har = to_har(traffic.exchanges, ViewContext(PUBLIC_URL, traffic.addon_url))
    content = entry(har, "/logo.png")["response"]["content"]
    assert content["mimeType"] == "image/png"
    assert content["encoding"] == "base64"
    assert base64.b64decode(content["text"]) == PNG
    assert content["size"] == len(PNG)


async def test_a_body_over_the_limit_is_marked_and_sized_whole(traffic: Traffic) -> None:
    har = to_har(traffic.exchanges, ViewContext(PUBLIC_URL, traffic.addon_url))
    item = entry(har, "/big-text")
    content = item["response"]["content"]
    whole = len(BIG_TEXT.encode())
    assert whole > BODY_LIMIT
    assert content["size"] == whole
    assert item["response"]["bodySize"] == whole
    assert content["text"] == BIG_TEXT[:BODY_LIMIT]
    assert content["_truncated"] is True
    assert f"only the first {BODY_LIMIT:,} of {whole:,} bytes were kept" in content["comment"]
    assert "response body" in item["comment"]
    assert "comment" not in entry(har, "/logo.png")


async def test_a_chunked_response_is_unframed(traffic: Traffic) -> None:
    har = to_har(traffic.exchanges, ViewContext(PUBLIC_URL, traffic.addon_url))
    response = entry(har, "/stream")["response"]
    payload = "".join(STREAM_PIECES)
    assert response["content"]["text"] == payload
    assert response["content"]["size"] == len(payload)
    assert response["bodySize"] > len(payload)  # the chunked framing came over the wire too


async def test_without_a_public_url_the_request_says_where_it_went(traffic: Traffic) -> None:
    har = to_har(traffic.exchanges, ViewContext())
    assert entry(har, "/gzip")["request"]["url"] == f"{traffic.proxy_url}/gzip"
