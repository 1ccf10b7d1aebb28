"""The dashboard's traffic inspector (issue 13): the request card with bodies and the decoded
JWT, the `/` filter, and replays from the card and the list.

The traffic is a real ``Capture`` filled with exchanges built here (fixed times, no network),
behind a real ``TrafficService``; the daemon is a fake that offers it. One test drives a real
proxy and a real replay end to end.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from rich.console import Console
from textual.widgets import Static

from connect_devloop import jwt
from connect_devloop.errors import DevloopError
from connect_devloop.events import EventBus, RequestServed
from connect_devloop.proxy import Proxy
from connect_devloop.proxy.capture import Capture
from connect_devloop.proxy.http1 import parse_request_head
from connect_devloop.redact import MASK, mask_headers
from connect_devloop.secret import Secret
from connect_devloop.traffic.replay import CannotResignError, ReplayError, ReplayOutcome
from connect_devloop.traffic.service import TrafficService
from connect_devloop.traffic.view import ViewContext
from connect_devloop.tui import DashboardApp
from connect_devloop.tui.daemon_thread import ThreadedDaemon
from connect_devloop.tui.filter_bar import FilterBar
from connect_devloop.tui.inspector import captured_detail
from connect_devloop.tui.replay import ReplayFailed, ReplayResult
from connect_devloop.tui.request_detail import RequestDetail
from connect_devloop.tui.request_filter import RequestFilter
from connect_devloop.tui.requests import MAX_ROWS, RequestTable

from .servers import serve
from .test_tui_snapshots import CLIENT_KEYS, CONFIG, PUBLIC_URL, T0, startup

SIZE = (120, 40)
JIRA = CLIENT_KEYS["dev-jira"]
WIKI = CLIENT_KEYS["dev-wiki"]
SECRET = "shared-secret-of-dev-jira-0123456789abcdef"
QUERY = "lic=none&xdm_e=https%3A%2F%2Facme-dev.atlassian.net"
SnapCompare = Callable[..., bool]


@pytest.fixture(autouse=True)
def utc_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


# --- the traffic ------------------------------------------------------------------------------


def token(method: str, path: str, query: str = "", *, iss: str = JIRA, **claims: Any) -> str:
    """A Connect JWT as the host signs it, for ``method path?query`` (or ``qsh`` if given);
    issued at T0 + 5 and valid 180 s: always expired by now, whatever now is."""
    canonical = jwt.canonical_request(method, path, query)
    body = {
        "iss": iss,
        "sub": "557058:f00dcafe",
        "iat": int(T0) + 5,
        "exp": int(T0) + 185,
        "qsh": jwt.query_string_hash(canonical),
        **claims,
    }
    return jwt.encode_hs256(body, SECRET)


def verified(tenant: str = JIRA, host: str = "dev-jira") -> dict[str, Any]:
    return {
        "verified": True,
        "verdict": "verified",
        "signature": "HS256",
        "iss": tenant,
        "tenant": tenant,
        "host": host,
        "qsh": "ok",
    }


def rejected(verdict: str, reason: str) -> dict[str, Any]:
    return {"verified": False, "verdict": verdict, "reason": reason, "iss": JIRA, "tenant": JIRA}


@dataclass
class Sent:
    """One exchange as the proxy would have captured it."""

    method: str
    target: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    status: int = 200
    reason: str = "OK"
    answer_headers: list[tuple[str, str]] = field(default_factory=list)
    answer: bytes = b""
    ms: float = 5.0
    verdict: dict[str, Any] | None = None
    at: float = 0.0
    failure: str = ""


def record(capture: Capture, clock: list[float], sent: Sent) -> RequestServed:
    """Capture ``sent`` as the relay does, and the ``request`` event the proxy reports."""
    lines = [f"{sent.method} {sent.target} HTTP/1.1", "Host: a1b2-203-0-113-7.ngrok-free.app"]
    lines += [f"{name}: {value}" for name, value in sent.headers]
    if sent.body:
        lines.append(f"Content-Length: {len(sent.body)}")
    clock[0] = T0 + sent.at
    exchange = capture.begin(parse_request_head("\r\n".join(lines)), 0)
    exchange.add_request_body(sent.body)
    head = [f"HTTP/1.1 {sent.status} {sent.reason}"]
    head += [f"{name}: {value}" for name, value in sent.answer_headers]
    head.append(f"Content-Length: {len(sent.answer)}")
    if sent.failure:
        exchange.set_local_response(("\r\n".join(head) + "\r\n\r\n").encode() + sent.answer)
    else:
        exchange.response_head = "\r\n".join(head)
        exchange.add_response_body(sent.answer, 0, len(sent.answer))
    number = capture.commit(exchange, sent.status, sent.ms / 1000, sent.verdict, sent.failure)
    return RequestServed(
        method=sent.method,
        path=sent.target,
        status=sent.status,
        duration_ms=exchange.duration_ms,
        jwt=sent.verdict,
        headers=dict(mask_headers(lines_to_headers(lines))),
        addon_error=sent.failure,
        id=number,
        ts=T0 + sent.at + sent.ms / 1000,
    )


def lines_to_headers(lines: list[str]) -> list[tuple[str, str]]:
    return [(line.split(": ", 1)[0], line.split(": ", 1)[1]) for line in lines[1:]]


JSON_TYPE = [("Content-Type", "application/json; charset=utf-8")]
PAGE_TOKEN = token("GET", "/panel", QUERY)
WRONG_QSH = token("GET", "/panel", QUERY, qsh=jwt.query_string_hash("GET&/app/panel&" + QUERY))
COMMENT_TOKEN = token("POST", "/rest/comment")
INSTALL_TOKEN = token("POST", "/installed")
HOOK_TOKEN = token("POST", "/webhook/page-updated", iss=WIKI)
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + bytes(range(256)) * 4
PAGE = (
    b"<!doctype html><html><head><title>Issue glance</title></head>"
    b"<body><div id='glance'>3 linked builds</div></body></html>"
)


def traffic_day() -> list[Sent]:
    """Eight exchanges: every body kind, every JWT verdict, two tenants, a 502."""
    install = {
        "key": "my-addon",
        "clientKey": JIRA,
        "sharedSecret": SECRET,
        "baseUrl": "https://acme-dev.atlassian.net",
        "eventType": "installed",
    }
    comment = {"issue": "PROJ-7", "body": "Deployed to staging", "visibility": {"type": "role"}}
    return [
        Sent("GET", "/atlassian-connect.json", answer_headers=JSON_TYPE,
             answer=json.dumps({"key": "my-addon", "baseUrl": PUBLIC_URL}).encode(),
             ms=1.4, at=6),
        Sent("POST", "/installed",
             [("Authorization", f"JWT {INSTALL_TOKEN}"), *JSON_TYPE],
             json.dumps(install).encode(), status=204, reason="No Content", ms=38.2,
             verdict=verified(), at=6.2),
        Sent("GET", f"/panel?jwt={PAGE_TOKEN}&{QUERY}",
             answer_headers=[("Content-Type", "text/html; charset=utf-8")], answer=PAGE,
             ms=12.7, verdict=verified(), at=9),
        Sent("POST", "/webhook/page-updated",
             [("Authorization", f"JWT {HOOK_TOKEN}"),
              ("Content-Type", "application/x-www-form-urlencoded")],
             b"page=12345&space=ENG&api_token=hunter2-hunter2&title=Release+notes",
             answer_headers=JSON_TYPE, answer=b'{"ok": true}', ms=8.1,
             verdict=verified(WIKI, "dev-wiki"), at=10),
        Sent("GET", "/export/report.pdf", answer_headers=[("Content-Type", "application/pdf")],
             answer=PDF, ms=21.0, at=10.5),
        Sent("GET", f"/panel?jwt={WRONG_QSH}&{QUERY}", status=401, reason="Unauthorized",
             answer_headers=[("Content-Type", "text/plain")], answer=b"qsh mismatch", ms=4.6,
             verdict=rejected("qsh mismatch", "qsh mismatch: the token was signed for "
                              "another request"), at=12),
        Sent("POST", "/rest/comment",
             [("Authorization", f"JWT {COMMENT_TOKEN}"), *JSON_TYPE],
             json.dumps(comment).encode(), status=401, reason="Unauthorized",
             answer_headers=JSON_TYPE,
             answer=json.dumps({"error": "token expired", "retry": False}).encode(),
             ms=3.3, verdict=rejected("expired", "the token expired 4 s ago"), at=13),
        Sent("GET", "/api/issues", status=502, reason="Bad Gateway",
             answer_headers=[("Content-Type", "text/plain")],
             answer=b"connect-dev: the add-on did not answer", ms=3.1, at=14,
             failure="connection refused"),
    ]  # fmt: skip


# --- the daemon -------------------------------------------------------------------------------


Replayer = Callable[[int, "str | None", bool], "ReplayOutcome"]


class InspectorDaemon:
    """A daemon whose proxy captured ``traffic_day()``; ``replay`` answers as ``replayer``
    says (by default: the add-on now answers 200 with a verified token), and the replay's
    ``request`` event goes out on ``bus`` as the proxy would send it."""

    def __init__(self, bus: EventBus, *, keep: int = 500) -> None:
        self.bus = bus
        self.clock = [T0]
        self.capture = Capture(keep=keep, clock=lambda: self.clock[0])
        self.events = [record(self.capture, self.clock, sent) for sent in traffic_day()]
        self.traffic = TrafficService(
            self.capture,
            proxy_url=lambda: "http://127.0.0.1:9",
            context=lambda: ViewContext(PUBLIC_URL, "http://localhost:3000"),
            signer=self.sign,
        )
        self.replays: list[tuple[int, str | None, bool]] = []
        self.signed_on: list[int] = []  # the threads the signer ran on
        self.replayer: Replayer = self.answer_ok

    async def sign(self, claims: Mapping[str, Any]) -> tuple[str, Secret]:
        self.signed_on.append(threading.get_ident())
        if claims.get("iss") == WIKI:
            raise DevloopError(f"no sharedSecret is stored for clientKey {WIKI!r}")
        return JIRA, Secret(SECRET)

    async def run(self, stop: asyncio.Event) -> int:
        await stop.wait()
        return 0

    def reinstall(self, host: str | None = None, *, reason: str = "manual") -> None: ...

    async def uninstall(self, host: str) -> bool:
        return False

    def validate_now(self) -> None: ...

    async def replay(
        self, exchange_id: int, *, edited: str | None = None, unchanged: bool = False
    ) -> ReplayOutcome:
        self.replays.append((exchange_id, edited, unchanged))
        return self.replayer(exchange_id, edited, unchanged)

    def answer_ok(self, exchange_id: int, edited: str | None, unchanged: bool) -> ReplayOutcome:
        original = self.capture.get(exchange_id)
        assert original is not None
        sent = replace(
            traffic_day()[exchange_id - 1],
            status=200,
            reason="OK",
            answer_headers=JSON_TYPE,
            answer=json.dumps({"ok": True, "comment": 10042}).encode(),
            ms=9.8,
            verdict=verified(),
            at=30,
        )
        event = record(self.capture, self.clock, sent)
        replayed = self.capture.get(event.id)
        assert replayed is not None
        replayed.replay_of = exchange_id
        self.bus.emit(replace(event, replay_of=exchange_id))
        signing = "unchanged" if unchanged else "re-signed"
        return ReplayOutcome(original, replayed, signing, f"{signing} for the test")


class TrafficOnly:
    """A daemon with ``traffic`` but no ``replay``: the app replays through ``traffic`` on its
    own loop (the proxy's here)."""

    def __init__(self, traffic: TrafficService) -> None:
        self.traffic = traffic

    async def run(self, stop: asyncio.Event) -> int:
        await stop.wait()
        return 0

    def reinstall(self, host: str | None = None, *, reason: str = "manual") -> None: ...

    async def uninstall(self, host: str) -> bool:
        return False

    def validate_now(self) -> None: ...


def dashboard(daemon: InspectorDaemon | None = None, **options: Any) -> DashboardApp:
    bus = daemon.bus if daemon is not None else EventBus()
    daemon = daemon or InspectorDaemon(bus)
    events = [*startup(), *daemon.events]
    return DashboardApp(CONFIG, daemon=daemon, bus=bus, events=events, **options)


async def stop(app: DashboardApp) -> None:
    """The fake daemon runs until ``stop``, as the real one: end it once the app is gone."""
    app.stop.set()
    if app.daemon_task is not None:
        await asyncio.wait_for(app.daemon_task, 5)


def text_of(renderable: Any, width: int = 108) -> str:
    console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def screen_text(app: DashboardApp) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def card_text(app: DashboardApp) -> str:
    text = text_of(app.screen.query_one(Static).content)
    return "\n".join(line.rstrip() for line in text.splitlines())


async def open_card(app: DashboardApp, pilot: Any, number: int) -> str:
    table = app.query_one(RequestTable)
    table.focus()
    table.move_cursor(row=table.get_row_index(str(number)), animate=False)
    await pilot.press("enter")
    assert isinstance(app.screen, RequestDetail)
    return card_text(app)


async def until(pilot: Any, condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for what the app does on its own time (a flush, a replay), without guessing how
    long it takes on a loaded machine."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.02)


def rows(app: DashboardApp) -> list[str]:
    table = app.query_one(RequestTable)
    return [str(table.get_row_at(index)[2]) for index in range(table.row_count)]


# --- the card ---------------------------------------------------------------------------------


async def test_the_card_shows_json_bodies_pretty_and_the_decoded_token() -> None:
    app = dashboard()
    async with app.run_test(size=SIZE) as pilot:
        card = await open_card(app, pilot, 7)
        assert card.startswith("POST /rest/comment\nstatus 401   took 3.3 ms   at 22:13:33.000")
        assert "JWT  ✖ expired" in card
        # Both bodies pretty-printed, with their types and sizes.
        assert '      "issue": "PROJ-7",\n      "body": "Deployed to staging",' in card
        assert '      "visibility": {\n        "type": "role"\n      }' in card
        assert "Response  401 Unauthorized" in card
        assert '      "error": "token expired",' in card
        # The token decoded: where it was, qsh carried against computed, the canonical request.
        canonical = jwt.canonical_request("POST", "/rest/comment")
        computed = jwt.query_string_hash(canonical)
        assert "carried in    Authorization header" in card
        assert f"qsh carried   {computed}  ✔ match" in card
        assert f"qsh computed  {computed}" in card
        assert f"canonical     {canonical}" in card
        assert "expires       2023-11-14T22:16:25.000Z  expired  lifetime 180 s" in card
        assert '"iss": "6b1c9a0e-2f4d-4c1e-9d3a-8f0b7e6c5d41",' in card
        assert COMMENT_TOKEN not in card
        lines = {" ".join(line.split()) for line in card.splitlines()}
        assert f"Authorization JWT {MASK} ({len(COMMENT_TOKEN)} chars)" in lines
        footer = screen_text(app).splitlines()[-1]
        assert "r Replay (re-signed)" in footer
        assert "e Edit & replay" in footer
        await pilot.press("escape")
        assert not isinstance(app.screen, RequestDetail)
    await stop(app)


async def test_the_card_shows_a_qsh_mismatch_side_by_side() -> None:
    app = dashboard()
    async with app.run_test(size=SIZE) as pilot:
        card = await open_card(app, pilot, 6)
    await stop(app)
    canonical = jwt.canonical_request("GET", "/panel", QUERY)
    carried = jwt.query_string_hash("GET&/app/panel&" + QUERY)
    assert f"qsh carried   {carried}  ✖ mismatch" in card
    assert f"qsh computed  {jwt.query_string_hash(canonical)}" in card
    assert f"canonical     {canonical}" in card
    assert "carried in    ?jwt= query parameter" in card
    assert WRONG_QSH not in card


async def test_form_html_and_binary_bodies_and_secrets_in_them() -> None:
    app = dashboard()
    async with app.run_test(size=SIZE) as pilot:
        form = await open_card(app, pilot, 4)
        await pilot.press("escape")
        html = await open_card(app, pilot, 3)
        await pilot.press("escape")
        pdf = await open_card(app, pilot, 5)
        await pilot.press("escape")
        install = await open_card(app, pilot, 2)
        await pilot.press("escape")
        failed = await open_card(app, pilot, 8)
    await stop(app)
    assert "page = 12345\n    space = ENG\n    api_token = " in form
    assert "title = Release notes" in form
    assert "hunter2" not in form
    assert f"HTML, {len(PAGE)} bytes · title 'Issue glance'" in html
    assert "3 linked builds" not in html
    assert f"binary, {len(PDF):,} bytes (application/pdf)" in pdf
    assert "Body  empty" in install  # the 204's
    assert '"sharedSecret": "' + MASK in install
    assert SECRET not in install
    assert "the add-on did not answer (connection refused)" in failed
    assert "Response  502 Bad Gateway  answered by the proxy, not the add-on" in failed


def test_a_card_says_why_it_has_no_bodies() -> None:
    bus = EventBus()
    daemon = InspectorDaemon(bus, keep=3)  # the first five have left the capture
    first, last = daemon.events[0], daemon.events[-1]
    assert captured_detail(daemon.traffic, last)[0] is not None
    detail, note = captured_detail(daemon.traffic, first)
    assert detail is None
    assert note == (
        "bodies are no longer shown: request #1 has left the capture, which keeps the last 3 "
        "([inspector] keep)"
    )
    assert "did not capture" in captured_detail(daemon.traffic, replace(last, id=0))[1]
    assert "not running" in captured_detail(None, last)[1]
    assert "capture = false" in captured_detail(daemon.traffic, last, capturing=False)[1]


def test_a_credential_echoed_in_a_body_is_masked_on_the_card() -> None:
    """The view masks the token it reads (the Authorization header's); an add-on that echoes
    its URL would show the query's, had the card not masked every credential of the request."""
    bus = EventBus()
    daemon = InspectorDaemon(bus)
    query_token = token("GET", "/echo")
    sent = Sent(
        "GET",
        f"/echo?jwt={query_token}",
        [("Authorization", f"JWT {PAGE_TOKEN}")],
        answer_headers=[("Content-Type", "text/plain")],
        answer=f"you asked for /echo?jwt={query_token}".encode(),
    )
    event = record(daemon.capture, daemon.clock, sent)
    detail, _ = captured_detail(daemon.traffic, event)
    assert detail is not None
    assert detail["response"]["body"]["shown"] == f"you asked for /echo?jwt={MASK}"


# --- the filter -------------------------------------------------------------------------------


def served(**fields: Any) -> RequestServed:
    defaults: dict[str, Any] = {"method": "GET", "path": "/", "status": 200, "duration_ms": 1}
    return RequestServed(**{**defaults, **fields})


@pytest.mark.parametrize(
    ("text", "served_request", "matches"),
    [
        ("status:404", served(status=404), True),
        ("status:404", served(status=401), False),
        ("status:4xx", served(status=401), True),
        ("4xx", served(status=499), True),
        ("40x", served(status=410), False),
        ("502", served(status=502), True),
        ("status:5", served(status=503), True),
        ("method:post", served(method="POST"), True),
        ("method:p", served(method="PUT"), True),
        ("method:post", served(method="GET"), False),
        ("post", served(method="POST"), True),
        ("path:/panel", served(path="/panel?x=1"), True),
        ("path:/Panel", served(path="/admin"), False),
        ("jwt:expired", served(jwt=rejected("expired", "")), True),
        ("jwt:verified", served(jwt=rejected("not verified", "")), False),
        ("verified", served(jwt=rejected("not verified", "")), False),
        ("jwt:verified", served(jwt=verified()), True),
        ("jwt:none", served(), True),
        ("jwt:rejected", served(jwt=rejected("expired", "")), True),
        ('jwt:"qsh mismatch"', served(jwt=rejected("qsh mismatch", "")), True),
        ("tenant:6b1c", served(jwt=verified()), True),
        ("tenant:dev-wiki", served(jwt=verified(WIKI, "dev-wiki")), True),
        ("tenant:6b1c", served(), False),
        ("6B1C9A0E", served(jwt=verified()), True),
        ("panel 4xx", served(path="/panel", status=401), True),
        ("panel 4xx", served(path="/panel", status=200), False),
        ("-path:atlassian-connect", served(path="/atlassian-connect.json"), False),
        ("-status:2xx", served(status=500), True),
        ("status:", served(status=500), True),  # half typed: no filter yet
        ('jwt:"qsh', served(jwt=rejected("qsh mismatch", "")), True),  # an unclosed quote
        ("jwt", served(path="/"), False),  # a free word that is nowhere
        ("path:jwt", served(path="/p?jwt=eyJabc"), True),  # the parameter's name, shown
        ("eyJabc", served(path="/p?jwt=eyJabc"), False),  # never its value, masked
    ],
)
def test_the_filter_syntax(text: str, served_request: RequestServed, matches: bool) -> None:
    assert RequestFilter.parse(text).matches(served_request) is matches


def test_an_empty_filter_is_no_filter() -> None:
    assert not RequestFilter.parse("   ")
    assert not RequestFilter.parse("status:")
    assert RequestFilter.parse(" 4xx ").text == "4xx"


async def test_slash_filters_the_list_live_and_escape_restores_it() -> None:
    app = dashboard()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(RequestTable)
        await pilot.pause()
        assert table.row_count == 8
        await pilot.press("slash")
        bar = app.query_one(FilterBar)
        assert bar.is_open
        assert app.focused is bar
        await pilot.press(*"status:4")
        assert table.row_count == 2  # live: the 401s, while typing
        assert table.border_title is not None
        assert table.border_title.endswith("· filter: status:4 · 2 of 8")
        await pilot.press("escape")
        assert table.row_count == 8
        assert not bar.is_open
        assert app.focused is table
        assert table.border_title == "Requests 8 · 2 JWT rejected · 1 failed (5xx)"
    await stop(app)


@pytest.mark.parametrize(
    ("text", "paths"),
    [
        ("method:post", ["/installed", "/webhook/page-updated", "/rest/comment"]),
        ("path:/panel", ["/panel?jwt=••••••&" + QUERY] * 2),
        ("jwt:expired", ["/rest/comment"]),
        ("tenant:0d9e", ["/webhook/page-updated"]),
        ("502", ["/api/issues"]),
        ("-jwt:none panel", ["/panel?jwt=••••••&" + QUERY] * 2),
    ],
)
async def test_enter_keeps_the_filter(text: str, paths: list[str]) -> None:
    app = dashboard()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(RequestTable)
        await pilot.press("slash", *text, "enter")
        assert [row[:30] for row in rows(app)] == [path[:30] for path in paths]
        assert not app.query_one(FilterBar).is_open
        assert app.focused is table
        assert table.border_title is not None
        assert f"filter: {text} · {len(paths)} of 8" in table.border_title
        # The filter is there to change, and esc on the list clears it too.
        await pilot.press("slash")
        assert app.query_one(FilterBar).value == text
        await pilot.press("enter", "escape")
        assert table.row_count == 8
    await stop(app)


async def test_new_requests_show_while_filtered_only_when_they_match() -> None:
    app = dashboard()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(RequestTable)
        await pilot.press("slash", *"status:404", "enter")
        assert table.row_count == 0
        app.feed(served(path="/missing", status=404, ts=T0 + 40))
        app.feed(served(path="/fine", ts=T0 + 41))
        await until(pilot, lambda: not app.events_pending)
        assert rows(app) == ["/missing"]
        assert table.border_title is not None
        assert table.border_title.endswith("filter: status:404 · 1 of 10")
        # A flood while filtered: the table still keeps only the newest MAX_ROWS requests.
        flood = [served(path=f"/n/{n}", status=404 if n % 2 else 200, ts=T0 + 50)
                 for n in range(MAX_ROWS + 50)]  # fmt: skip
        app.feed(*flood)
        await until(pilot, lambda: not app.events_pending)
        assert table.row_count == MAX_ROWS // 2
        assert table.border_title.endswith(f"· {MAX_ROWS // 2} of {MAX_ROWS}")
        await pilot.press("escape")
        assert table.row_count == MAX_ROWS
    await stop(app)


# --- replays ----------------------------------------------------------------------------------


async def test_p_replays_the_selected_request_and_shows_it_beside_the_original() -> None:
    bus = EventBus()
    daemon = InspectorDaemon(bus)
    app = dashboard(daemon)
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(RequestTable)
        table.move_cursor(row=table.get_row_index("7"), animate=False)
        await pilot.press("p")
        await until(pilot, lambda: isinstance(app.screen, ReplayResult))
        assert daemon.replays == [(7, None, False)]
        assert isinstance(app.screen, ReplayResult)
        result = card_text(app)
        assert "original #7" in result
        assert "replay #9" in result
        lines = {" ".join(line.split()) for line in result.splitlines()}
        assert "status 401 200" in lines
        assert "took 3.3 ms 9.8 ms" in lines
        assert "JWT ✖ expired ✔ verified" in lines
        assert "signing re-signed for the test" in lines
        assert "Body differs:" in lines
        assert '- "error": "token expired",' in lines
        assert '+ "ok": true,' in lines
        await pilot.press("escape")
        # The replay is a request like any other, marked with what it replays.
        await until(pilot, lambda: rows(app)[-1] == "↻ #7 /rest/comment")
    await stop(app)


async def test_r_on_the_card_replays_it_and_e_edits_it_first() -> None:
    bus = EventBus()
    daemon = InspectorDaemon(bus)
    edited: list[str] = []

    def editor(text: str) -> str:
        edited.append(text)
        return text.replace("Deployed to staging", "Deployed to production")

    app = dashboard(daemon, editor=editor)
    async with app.run_test(size=SIZE) as pilot:
        await open_card(app, pilot, 7)
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ReplayResult))
        assert daemon.replays == [(7, None, False)]
        assert isinstance(app.screen, ReplayResult)
        await pilot.press("escape")
        assert isinstance(app.screen, RequestDetail)  # back to the card it came from
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, ReplayResult))
        # The editor had the request with its token as a placeholder, never the token.
        assert edited[0].splitlines()[3] == "POST /rest/comment HTTP/1.1"
        assert f"Authorization: JWT {MASK}[0]" in edited[0]
        assert COMMENT_TOKEN not in edited[0]
        number, text, unchanged = daemon.replays[1]
        assert (number, unchanged) == (7, False)
        assert text is not None
        assert '"body": "Deployed to production"' in text
        assert isinstance(app.screen, ReplayResult)
    await stop(app)


