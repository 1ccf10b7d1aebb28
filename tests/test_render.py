"""render/: the plain text log and the JSON-lines log of the event stream."""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from connect_devloop.events import (
    AddonExited,
    AddonOutput,
    AddonRestarting,
    AddonStarted,
    AddonStatus,
    ConfigChanged,
    ConfigInvalid,
    ConfigReloaded,
    Deregistered,
    DeregistrationFailed,
    DescriptorInvalid,
    DescriptorLoaded,
    Error,
    Event,
    ForgeStep,
    HostAnswering,
    Kept,
    Lifecycle,
    Ready,
    Registered,
    Registering,
    RegistrationFailed,
    RequestServed,
    RestCall,
    Stopped,
    TunnelClosed,
    TunnelOpened,
    Warning,
)
from connect_devloop.render import JsonLinesRenderer, TextRenderer, format_event

TS = 1_700_000_000.25  # 2023-11-14 22:13:20.250 UTC; .25 is exact in binary
CLOCK = "22:13:20.250"
HINT_INDENT = " " * 13  # under the text after "HH:MM:SS.mmm "
REFUSED_CALL = RestCall(
    ts=TS,
    host="demo-jira",
    method="GET",
    path="/jira/rest/api/2/issue/DEMO-1",
    status=401,
    accepted=False,
    reason="qsh mismatch",
    qsh_expected="e3b0",
    qsh_received="9f86",
    canonical_request="GET&/rest/api/2/issue/DEMO-1&",
    app_canonical_request="GET&/jira/rest/api/2/issue/DEMO-1&",
    explanation="The app's qsh includes the context path.",
    app_key="my-addon",
    auth="jwt",
)
PROBLEMS = [
    {
        "path": "$.key",
        "message": "required field is missing",
        "line": 1,
        "column": 1,
        "severity": "error",
    },
    {
        "path": "$.scopes[1]",
        "message": "'wirte' is not a Connect scope (did you mean 'write'?)",
        "line": 9,
        "column": 22,
        "severity": "error",
    },
]


def event_classes() -> set[type[Event]]:
    """Every event of the public contract (not the ones these tests define)."""
    return {cls for cls in Event.__subclasses__() if cls.__module__ == Event.__module__}


