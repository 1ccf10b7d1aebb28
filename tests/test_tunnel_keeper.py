"""The tunnel keeper against a real proxy: probes, drops, reopening, the pre-install check.

The tunnel here is a hand-written fake whose public URLs are real: the proxy's own address under
two names (127.0.0.1 and localhost) both reach the proxy, so "the URL changed" is real, and a
closed port is a tunnel that does not answer.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from connect_devloop import descriptor
from connect_devloop.config import HostConfig
from connect_devloop.errors import TunnelError
from connect_devloop.events import Event
from connect_devloop.ledger import Ledger
from connect_devloop.proxy import Proxy
from connect_devloop.registrar import HostRegistrar, Target
from connect_devloop.tunnel import StaticTunnel, TunnelKeeper, is_probe_path
from connect_devloop.tunnel.keeper import PROBE_QUERY

from .conftest import EventLog, FakeUpm, descriptor_text, eventually
from .servers import serve, text_app


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@dataclass
class FakeTunnel:
    """Opens at the next URL of ``urls`` (a TunnelError instance fails that open)."""

    urls: list[str | TunnelError]
    provider: str = "ssh"
    opened: int = 0
    closed: int = 0
    exit_reason: str | None = None
    is_open: bool = False
    local_urls: list[str] = field(default_factory=list)

    async def open(self, local_url: str) -> str:
        self.local_urls.append(local_url)
        next_url = self.urls.pop(0)
        if isinstance(next_url, TunnelError):
            raise next_url
        self.opened += 1
        self.is_open = True
        self.exit_reason = None
        return next_url

    async def close(self) -> None:
        self.closed += 1
        self.is_open = False

    def exited(self) -> str | None:
        return self.exit_reason


@dataclass
class Harness:
    proxy: Proxy
    events: EventLog
    published: list[str]
    reopened: list[tuple[str, str]]

    def keeper(
        self, tunnel: object, emit: Callable[[Event], None] | None = None, **options: float
    ) -> TunnelKeeper:
        def publish(url: str) -> None:
            self.published.append(url)
            self.proxy.publish(descriptor.parse(descriptor_text().encode()), url)

        def reopened(old: str, new: str) -> None:
            self.reopened.append((old, new))

        return TunnelKeeper(
            tunnel,  # type: ignore[arg-type]
            emit or self.events,
            publish=publish,
            reopened=reopened,
            **options,
        )


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    async with serve(text_app("add-on page")) as addon_url:
        events = EventLog()
        proxy = Proxy(addon_url, events, port=0)
        await proxy.start()
        try:
            yield Harness(proxy, events, [], [])
        finally:
            await proxy.close()


def other_name(url: str) -> str:
    return url.replace("127.0.0.1", "localhost")


def names(events: EventLog) -> list[str]:
    return [e.name for e in events.events if e.name != "request"]


async def test_open_publishes_before_reporting_and_close_reports_shutdown(
    harness: Harness,
) -> None:
    seen_published: list[list[str]] = []

    def emit(event: Event) -> None:
        seen_published.append(list(harness.published))
        harness.events(event)

    tunnel = FakeTunnel([harness.proxy.url])
    keeper = harness.keeper(tunnel, emit)
    assert await keeper.open("http://127.0.0.1:1") == harness.proxy.url
    assert tunnel.local_urls == ["http://127.0.0.1:1"]
    assert seen_published == [[harness.proxy.url]], "publish must come before tunnel_opened"
    opened = harness.events.of("tunnel_opened")
    assert [(e.url, e.provider) for e in opened] == [(harness.proxy.url, "ssh")]  # type: ignore[attr-defined]
    await keeper.close()
    await keeper.close()
    closed = harness.events.of("tunnel_closed")
    assert [(e.provider, e.reason) for e in closed] == [("ssh", "shutdown")]  # type: ignore[attr-defined]
    assert tunnel.closed == 2


async def test_preflight_passes_when_the_url_serves_this_proxys_descriptor(
    harness: Harness,
) -> None:
    keeper = harness.keeper(FakeTunnel([harness.proxy.url]))
    await keeper.open(harness.proxy.url)
    await keeper.preflight(harness.proxy.url)
    await keeper.close()


async def test_preflight_failure_names_the_tunnel_and_the_request(harness: Harness) -> None:
    dead = closed_port_url()
    keeper = harness.keeper(FakeTunnel([dead], provider="ngrok"))
    await keeper.open(harness.proxy.url)
    with pytest.raises(TunnelError) as caught:
        await keeper.preflight(dead)
    assert caught.value.message == (
        f"the tunnel (ngrok) does not reach the proxy: GET {dead}/atlassian-connect.json: "
        "connection refused"
    )
    assert caught.value.hint is not None
    assert "ngrok" in caught.value.hint
    await keeper.close()


async def test_preflight_rejects_a_descriptor_with_another_base_url(harness: Harness) -> None:
    # Something answers at the URL, but it serves another baseUrl: not our proxy's URL.
    keeper = harness.keeper(FakeTunnel([harness.proxy.url]))
    await keeper.open(harness.proxy.url)
    elsewhere = other_name(harness.proxy.url)
    with pytest.raises(TunnelError) as caught:
        await keeper.preflight(elsewhere)
    assert caught.value.message == (
        f"the tunnel (ssh) does not reach the proxy: GET {elsewhere}/atlassian-connect.json "
        f"answered a descriptor with baseUrl {harness.proxy.url!r}, not {elsewhere!r}: another "
        "server answers at this URL"
    )
    await keeper.close()


async def test_preflight_for_provider_none_checks_the_proxys_own_url(harness: Harness) -> None:
    keeper = harness.keeper(StaticTunnel())
    await keeper.open(harness.proxy.url)
    await keeper.preflight(harness.proxy.url)
    dead = closed_port_url()
    with pytest.raises(TunnelError) as caught:
        await keeper.preflight(dead)
    assert caught.value.message.startswith(
        f"the proxy at {harness.proxy.url} does not reach the proxy: GET {dead}/"
    )
    await keeper.close()


async def test_preflight_for_a_public_url_you_run_says_so(harness: Harness) -> None:
    dead = closed_port_url()
    keeper = harness.keeper(StaticTunnel(dead))
    await keeper.open(harness.proxy.url)
    with pytest.raises(TunnelError) as caught:
        await keeper.preflight(dead)
    assert caught.value.message.startswith(
        f"the public URL {dead} ([tunnel] public_url) does not reach the proxy: "
    )
    assert caught.value.hint is not None
    assert caught.value.hint.startswith("Check [tunnel] public_url")
    await keeper.close()


async def test_an_html_page_instead_of_the_descriptor_is_a_failure(harness: Harness) -> None:
    # What a free ngrok URL shows a browser: its warning page, not our JSON.
    async def interstitial(request: web.Request) -> web.Response:
        return web.Response(text="<!DOCTYPE html><html>ngrok</html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", interstitial)
    async with serve(app) as url:
        keeper = harness.keeper(FakeTunnel([url], provider="ngrok"))
        await keeper.open(harness.proxy.url)
        with pytest.raises(TunnelError) as caught:
            await keeper.preflight(url)
        assert caught.value.message.endswith(
            f"GET {url}/atlassian-connect.json answered an HTML page, not the descriptor"
        )
        await keeper.close()


async def test_concurrent_preflights_share_one_request(harness: Harness) -> None:
    keeper = harness.keeper(FakeTunnel([harness.proxy.url]))
    await keeper.open(harness.proxy.url)
    harness.events.events.clear()
    await asyncio.gather(*(keeper.preflight(harness.proxy.url) for _ in range(20)))
    await keeper.close()
    assert len([e for e in harness.events.events if e.name == "request"]) == 1


async def test_probes_are_marked_so_the_request_log_can_leave_them_out(harness: Harness) -> None:
    keeper = harness.keeper(FakeTunnel([harness.proxy.url]))
    await keeper.open(harness.proxy.url)
    harness.events.events.clear()
    await keeper.preflight(harness.proxy.url)
    await keeper.close()
    [request] = harness.events.of("request")
    assert request.path.startswith(f"/atlassian-connect.json?{PROBE_QUERY}=")  # type: ignore[attr-defined]
    assert is_probe_path(request.path)  # type: ignore[attr-defined]
    assert not is_probe_path("/atlassian-connect.json")
    assert not is_probe_path("/atlassian-connect.json?x=1")


async def test_a_process_that_exits_is_reopened_and_a_new_url_reported(harness: Harness) -> None:
    first, second = harness.proxy.url, other_name(harness.proxy.url)
    tunnel = FakeTunnel([first, second])
    keeper = harness.keeper(tunnel, interval=60)
    await keeper.open(harness.proxy.url)
    keeper.start()
    tunnel.exit_reason = "ssh was killed (signal 9)"
    await harness.events.wait_event("tunnel_opened", count=2, timeout=5)
    assert harness.reopened == [(first, second)]
    assert harness.published == [first, second]
    assert keeper.url == second
    closed = harness.events.of("tunnel_closed")
    assert [(e.provider, e.reason) for e in closed] == [("ssh", "exited")]  # type: ignore[attr-defined]
    [warning] = harness.events.of("warning")
    assert warning.message == "the tunnel (ssh) dropped: ssh was killed (signal 9); reopening it"  # type: ignore[attr-defined]
    assert names(harness.events) == ["tunnel_opened", "tunnel_closed", "warning", "tunnel_opened"]
    assert tunnel.closed == 1, "the dead tunnel is closed (reaped) before the reopen"
    await keeper.preflight(second)
    await keeper.close()


class RelayTunnel:
    """A real byte relay on a fixed loopback port in front of the proxy: like a reserved
    domain, it keeps its URL when reopened. ``break_it()`` stops answering while the
    "process" still runs."""

    provider = "ngrok"

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self._server: asyncio.AbstractServer | None = None
        self.opened = 0

    async def open(self, local_url: str) -> str:
        async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target_port)

            async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
                while data := await src.read(65536):
                    dst.write(data)
                dst.close()

            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

        self._server = await asyncio.start_server(relay, "127.0.0.1", self.port)
        self.opened += 1
        return f"http://127.0.0.1:{self.port}"

    def break_it(self) -> None:
        assert self._server is not None
        self._server.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def exited(self) -> str | None:
        return None


async def test_a_tunnel_that_stops_answering_is_reopened_after_a_second_failed_probe(
    harness: Harness,
) -> None:
    tunnel = RelayTunnel(harness.proxy.port)
    keeper = harness.keeper(tunnel, interval=0.1, timeout=1)
    url = await keeper.open(harness.proxy.url)
    keeper.start()
    # A few healthy probes, through the relay.
    await harness.events.wait_for(
        lambda log: sum(is_probe_path(e.path) for e in log.of("request")) >= 2  # type: ignore[attr-defined]
    )
    assert harness.events.of("tunnel_closed") == []
    tunnel.break_it()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await harness.events.wait_event("tunnel_closed", timeout=5)
    assert loop.time() - started >= 0.9, "one failed probe is retried a second later"
    await harness.events.wait_event("tunnel_opened", count=2, timeout=5)
    [closed] = harness.events.of("tunnel_closed")
    assert closed.reason == "unreachable"  # type: ignore[attr-defined]
    [warning] = harness.events.of("warning")
    assert warning.message == (  # type: ignore[attr-defined]
        f"the tunnel (ngrok) dropped: GET {url}/atlassian-connect.json: connection refused; "
        "reopening it"
    )
    # Same URL again (a reserved domain): reported as such, so the hosts need no re-install.
    assert harness.reopened == [(url, url)]
    assert tunnel.opened == 2
    await keeper.preflight(url)
    await keeper.close()


async def test_reopen_backs_off_and_warns_on_each_failure(harness: Harness) -> None:
    second = other_name(harness.proxy.url)
    tunnel = FakeTunnel(
        [
            harness.proxy.url,
            TunnelError("ssh to me@vps exited with code 255", hint="h1"),
            TunnelError("ssh to me@vps exited with code 255", hint="h2"),
            second,
        ]
    )
    keeper = harness.keeper(tunnel, interval=60)
    await keeper.open(harness.proxy.url)
    keeper.start()
    loop = asyncio.get_running_loop()
    started = loop.time()
    tunnel.exit_reason = "gone"
    await harness.events.wait_event("tunnel_opened", count=2, timeout=10)
    elapsed = loop.time() - started
    assert 2.9 <= elapsed < 6, f"1 s then 2 s of backoff, took {elapsed:.1f} s"
    warnings = [(e.message, e.hint) for e in harness.events.of("warning")]  # type: ignore[attr-defined]
    assert warnings == [
        ("the tunnel (ssh) dropped: gone; reopening it", None),
        (
            "the tunnel (ssh) could not be reopened: ssh to me@vps exited with code 255; "
            "next try in 1 s",
            "h1",
        ),
        (
            "the tunnel (ssh) could not be reopened: ssh to me@vps exited with code 255; "
            "next try in 2 s",
            "h2",
        ),
    ]
    assert harness.reopened == [(harness.proxy.url, second)]
    await keeper.close()


async def test_stop_during_a_reopen_leaves_nothing_open(harness: Harness) -> None:
    tunnel = FakeTunnel([harness.proxy.url, TunnelError("down"), TunnelError("down")])
    keeper = harness.keeper(tunnel, interval=60, backoff_max=60)
    await keeper.open(harness.proxy.url)
    keeper.start()
    tunnel.exit_reason = "gone"
    await harness.events.wait_for(lambda log: len(log.of("warning")) >= 2, timeout=5)
    await keeper.close()
    assert not tunnel.is_open
    # Closed by the drop: no second tunnel_closed at shutdown.
    assert [e.reason for e in harness.events.of("tunnel_closed")] == ["exited"]  # type: ignore[attr-defined]


async def test_a_failed_preflight_probes_at_once_and_retries_the_hosts_when_it_answers(
    harness: Harness,
) -> None:
    tunnel = FakeTunnel([harness.proxy.url])
    keeper = harness.keeper(tunnel, interval=60)
    await keeper.open(harness.proxy.url)
    keeper.start()
    await asyncio.sleep(0.05)
    dead = closed_port_url()
    with pytest.raises(TunnelError) as caught:
        await keeper.preflight(dead)
    assert caught.value.hint is not None
    assert caught.value.hint.endswith(
        "it is checked every 60 s and reopened when it drops, and hosts that could not install "
        "are installed again once it answers"
    )
    # The keeper probes its own URL right away (not in 60 s); it answers: the hosts are retried.
    await eventually(lambda: harness.reopened)
    assert harness.reopened == [(harness.proxy.url, harness.proxy.url)]
    assert harness.events.of("tunnel_closed") == []
    await keeper.close()


async def test_provider_none_is_not_watched(harness: Harness) -> None:
    keeper = harness.keeper(StaticTunnel(), interval=0.05)
    await keeper.open(harness.proxy.url)
    keeper.start()
    await asyncio.sleep(0.2)
    assert harness.events.of("request") == []
    await keeper.close()


async def test_interval_zero_turns_probes_off_but_a_dead_process_is_still_noticed(
    harness: Harness,
) -> None:
    tunnel = FakeTunnel([harness.proxy.url, harness.proxy.url])
    keeper = harness.keeper(tunnel, interval=0)
    await keeper.open(harness.proxy.url)
    keeper.start()
    await asyncio.sleep(0.3)
    assert harness.events.of("request") == []
    tunnel.exit_reason = "agent exited"
    await harness.events.wait_event("tunnel_opened", count=2, timeout=5)
    await keeper.close()


async def test_a_proxy_without_a_valid_descriptor_still_counts_as_reachable(
    harness: Harness,
) -> None:
    tunnel = FakeTunnel([harness.proxy.url])
    keeper = TunnelKeeper(
        tunnel,
        harness.events,
        publish=lambda url: harness.proxy.publish(None, url),
        reopened=lambda old, new: None,
        interval=0.05,
    )
    await keeper.open(harness.proxy.url)
    keeper.start()
    await harness.events.wait_event("request", count=3)
    assert harness.events.of("tunnel_closed") == []
    statuses = {e.status for e in harness.events.of("request")}  # type: ignore[attr-defined]
    assert statuses == {503}
    await keeper.close()


# --- the registrar's pre-install hook -------------------------------------------------------


async def test_a_failed_preflight_fails_the_install_without_calling_the_host(
    tmp_path: Path, fake_upm: FakeUpm, events: EventLog
) -> None:
    host = HostConfig(name="h1", url="http://127.0.0.1:1/jira", product="jira", username="admin")
    ledger = Ledger(tmp_path / ".connect-dev" / "ledger.json")
    checked: list[str] = []
    broken = True

    async def preflight(target: Target) -> None:
        checked.append(target.public_url)
        if broken:
            raise TunnelError("the tunnel (ngrok) does not reach the proxy: boom", hint="h")

    registrar = HostRegistrar(host, fake_upm, ledger, events, settle=0, preflight=preflight)  # type: ignore[arg-type]
    registrar.start()
    wanted = Target(key="test-addon", digest="d1", public_url="https://a.example")
    registrar.request(wanted, "startup")
    await asyncio.wait_for(registrar.wait_idle(), 5)
    assert [e.name for e in events.events] == ["registering", "registration_failed"]
    [failed] = events.of("registration_failed")
    assert (failed.host, failed.error, failed.hint) == (  # type: ignore[attr-defined]
        "h1",
        "the tunnel (ngrok) does not reach the proxy: boom",
        "h",
    )
    assert fake_upm.installs == []
    assert ledger.entries() == []
    # Asked again for the same target (the tunnel answers again): it is installed now.
    broken = False
    registrar.request(wanted, "tunnel_recovered")
    await asyncio.wait_for(registrar.wait_idle(), 5)
    assert fake_upm.installs == ["https://a.example/atlassian-connect.json"]
    assert checked == ["https://a.example", "https://a.example"]
    await registrar.close(5)