async def test_an_edit_saved_empty_sends_nothing() -> None:
    daemon = InspectorDaemon(EventBus())
    app = dashboard(daemon, editor=lambda text: "# nothing\n")
    async with app.run_test(size=SIZE) as pilot:
        await open_card(app, pilot, 7)
        await pilot.press("e")
        await pilot.pause()
        assert daemon.replays == []
        assert isinstance(app.screen, RequestDetail)
    await stop(app)


async def test_a_request_that_cannot_be_re_signed_can_be_sent_unchanged() -> None:
    bus = EventBus()
    daemon = InspectorDaemon(bus)

    def resign_or_send(exchange_id: int, edited: str | None, unchanged: bool) -> ReplayOutcome:
        if not unchanged:
            raise CannotResignError(
                f"request {exchange_id} cannot be re-signed: no sharedSecret is stored for "
                f"clientKey {WIKI!r}",
                hint=f"`connect-dev replay {exchange_id} --unchanged` sends it with the token "
                "as captured (the add-on rejects it once it has expired).",
            )
        return daemon.answer_ok(exchange_id, edited, unchanged)

    daemon.replayer = resign_or_send
    app = dashboard(daemon)
    async with app.run_test(size=SIZE) as pilot:
        await open_card(app, pilot, 4)
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ReplayFailed))
        assert isinstance(app.screen, ReplayFailed)
        failure = " ".join(card_text(app).split())
        assert f"cannot be re-signed: no sharedSecret is stored for clientKey {WIKI!r}" in failure
        assert "u sends it with the token as captured" in failure
        assert "--unchanged" not in failure  # the command line's way; here it is a key
        assert "u Send unchanged" in screen_text(app).splitlines()[-1]
        await pilot.press("u")
        await until(pilot, lambda: isinstance(app.screen, ReplayResult))
        assert daemon.replays == [(4, None, False), (4, None, True)]
        assert isinstance(app.screen, ReplayResult)
        assert "signing unchanged for the test" in " ".join(card_text(app).split())
    await stop(app)