@pytest.fixture
def utc() -> Iterator[None]:
    """Local time is UTC for the test, so clock columns are fixed."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


# --- text: one exact line per event -------------------------------------------------------------

TEXT_LINES: list[tuple[Event, str]] = [
    (
        DescriptorLoaded(ts=TS, key="my-addon", digest="3f2a9c1b7d0e", path="a.json"),
        "descriptor  my-addon valid, digest 3f2a9c1b7d0e",
    ),
    (
        DescriptorInvalid(
            ts=TS, errors=PROBLEMS, path="atlassian-connect.json", kept_digest="3f2a9c1b7d0e"
        ),
        "descriptor  INVALID, revision 3f2a9c1b7d0e stays installed: "
        "atlassian-connect.json:1:1: $.key: required field is missing; "
        "atlassian-connect.json:9:22: $.scopes[1]: 'wirte' is not a Connect scope "
        "(did you mean 'write'?)",
    ),
    (
        DescriptorInvalid(
            ts=TS,
            errors=[{"path": "$", "message": "file is empty", "line": None, "column": None}],
            path="a.json",
        ),
        "descriptor  INVALID, nothing installed until it is valid: a.json: $: file is empty",
    ),
    (
        DescriptorInvalid(ts=TS, errors=[PROBLEMS[1]]),
        "descriptor  INVALID, nothing installed until it is valid: 9:22: $.scopes[1]: "
        "'wirte' is not a Connect scope (did you mean 'write'?)",
    ),
    (
        TunnelOpened(ts=TS, url="https://abc.ngrok.app", provider="ngrok"),
        "tunnel      ngrok: https://abc.ngrok.app",
    ),
    (
        TunnelOpened(
            ts=TS,
            url="https://abc.ngrok.app",
            provider="ngrok",
            inspector_url="http://127.0.0.1:4040",
        ),
        "tunnel      ngrok: https://abc.ngrok.app (ngrok inspector: http://127.0.0.1:4040)",
    ),
    (TunnelClosed(ts=TS, provider="ngrok"), "tunnel      ngrok closed"),
    (Registering(ts=TS, host="dev-jira", reason="startup"), "[dev-jira]  installing (startup)"),
    (
        Registering(ts=TS, host="dev-jira", reason="descriptor_changed"),
        "[dev-jira]  installing (descriptor changed)",
    ),
    (
        Registering(ts=TS, host="dev-jira", reason="tunnel_changed"),
        "[dev-jira]  installing (tunnel changed)",
    ),
    (
        Registered(ts=TS, host="dev-jira", key="my-addon", duration_ms=61),
        "[dev-jira]  installed my-addon in 61 ms",
    ),
    (
        Registered(ts=TS, host="dev-jira", key="my-addon", duration_ms=61, enabled=False),
        "[dev-jira]  installed my-addon in 61 ms but it is DISABLED on the host "
        "(enable it in Manage apps)",
    ),
    (
        Registered(
            ts=TS, host="cloud", key="my-addon", duration_ms=8, registrar="forge", unchanged=True
        ),
        "[cloud]  my-addon is installed already at this revision; nothing to do",
    ),
    (
        RegistrationFailed(ts=TS, host="dev-jira", error="401 Unauthorized"),
        "[dev-jira]  install FAILED: 401 Unauthorized",
    ),
    (
        RegistrationFailed(
            ts=TS, host="dev-jira", error="401 Unauthorized", hint="Check the API token."
        ),
        f"[dev-jira]  install FAILED: 401 Unauthorized\n{HINT_INDENT}hint: Check the API token.",
    ),
    (
        Lifecycle(ts=TS, host="dev-jira", event="installed", client_key="jira:1", verified=True),
        "[dev-jira]  lifecycle installed from jira:1 (verified)",
    ),
    (
        Lifecycle(ts=TS, host="dev-jira", event="uninstalled", client_key="c", verified=False),
        "[dev-jira]  lifecycle uninstalled from c (NOT verified)",
    ),
    (
        RequestServed(ts=TS, method="GET", path="/page?x=1", status=200, duration_ms=3.25),
        "request     GET /page?x=1 -> 200 in 3.2 ms",
    ),
    (
        RequestServed(ts=TS, method="POST", path="/installed", status=500, duration_ms=12),
        "request     POST /installed -> 500 in 12.0 ms",
    ),
    (
        Deregistered(ts=TS, host="dev-jira", key="my-addon"),
        "[dev-jira]  uninstalled my-addon",
    ),
    (
        Deregistered(ts=TS, host="dev-jira", key="my-addon", reason="ledger_cleanup"),
        "[dev-jira]  uninstalled my-addon (ledger cleanup)",
    ),
    (
        DeregistrationFailed(ts=TS, host="dev-jira", error="timed out", key="my-addon"),
        "[dev-jira]  uninstall of my-addon FAILED: timed out",
    ),
    (
        DeregistrationFailed(ts=TS, host="dev-jira", error="timed out", hint="Run down."),
        f"[dev-jira]  uninstall of the add-on FAILED: timed out\n{HINT_INDENT}hint: Run down.",
    ),
    (
        Ready(ts=TS, public_url="https://abc.ngrok.app"),
        "ready       descriptor at https://abc.ngrok.app/atlassian-connect.json; "
        "Ctrl-C: uninstall and quit",
    ),
    (
        Ready(ts=TS, public_url="http://127.0.0.1:8000", installed=1, hosts=3, waiting=["dc"]),
        "ready       descriptor at http://127.0.0.1:8000/atlassian-connect.json; "
        "Ctrl-C: uninstall and quit\n"
        f"{HINT_INDENT}waiting: 1/3 hosts installed; not answering yet: dc",
    ),
    (
        ForgeStep(ts=TS, host="cloud", step="deploy", state="started"),
        "[cloud]  forge deploy started",
    ),
    (
        ForgeStep(ts=TS, host="cloud", step="deploy", state="done", duration_ms=41_234),
        "[cloud]  forge deploy done in 41.2 s",
    ),
    (
        ForgeStep(ts=TS, host="cloud", step="validate", state="done", duration_ms=312),
        "[cloud]  forge validate done in 312 ms",
    ),
    (
        ForgeStep(ts=TS, host="cloud", step="install", state="failed", duration_ms=3_100),
        "[cloud]  forge install FAILED after 3.1 s",
    ),
    (
        Kept(ts=TS, host="cloud", key="my-addon", revision="9c1d2e3f4a5b"),
        "[cloud]  kept my-addon installed (revision 9c1d2e3f4a5b); "
        "`connect-dev down` uninstalls it",
    ),
    (
        Kept(ts=TS, host="cloud", key="my-addon"),
        "[cloud]  left my-addon as it is (its last install did not finish); "
        "`connect-dev down` uninstalls it",
    ),
    (
        HostAnswering(ts=TS, host="dc", answering=False, seconds=5.0),
        "[dc]  not answering after 5 s; still trying in the background",
    ),
    (
        HostAnswering(ts=TS, host="dc", answering=True, seconds=23.4),
        "[dc]  answers again (after 23.4 s)",
    ),
    (
        AddonStarted(
            ts=TS, pid=4242, command="python app.py", base_url="https://x.example", port=3000
        ),
        "addon       started python app.py (pid 4242) with PORT=3000, "
        "CONNECT_DEV_BASE_URL=https://x.example",
    ),
    (
        AddonStatus(ts=TS, answering=True, url="http://localhost:3000/", seconds=0.4),
        "addon       answers at http://localhost:3000/ (0.4 s after its start)",
    ),
    (
        AddonRestarting(ts=TS, reason="files_changed", detail="app.py changed", paths=["app.py"]),
        "addon       restarting: app.py changed",
    ),
    (
        AddonExited(ts=TS, pid=4242, code=None, signal="SIGKILL", restart_in=0.5, ran_seconds=3),
        "addon       CRASHED: killed by SIGKILL after 3.0 s (pid 4242); starting it again in 0.5 s",
    ),
    (AddonOutput(ts=TS, stream="stdout", line="listening"), "addon out   listening"),
    (
        Error(ts=TS, task="descriptor watcher", message="boom", hint="It restarts in 0.5 s."),
        f"error       boom\n{HINT_INDENT}hint: It restarts in 0.5 s.",
    ),
    (Stopped(ts=TS), "stopped"),
    (
        ConfigInvalid(
            ts=TS,
            file="/p/connect-dev.toml",
            line=7,
            key="hosts.passwrd",
            message="unknown key",
            hint="did you mean 'password'?",
        ),
        "config      INVALID, the running config stays: /p/connect-dev.toml:7: hosts.passwrd: "
        f"unknown key\n{HINT_INDENT}hint: did you mean 'password'?",
    ),
    (
        ConfigChanged(ts=TS, applied=["hosts[jira].url"], needs_restart=["proxy.port"]),
        "config      applied hosts[jira].url; RESTART NEEDED for proxy.port",
    ),
    (ConfigChanged(ts=TS), "config      back to the settings up started with"),
    (
        ConfigReloaded(ts=TS, added=["c"], removed=["a"], changed=["b"]),
        "config      reloaded: added c; removed a; changed b",
    ),
    (ConfigReloaded(ts=TS), "config      reloaded: no host changed"),
    (
        REFUSED_CALL,
        "[demo-jira]  REST GET /jira/rest/api/2/issue/DEMO-1 by my-addon: 401 REFUSED "
        f"(qsh mismatch)\n{HINT_INDENT}why: The app's qsh includes the context path."
        f"\n{HINT_INDENT}site hashed: GET&/rest/api/2/issue/DEMO-1&"
        f"\n{HINT_INDENT}qsh expected: e3b0\n{HINT_INDENT}qsh received: 9f86"
        f"\n{HINT_INDENT}app hashed:  GET&/jira/rest/api/2/issue/DEMO-1&",
    ),
    (
        RestCall(
            ts=TS,
            host="demo-jira",
            method="GET",
            path="/jira/rest/api/2/myself",
            status=403,
            accepted=False,
            reason="missing scope",
            explanation="The route needs WRITE; the app declares READ.",
            auth="session",
        ),
        "[demo-jira]  REST GET /jira/rest/api/2/myself: 403 REFUSED (missing scope)"
        f"\n{HINT_INDENT}why: The route needs WRITE; the app declares READ.",
    ),
    (
        RestCall(
            ts=TS,
            host="demo-jira",
            method="GET",
            path="/jira/rest/api/2/issue/DEMO-1",
            status=200,
            accepted=True,
            reason="accepted",
            app_key="my-addon",
        ),
        "[demo-jira]  REST GET /jira/rest/api/2/issue/DEMO-1 by my-addon: 200 accepted",
    ),
    (Warning(ts=TS, message="inline password"), "warning     inline password"),
    (
        Warning(ts=TS, message="inline password", hint="Use password_env."),
        f"warning     inline password\n{HINT_INDENT}hint: Use password_env.",
    ),
]


@pytest.mark.parametrize(("event", "line"), TEXT_LINES)
def test_format_event(event: Event, line: str) -> None:
    assert format_event(event) == line


def test_every_event_kind_has_its_own_text() -> None:
    kinds = {type(event) for event, _ in TEXT_LINES}
    assert kinds == event_classes()
    for event, line in TEXT_LINES:
        assert not line.startswith(f"{event.name}  {{"), event


@pytest.mark.usefixtures("utc")
@pytest.mark.parametrize(("event", "line"), TEXT_LINES)
def test_text_renderer_prefixes_the_clock(event: Event, line: str) -> None:
    stream = io.StringIO()

    TextRenderer(stream)(event)

    assert stream.getvalue() == f"{CLOCK} {line}\n"


@pytest.mark.usefixtures("utc")
def test_hint_lines_up_under_the_message() -> None:
    stream = io.StringIO()
    TextRenderer(stream)(RegistrationFailed(ts=TS, host="h", error="e", hint="Do this."))

    first, second = stream.getvalue().splitlines()
    assert first == f"{CLOCK} [h]  install FAILED: e"
    assert second == f"{HINT_INDENT}hint: Do this."
    assert second.index("hint") == first.index("[h]")


def test_clock_follows_local_time(utc: None) -> None:
    expected = time.strftime("%H:%M:%S", time.localtime(TS)) + ".250"
    assert expected == CLOCK
    stream = io.StringIO()
    TextRenderer(stream)(Stopped(ts=TS))
    assert stream.getvalue() == f"{CLOCK} stopped\n"


@pytest.mark.usefixtures("utc")
@pytest.mark.parametrize(("fraction", "millis"), [(0.0, "000"), (0.5, "500"), (0.75, "750")])
def test_clock_milliseconds(fraction: float, millis: str) -> None:
    stream = io.StringIO()
    TextRenderer(stream)(Stopped(ts=1_700_000_000 + fraction))
    assert stream.getvalue() == f"22:13:20.{millis} stopped\n"


@pytest.mark.usefixtures("utc")
@pytest.mark.parametrize(
    ("ts", "clock"), [(1_700_000_000.123, "22:13:20.123"), (1_700_000_000.001, "22:13:20.001")]
)
def test_clock_milliseconds_agree_with_the_json_log(ts: float, clock: str) -> None:
    stream = io.StringIO()
    TextRenderer(stream)(Stopped(ts=ts))
    assert stream.getvalue() == f"{clock} stopped\n"
    assert f"{Stopped(ts=ts).to_dict()['ts']:.3f}".endswith(clock[-4:])


def test_deregistered_without_key() -> None:
    assert (
        format_event(Deregistered(ts=TS, host="dev-jira")) == "[dev-jira]  uninstalled the add-on"
    )


@pytest.mark.usefixtures("utc")
def test_text_renderer_filter_and_flush() -> None:
    class Stream(io.StringIO):
        flushes = 0

        def flush(self) -> None:
            self.flushes += 1
            super().flush()

    stream = Stream()
    renderer = TextRenderer(stream, show=lambda event: not isinstance(event, RequestServed))

    renderer(RequestServed(ts=TS, method="GET", path="/", status=200, duration_ms=1.0))
    renderer(Stopped(ts=TS))

    assert stream.getvalue() == f"{CLOCK} stopped\n"
    assert stream.flushes == 1


@dataclass(frozen=True, kw_only=True)
class Custom(Event):
    name: ClassVar[str] = "custom"
    value: int


def test_unknown_event_falls_back_to_its_dict() -> None:
    assert format_event(Custom(ts=TS, value=3)) == (
        "custom  {'ts': 1700000000.25, 'event': 'custom', 'value': 3}"
    )


# --- JSON lines ---------------------------------------------------------------------------------

# Per DESIGN.md "Events": the fields each event must carry (more may be added).
JSON_EVENTS: list[tuple[Event, dict[str, Any]]] = [
    (
        ConfigInvalid(ts=TS, file="c.toml", line=3, key="proxy.port", message="bad"),
        {
            "event": "config_invalid",
            "file": "c.toml",
            "message": "bad",
            "line": 3,
            "key": "proxy.port",
            "hint": None,
        },
    ),
    (
        ConfigChanged(ts=TS, applied=[], needs_restart=["tunnel.provider"]),
        {"event": "config_changed", "applied": [], "needs_restart": ["tunnel.provider"]},
    ),
    (
        ConfigReloaded(ts=TS, added=["c"], removed=[], changed=["b"]),
        {"event": "config_reloaded", "added": ["c"], "removed": [], "changed": ["b"]},
    ),
    (
        DescriptorLoaded(ts=TS, key="my-addon", digest="3f2a9c1b7d0e"),
        {"event": "descriptor_loaded", "key": "my-addon", "digest": "3f2a9c1b7d0e"},
    ),
    (
        DescriptorInvalid(ts=TS, errors=PROBLEMS),
        {"event": "descriptor_invalid", "errors": PROBLEMS},
    ),
    (
        TunnelOpened(ts=TS, url="https://abc.ngrok.app", provider="ngrok"),
        {
            "event": "tunnel_opened",
            "url": "https://abc.ngrok.app",
            "provider": "ngrok",
            "inspector_url": "",
        },
    ),
    (
        TunnelOpened(
            ts=TS,
            url="https://abc.ngrok.app",
            provider="ngrok",
            inspector_url="http://127.0.0.1:4040",
        ),
        {"event": "tunnel_opened", "inspector_url": "http://127.0.0.1:4040"},
    ),
    (TunnelClosed(ts=TS), {"event": "tunnel_closed"}),
    (
        Registering(ts=TS, host="dev-jira", reason="descriptor_changed"),
        {"event": "registering", "host": "dev-jira", "reason": "descriptor_changed"},
    ),
    (
        Registered(ts=TS, host="dev-jira", key="my-addon", duration_ms=61),
        {"event": "registered", "host": "dev-jira", "key": "my-addon", "duration_ms": 61},
    ),
    (
        RegistrationFailed(ts=TS, host="dev-jira", error="boom", hint="Do this."),
        {"event": "registration_failed", "host": "dev-jira", "error": "boom", "hint": "Do this."},
    ),
    (
        RegistrationFailed(ts=TS, host="dev-jira", error="boom"),
        {"event": "registration_failed", "host": "dev-jira", "error": "boom", "hint": None},
    ),
    (
        Lifecycle(ts=TS, host="dev-jira", event="installed", client_key="c", verified=True),
        {
            # The lifecycle kind cannot also be "event"; see events.Lifecycle.to_dict.
            "event": "lifecycle",
            "host": "dev-jira",
            "lifecycle_event": "installed",
            "client_key": "c",
            "verified": True,
        },
    ),
    (
        RequestServed(ts=TS, method="GET", path="/p", status=200, duration_ms=1.5),
        {"event": "request", "method": "GET", "path": "/p", "status": 200, "duration_ms": 1.5},
    ),
    (Deregistered(ts=TS, host="dev-jira"), {"event": "deregistered", "host": "dev-jira"}),
    (
        DeregistrationFailed(ts=TS, host="dev-jira", error="timed out"),
        {"event": "deregistration_failed", "host": "dev-jira", "error": "timed out"},
    ),
    (Ready(ts=TS), {"event": "ready"}),
    (
        Ready(ts=TS, installed=0, hosts=2, waiting=["dc"]),
        {"event": "ready", "installed": 0, "hosts": 2, "waiting": ["dc"]},
    ),
    (
        HostAnswering(ts=TS, host="dc", answering=False, seconds=5.0),
        {"event": "host_answering", "host": "dc", "answering": False, "seconds": 5.0},
    ),
    (
        AddonStarted(ts=TS, pid=7, command="node app.js", env=["PORT"]),
        {"event": "addon_started", "pid": 7, "command": "node app.js", "env": ["PORT"]},
    ),
    (
        AddonStatus(ts=TS, answering=False, detail="connection refused"),
        {"event": "addon_status", "answering": False, "detail": "connection refused"},
    ),
    (
        AddonRestarting(ts=TS, reason="tunnel_changed"),
        {"event": "addon_restarting", "reason": "tunnel_changed", "paths": []},
    ),
    (
        AddonExited(ts=TS, pid=7, code=3, last_lines=["boom"]),
        {"event": "addon_exited", "pid": 7, "code": 3, "signal": None, "last_lines": ["boom"]},
    ),
    (
        AddonOutput(ts=TS, stream="stderr", line="… 9 lines dropped", dropped=9),
        {"event": "addon_output", "stream": "stderr", "line": "… 9 lines dropped", "dropped": 9},
    ),
    (
        Registering(ts=TS, host="cloud", reason="startup", registrar="forge"),
        {"event": "registering", "host": "cloud", "reason": "startup", "registrar": "forge"},
    ),
    (
        ForgeStep(ts=TS, host="cloud", step="deploy", state="done", duration_ms=41_234),
        {
            "event": "forge_step",
            "host": "cloud",
            "step": "deploy",
            "state": "done",
            "duration_ms": 41_234,
        },
    ),
    (
        Kept(ts=TS, host="cloud", key="my-addon", revision="9c1d2e3f4a5b"),
        {"event": "kept", "host": "cloud", "key": "my-addon", "revision": "9c1d2e3f4a5b"},
    ),
    (
        Error(ts=TS, message="m", hint="h", task="t"),
        {"event": "error", "message": "m", "hint": "h", "task": "t"},
    ),
    (
        REFUSED_CALL,
        {
            "event": "rest_call",
            "host": "demo-jira",
            "method": "GET",
            "path": "/jira/rest/api/2/issue/DEMO-1",
            "status": 401,
            "accepted": False,
            "reason": "qsh mismatch",
            "qsh_expected": "e3b0",
            "qsh_received": "9f86",
            "canonical_request": "GET&/rest/api/2/issue/DEMO-1&",
            "app_canonical_request": "GET&/jira/rest/api/2/issue/DEMO-1&",
        },
    ),
    (Stopped(ts=TS), {"event": "stopped"}),
    (Warning(ts=TS, message="m"), {"event": "warning", "message": "m"}),
]


@pytest.mark.parametrize(("event", "fields"), JSON_EVENTS)
def test_json_line_fields(event: Event, fields: dict[str, Any]) -> None:
    stream = io.StringIO()

    JsonLinesRenderer(stream)(event)

    text = stream.getvalue()
    assert text.endswith("\n")
    assert text.count("\n") == 1
    data = json.loads(text)
    assert isinstance(data, dict)
    assert list(data)[:2] == ["ts", "event"]
    assert data["ts"] == TS
    assert {key: data.get(key) for key in fields} == fields


def test_json_lines_exact_output() -> None:
    stream = io.StringIO()
    renderer = JsonLinesRenderer(stream)

    renderer(Registered(ts=1_700_000_000.123456, host="dev-jira", key="my-addon", duration_ms=61))
    renderer(TunnelClosed(ts=TS, provider="ngrok", reason="stopped"))

    assert stream.getvalue().splitlines() == [
        '{"ts": 1700000000.123, "event": "registered", "host": "dev-jira", "key": "my-addon", '
        '"duration_ms": 61, "digest": "", "enabled": true, "registrar": "upm", "unchanged": false}',
        '{"ts": 1700000000.25, "event": "tunnel_closed", "provider": "ngrok", "reason": "stopped"}',
    ]


def test_every_event_kind_is_one_json_object_per_line() -> None:
    stream = io.StringIO()
    renderer = JsonLinesRenderer(stream)
    for event, _ in JSON_EVENTS:
        renderer(event)

    lines = stream.getvalue().splitlines()
    assert len(lines) == len(JSON_EVENTS)
    names = [json.loads(line)["event"] for line in lines]
    assert names == [event.name for event, _ in JSON_EVENTS]
    assert {type(event) for event, _ in JSON_EVENTS} == event_classes()


def test_json_lines_keep_unicode_and_newlines_inside_one_line() -> None:
    stream = io.StringIO()
    JsonLinesRenderer(stream)(
        RegistrationFailed(ts=TS, host="Überprüfung ✓", error="line one\nline two")
    )
    text = stream.getvalue()
    assert text.count("\n") == 1
    assert "Überprüfung ✓" in text
    assert json.loads(text)["error"] == "line one\nline two"


def test_json_lines_serialise_unknown_values_as_strings() -> None:
    @dataclass(frozen=True, kw_only=True)
    class Odd(Event):
        name: ClassVar[str] = "odd"
        value: object

    stream = io.StringIO()
    JsonLinesRenderer(stream)(Odd(ts=TS, value=ValueError("x")))
    assert json.loads(stream.getvalue()) == {"ts": TS, "event": "odd", "value": "x"}


def test_unverified_lifecycle_and_jwt_verdicts_say_why() -> None:
    lifecycle = Lifecycle(
        ts=TS, host="h", event="installed", client_key="ck", verified=False, reason="aud is 'x'"
    )
    assert format_event(lifecycle) == (
        "[h]  lifecycle installed from ck (NOT verified)\n             why: aud is 'x'"
    )
    request = RequestServed(
        ts=TS,
        method="GET",
        path="/p?jwt=***",
        status=200,
        duration_ms=1.0,
        jwt={"verified": False, "reason": "qsh mismatch: the token was signed for another request"},
    )
    assert format_event(request) == (
        "request     GET /p?jwt=*** -> 200 in 1.0 ms\n"
        "             jwt NOT verified: qsh mismatch: the token was signed for another request"
    )
    verified = RequestServed(
        ts=TS, method="GET", path="/p", status=200, duration_ms=1.0, jwt={"verified": True}
    )
    assert format_event(verified) == "request     GET /p -> 200 in 1.0 ms"


def test_a_callback_the_add_on_did_not_accept_does_not_read_like_success() -> None:
    from connect_devloop.events import Lifecycle, RequestServed
    from connect_devloop.render import format_event

    refused = Lifecycle(
        host="jira",
        event="installed",
        client_key="ck",
        verified=True,
        addon_status=502,
        addon_error="connection refused",
    )
    assert format_event(refused) == (
        "[jira]  lifecycle installed from ck (verified), NOT accepted: the add-on did not "
        "answer (connection refused); the host got HTTP 502"
    )
    failed = Lifecycle(host="jira", event="installed", client_key="ck", verified=True,
                       addon_status=500)  # fmt: skip
    assert format_event(failed).endswith("(verified), NOT accepted: the add-on answered HTTP 500")
    accepted = Lifecycle(host="jira", event="installed", client_key="ck", verified=True,
                         addon_status=204)  # fmt: skip
    assert format_event(accepted) == "[jira]  lifecycle installed from ck (verified)"
    request = RequestServed(method="POST", path="/installed", status=502, duration_ms=1.0,
                            addon_error="connection refused")  # fmt: skip
    assert format_event(request) == (
        "request     POST /installed -> 502 in 1.0 ms (the add-on did not answer: connection "
        "refused)"
    )


def test_a_captured_request_names_its_id_and_what_it_replays() -> None:
    # The id is what `connect-dev replay ID` takes: the log line must say it.
    first = RequestServed(method="GET", path="/p", status=200, duration_ms=1.0, id=12)
    again = RequestServed(method="GET", path="/p", status=200, duration_ms=1.0, id=14, replay_of=12)
    uncaptured = RequestServed(method="GET", path="/p", status=200, duration_ms=1.0)
    assert format_event(first) == "request     GET /p -> 200 in 1.0 ms  #12"
    assert format_event(again) == "request     GET /p -> 200 in 1.0 ms  #14, replay of #12"
    assert format_event(uncaptured) == "request     GET /p -> 200 in 1.0 ms"
