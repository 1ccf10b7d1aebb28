"""traffic/control.py and traffic/client.py: the control socket of a running ``up``.

A real ``ControlServer`` on a Unix socket in the test's directory serves a ``TrafficService``
over a real ``Proxy`` with a ``Capture`` in front of an aiohttp add-on; the real
``ControlClient`` (and plain aiohttp over the same socket, to see statuses) asks it. The file
is 0600, a socket left by a crashed run is replaced, a path too long for a socket address works,
a peer of another uid is refused, and a client with no daemon to ask says why in words; so does
`connect-dev requests` as a subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from connect_devloop import jwt
from connect_devloop.errors import DevloopError
from connect_devloop.proxy import Proxy
from connect_devloop.proxy.capture import Capture
from connect_devloop.redact import MASK
from connect_devloop.secret import Secret
from connect_devloop.traffic.client import ControlClient, NoDaemonError
from connect_devloop.traffic.control import SOCKET_NAME, ControlServer
from connect_devloop.traffic.service import TrafficService
from connect_devloop.traffic.view import ViewContext

from .conftest import EventLog
from .keyrings import REPO_ROOT
from .servers import serve

SHARED_SECRET = "PLANTED-control-shared-secret-42"
PUBLIC_URL = "https://tunnel.example"
STEP = 10.0


def state_dir_in(base: Path) -> Path:
    state = base / ".connect-dev"
    state.mkdir(mode=0o700, parents=True)
    return state


async def signer(claims: Mapping[str, Any]) -> tuple[str, Secret]:
    if claims.get("iss") != "tenant-1":
        raise DevloopError(f"no sharedSecret is stored for clientKey {claims.get('iss')!r}")
    return "tenant-1", Secret(SHARED_SECRET)


@dataclass
class Daemon:
    """What a running ``up`` has for the control socket: the proxy, its capture, the server."""

    proxy: Proxy
    capture: Capture
    service: TrafficService
    state: Path

    async def send(self, target: str, *headers: str, body: bytes = b"") -> int:
        """A request through the proxy; its id once captured."""
        before = self.capture.last_id
        host, port = self.proxy.url.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        lines = [f"POST {target} HTTP/1.1", "Host: proxy.test", *headers]
        lines += [f"Content-Length: {len(body)}", "Connection: close"]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        async with asyncio.timeout(STEP):
            while await reader.read(65536):
                pass
            while self.capture.last_id == before:  # noqa: ASYNC110 - no event to await
                await asyncio.sleep(0.01)
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
        return self.capture.last_id


@contextlib.asynccontextmanager
async def daemon(state: Path, events: EventLog, **capture_options: Any) -> AsyncIterator[Daemon]:
    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"got": (await request.read()).decode()})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    capture = Capture(**capture_options)
    async with serve(app) as url:
        proxy = Proxy(url, events, port=0, capture=capture)
        await proxy.start()
        service = TrafficService(
            capture,
            proxy_url=lambda: proxy.url,
            context=lambda: ViewContext(PUBLIC_URL, url),
            signer=signer,
            inspector_url=lambda: "http://127.0.0.1:4040",
        )
        try:
            yield Daemon(proxy, capture, service, state)
        finally:
            await proxy.close()


@contextlib.asynccontextmanager
async def control(daemon: Daemon, **options: Any) -> AsyncIterator[ControlServer]:
    server = ControlServer(daemon.state, daemon.service, **options)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@contextlib.asynccontextmanager
async def raw_session(path: Path) -> AsyncIterator[aiohttp.ClientSession]:
    """Plain aiohttp over the socket (short paths only): to see statuses as they are."""
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(path))) as session:
        yield session


async def status_and_json(
    session: aiohttp.ClientSession, method: str, path: str, **options: Any
) -> tuple[int, Any]:
    async with session.request(method, f"http://connect-dev{path}", **options) as response:
        return response.status, await response.json(content_type=None)


@pytest.fixture
async def running(tmp_path: Path, events: EventLog) -> AsyncIterator[Daemon]:
    async with daemon(state_dir_in(tmp_path), events) as made:
        yield made


# --- what it answers ----------------------------------------------------------------------


async def test_list_detail_edit_and_har(running: Daemon) -> None:
    token = jwt.encode_hs256(jwt.make_claims("tenant-1", "POST", "/one"), SHARED_SECRET)
    first = await running.send("/one", f"Authorization: JWT {token}", body=b'{"a": 1}')
    second = await running.send("/two?api_token=PLANTED-query-secret", body=b"x")
    async with control(running) as server, ControlClient(running.state) as client:
        path = running.state / SOCKET_NAME
        assert server.path == path
        listing = await client.get("/requests")
        assert listing["inspector_url"] == "http://127.0.0.1:4040"
        assert listing["public_url"] == PUBLIC_URL
        assert [(r["id"], r["method"], r["path"]) for r in listing["requests"]] == [
            (first, "POST", "/one"),
            (second, "POST", f"/two?api_token={MASK}"),
        ]
        after = await client.get("/requests", after=str(first))
        assert [r["id"] for r in after["requests"]] == [second]

        shown = await client.get(f"/requests/{first}")
        assert shown["id"] == first
        assert json.loads(shown["request"]["body"]["shown"]) == {"a": 1}
        assert shown["jwt_detail"]["qsh_match"] == "match"
        assert token not in json.dumps(shown)
        everything = await client.get(f"/requests/{first}", secrets="1")
        assert everything["jwt_detail"]["token"] == token

        edit = await client.get(f"/requests/{first}/edit")
        assert token not in edit["text"]
        assert f"Authorization: JWT {MASK}[0]" in edit["text"]

        har = await client.get("/har")
        assert har["log"]["version"] == "1.2"
        assert [e["_id"] for e in har["log"]["entries"]] == [first, second]
        assert "PLANTED" not in json.dumps(har, ensure_ascii=False)
        assert "PLANTED-query-secret" in json.dumps(await client.get("/har", secrets="1"))
    assert not path.exists()  # removed when the server closes


async def test_follow_sends_each_new_exchange_and_ends_when_the_server_closes(
    running: Daemon,
) -> None:
    first = await running.send("/before")
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def follow(client: ControlClient) -> list[int]:
        ids = []
        async for item in client.lines("/requests", follow="1", after="0"):
            ids.append(item["id"])
            received.put_nowait(item)
        return ids

    server = ControlServer(running.state, running.service)
    await server.start()
    try:
        async with ControlClient(running.state) as client:
            task = asyncio.create_task(follow(client))
            async with asyncio.timeout(STEP):
                assert (await received.get())["path"] == "/before"
                second = await running.send("/while-following?x=1")
                item = await received.get()
                assert (item["id"], item["path"], item["status"]) == (
                    second,
                    "/while-following?x=1",
                    200,
                )
                third = await running.send("/and-another")
                assert (await received.get())["id"] == third
            started = time.monotonic()
            await server.close()
            ids = await asyncio.wait_for(task, STEP)
            assert time.monotonic() - started < 5
    finally:
        await server.close()
    assert ids == [first, second, third]


async def test_replays_and_their_errors(running: Daemon) -> None:
    fresh = jwt.encode_hs256(jwt.make_claims("tenant-1", "POST", "/r"), SHARED_SECRET)
    signed = await running.send("/r", f"Authorization: JWT {fresh}", body=b"again")
    stranger = jwt.encode_hs256(jwt.make_claims("stranger", "POST", "/s"), "x" * 32)
    unknown_tenant = await running.send("/s", f"Authorization: JWT {stranger}")
    path = running.state / SOCKET_NAME
    async with control(running), ControlClient(running.state) as client, raw_session(path) as raw:
        outcome = await client.post(f"/requests/{signed}/replay", {"edited": None})
        assert outcome["signing"] == "re-signed"
        assert outcome["original"]["id"] == signed
        assert outcome["replay"]["replay_of"] == signed
        assert outcome["replay"]["status"] == 200
        assert outcome["body_diff"] == ""
        edit = (await client.get(f"/requests/{signed}/edit"))["text"]
        edited = await client.post(
            f"/requests/{signed}/replay", {"edited": edit.replace("again", "edited")}
        )
        assert '"got": "edited"' in edited["body_diff"]

        status, body = await status_and_json(raw, "POST", "/requests/99/replay", json={})
        assert status == 404
        assert body["error"].startswith("request 99 is not in the capture")
        assert body["hint"] == "`connect-dev requests` lists the ids it keeps."
        for route in ("/requests/99", "/requests/99/edit"):
            status, body = await status_and_json(raw, "GET", route)
            assert status == 404, route
            assert body["error"].startswith("request 99 is not in the capture")

        status, body = await status_and_json(
            raw, "POST", f"/requests/{unknown_tenant}/replay", json={}
        )
        assert status == 409
        assert body["error"] == (
            f"request {unknown_tenant} cannot be re-signed: "
            "no sharedSecret is stored for clientKey 'stranger'"
        )
        assert f"connect-dev replay {unknown_tenant} --unchanged" in body["hint"]
        with pytest.raises(DevloopError) as info:
            await client.post(f"/requests/{unknown_tenant}/replay", {})
        assert info.value.message == body["error"]
        assert info.value.hint == body["hint"]
        unchanged = await client.post(f"/requests/{unknown_tenant}/replay", {"unchanged": True})
        assert unchanged["signing"] == "unchanged"

        status, body = await status_and_json(raw, "POST", f"/requests/{signed}/replay", data=b"{")
        assert (status, body["error"]) == (400, "the replay request is not JSON")
        status, body = await status_and_json(raw, "GET", "/requests/abc")
        assert (status, body["error"]) == (400, "'abc' is not a request id")


async def test_a_body_the_capture_cut_short_is_a_409_naming_max_body(
    tmp_path: Path, events: EventLog
) -> None:
    async with daemon(state_dir_in(tmp_path), events, body_limit=10) as made:
        cut = await made.send("/big", body=b"y" * 100)
        async with control(made), raw_session(made.state / SOCKET_NAME) as raw:
            status, body = await status_and_json(raw, "POST", f"/requests/{cut}/replay", json={})
    assert status == 409
    assert "[inspector] max_body" in body["hint"]


# --- the socket file ----------------------------------------------------------------------


async def test_the_socket_is_0600(running: Daemon) -> None:
    async with control(running) as server:
        info = server.path.stat()
        assert stat.S_ISSOCK(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == 0o600


async def test_a_socket_left_by_a_crashed_run_is_replaced(running: Daemon) -> None:
    path = running.state / SOCKET_NAME
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(str(path))
    leftover.close()  # the file stays; nobody listens
    assert stat.S_ISSOCK(path.stat().st_mode)
    async with ControlClient(running.state) as client:
        with pytest.raises(NoDaemonError) as info:
            await client.get("/requests")
    assert info.value.message == (
        f"no `connect-dev up` answers on {path}: it is left from a run that ended"
    )
    assert info.value.hint == "Start `connect-dev up` in this project (it replaces the socket)."

    await running.send("/after-restart")
    async with control(running), ControlClient(running.state) as client:
        listing = await client.get("/requests")
        assert [r["path"] for r in listing["requests"]] == ["/after-restart"]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_a_path_too_long_for_a_socket_address_works(tmp_path: Path, events: EventLog) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    state = state_dir_in(deep)
    path = state / SOCKET_NAME
    assert len(str(path).encode()) > 108  # not even sockaddr_un could hold it
    async with ControlClient(state) as client:
        with pytest.raises(NoDaemonError) as info:
            await client.get("/requests")
    assert info.value.message.startswith("no `connect-dev up` is running in ")
    async with daemon(state, events) as made:
        await made.send("/deep")
        async with control(made) as server, ControlClient(state) as client:
            assert server.path == path
            assert stat.S_ISSOCK(path.stat().st_mode)
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            listing = await client.get("/requests")
            assert [r["path"] for r in listing["requests"]] == ["/deep"]
        assert not path.exists()
        # Left behind at a long path, it is told apart from no socket at all.
        leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        directory = os.open(state, os.O_RDONLY | os.O_DIRECTORY)
        try:
            leftover.bind(f"/proc/self/fd/{directory}/{SOCKET_NAME}")
        finally:
            os.close(directory)
            leftover.close()
        async with ControlClient(state) as client:
            with pytest.raises(NoDaemonError) as info:
                await client.get("/requests")
        assert "it is left from a run that ended" in info.value.message
        async with control(made), ControlClient(state) as client:  # and replaced
            assert len((await client.get("/requests"))["requests"]) == 1


async def test_a_peer_of_another_uid_is_refused(running: Daemon) -> None:
    other = os.getuid() + 1
    path = running.state / SOCKET_NAME
    async with control(running, allowed_uid=other), raw_session(path) as raw:
        for method, route in (
            ("GET", "/requests"),
            ("GET", "/har"),
            ("POST", "/requests/1/replay"),
        ):
            status, body = await status_and_json(raw, method, route)
            assert status == 403, route
            assert body == {
                "error": f"refused: the control socket serves uid {other} only",
                "hint": None,
            }
        async with ControlClient(running.state) as client:
            with pytest.raises(DevloopError) as info:
                await client.get("/requests")
        assert info.value.message == f"refused: the control socket serves uid {other} only"
    assert running.capture.last_id == 0  # nothing was replayed


# --- no daemon ------------------------------------------------------------------------------


async def test_no_socket_means_no_up_is_running(tmp_path: Path) -> None:
    state = state_dir_in(tmp_path)
    async with ControlClient(state) as client:
        with pytest.raises(NoDaemonError) as info:
            await client.get("/requests")
    assert info.value.message == (
        f"no `connect-dev up` is running in {tmp_path} (no control socket at {state / SOCKET_NAME})"
    )
    assert info.value.hint is not None
    assert "Start `connect-dev up` in this project" in info.value.hint


def write_project(project: Path) -> Path:
    (project / "connect-dev.toml").write_text(
        'descriptor = "atlassian-connect.json"\n'
        '[addon]\nurl = "http://127.0.0.1:9"\n'
        '[tunnel]\nprovider = "none"\n',
        encoding="utf-8",
    )
    return project


def connect_dev(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connect_devloop", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=30,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_the_requests_command_without_a_running_up(tmp_path: Path) -> None:
    project = write_project(tmp_path)
    done = connect_dev("requests", "--config", str(project))
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    path = project / ".connect-dev" / SOCKET_NAME
    assert done.stderr.splitlines()[0] == (
        f"connect-dev: error: no `connect-dev up` is running in {project} "
        f"(no control socket at {path})"
    )
    assert "hint: Start `connect-dev up` in this project" in done.stderr

    state_dir_in(project)
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(str(path))
    leftover.close()
    done = connect_dev("replay", "3", "--config", str(project))
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines()[0] == (
        f"connect-dev: error: no `connect-dev up` answers on {path}: "
        "it is left from a run that ended"
    )