async def test_the_real_replay_says_why_it_cannot_re_sign() -> None:
    """Through ``TrafficService.replay`` itself (no ``replay`` on the daemon): the tenant of
    request 4 has no stored secret, so only ``u`` is offered; other failures offer nothing."""

    daemon = InspectorDaemon(EventBus())
    app = DashboardApp(
        CONFIG,
        daemon=TrafficOnly(daemon.traffic),
        bus=daemon.bus,
        events=[*startup(), *daemon.events],
    )
    async with app.run_test(size=SIZE) as pilot:
        await open_card(app, pilot, 4)
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ReplayFailed))
        assert isinstance(app.screen, ReplayFailed)
        assert app.screen.unchanged_offered
        text = " ".join(card_text(app).split())
        assert (
            f"request 4 cannot be re-signed: no sharedSecret is stored for clientKey {WIKI!r}"
        ) in text
        await pilot.press("escape", "escape")
        await open_card(app, pilot, 1)  # no JWT: sent as is, to a proxy that is not there
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ReplayFailed))
        assert isinstance(app.screen, ReplayFailed)
        assert not app.screen.unchanged_offered
        assert "cannot reach the proxy" in card_text(app)
        assert "u Send unchanged" not in screen_text(app).splitlines()[-1]
    await stop(app)


async def test_requests_that_were_not_captured_are_not_replayed() -> None:
    daemon = InspectorDaemon(EventBus())
    app = dashboard(daemon)
    async with app.run_test(size=SIZE) as pilot:
        app.feed(served(path="/uncaptured", ts=T0 + 40))
        await until(pilot, lambda: not app.events_pending)
        await pilot.press("p")
        await pilot.pause()
        assert daemon.replays == []
        assert [n.message for n in app._notifications] == [
            "This request was not captured: it cannot be replayed."
        ]
        await pilot.press("enter")
        assert isinstance(app.screen, RequestDetail)
        assert "bodies are not shown: the proxy did not capture this request" in card_text(app)
        assert "Replay" not in screen_text(app).splitlines()[-1]
    await stop(app)


async def test_the_threaded_daemon_replays_on_the_daemons_loop() -> None:
    inner = InspectorDaemon(EventBus())
    daemon = ThreadedDaemon(inner)
    assert daemon.traffic is inner.traffic
    with pytest.raises(ReplayError, match="cannot be sent again"):
        await daemon.replay(4)  # not running yet: no loop to send from
    stop_event = asyncio.Event()
    run = asyncio.create_task(daemon.run(stop_event))
    await asyncio.sleep(0.05)
    # Request 4's tenant has no stored secret: the real replay fails in the signer, which ran
    # on the daemon's thread, and the error reaches this loop as it was raised.
    with pytest.raises(ReplayError, match="request 4 cannot be re-signed"):
        await daemon.replay(4)
    assert inner.signed_on
    assert threading.get_ident() not in inner.signed_on
    stop_event.set()
    assert await asyncio.wait_for(run, 5) == 0


async def test_a_replay_through_a_real_proxy_lands_in_the_list() -> None:
    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path, "n": len(await request.read())})

    addon = web.Application()
    addon.router.add_route("*", "/{tail:.*}", echo)
    bus = EventBus()
    async with serve(addon) as addon_url:
        capture = Capture()
        proxy = Proxy(addon_url, bus.emit, capture=capture)
        await proxy.start()
        try:
            traffic = TrafficService(
                capture,
                proxy_url=lambda: proxy.url,
                context=lambda: ViewContext(PUBLIC_URL, addon_url),
                signer=InspectorDaemon(bus).sign,
            )
            app = DashboardApp(CONFIG, daemon=TrafficOnly(traffic), bus=bus, events=startup())
            async with app.run_test(size=SIZE) as pilot, aiohttp.ClientSession() as session:
                async with session.post(f"{proxy.url}/hello", json={"a": 1}) as response:
                    assert response.status == 200
                table = app.query_one(RequestTable)
                await until(pilot, lambda: table.row_count == 1)
                card = await open_card(app, pilot, 1)
                assert '"path": "/hello",' in card
                assert '"a": 1' in card
                await pilot.press("r")
                await until(pilot, lambda: isinstance(app.screen, ReplayResult))
                result = " ".join(card_text(app).split())
                assert "original #1 replay #2" in result
                assert "the request carried no Connect JWT: sent as captured" in result
                assert "Body the same" in result
                await pilot.press("escape", "escape")
                await until(pilot, lambda: table.row_count == 2)
                assert rows(app) == ["/hello", "↻ #1 /hello"]
            await stop(app)
        finally:
            await proxy.close()


async def test_without_a_terminal_to_hand_over_the_edit_says_so() -> None:
    daemon = InspectorDaemon(EventBus())
    app = dashboard(daemon)  # the real editor: a headless app cannot suspend for it
    async with app.run_test(size=SIZE) as pilot:
        await open_card(app, pilot, 7)
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, ReplayFailed))
        text = " ".join(card_text(app).split())
        assert "this terminal cannot be handed over to an editor" in text
        assert "connect-dev replay ID --edit" in text
        assert daemon.replays == []
    await stop(app)


# --- snapshots --------------------------------------------------------------------------------


def test_snapshot_the_request_card_with_bodies_and_the_token(snap_compare: SnapCompare) -> None:
    async def open_the_comment(pilot: Any) -> None:
        table = pilot.app.query_one(RequestTable)
        table.move_cursor(row=table.get_row_index("7"), animate=False)

    app = dashboard()
    assert snap_compare(app, press=["enter"], run_before=open_the_comment, terminal_size=(120, 60))


def test_snapshot_the_filtered_list(snap_compare: SnapCompare) -> None:
    app = dashboard()
    assert snap_compare(app, press=["slash", *"4xx", "enter"], terminal_size=SIZE)


def test_snapshot_a_replay_beside_its_original(snap_compare: SnapCompare) -> None:
    async def replay_the_comment(pilot: Any) -> None:
        app = pilot.app
        table = app.query_one(RequestTable)
        table.move_cursor(row=table.get_row_index("7"), animate=False)
        app.notify = lambda *args, **kwargs: None  # "Replaying request #7…" lasts 3 s
        await pilot.press("p")
        await until(pilot, lambda: isinstance(app.screen, ReplayResult))
        table = app.query_one(RequestTable)
        await until(pilot, lambda: table.row_count == 9)  # the replay, in the list behind

    app = dashboard()
    assert snap_compare(app, run_before=replay_the_comment, terminal_size=SIZE)
