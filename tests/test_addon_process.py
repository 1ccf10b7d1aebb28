"""The add-on server as a process of `up` (``[addon] command``), and the probe without one.

The end-to-end tests run real `connect-dev up --no-tui --log-format json` subprocesses against
the emulated host, with a real add-on server as `up`'s child: a small Python ``http.server``
script and a small Node ``http`` one (tests/node_addon/app.js). Each add-on starts a child of
its own (``sleep``), so the tests also see that a process the add-on started dies with it.
Whether a process is gone is checked by its pid (``/proc``, ``os.kill(pid, 0)``).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from rich.console import Console

from connect_devloop.addon_process import (
    LINES_PER_WINDOW,
    AddonProbe,
    AddonProcess,
    GlobSet,
    addon_port,
    clean_line,
)
from connect_devloop.config import AddonConfig, load_config, parse_config
from connect_devloop.errors import ConfigError
from connect_devloop.events import (
    AddonExited,
    AddonOutput,
    AddonRestarting,
    AddonStarted,
    AddonStatus,
    EventBus,
    Ready,
)
from connect_devloop.host import run_host
from connect_devloop.render import format_event
from connect_devloop.state import State, reduce
from connect_devloop.supervisor import Supervisor
from connect_devloop.tui.addon_output import addon_title

from .conftest import EventLog, eventually
from .e2e import Process, connect_dev_up, host_toml, run_cli
from .keyrings import subprocess_keyring_env
from .servers import serve, text_app
from .tunnels import free_port

NODE_ADDON = Path(__file__).parent / "node_addon" / "app.js"
SECRET = "s3cret-value-never-logged"

# The Python add-on: http.server, a child process, a crash on demand, SIGTERM handled.
PYTHON_ADDON = """\
import http.server, json, os, signal, subprocess, sys

PORT = int(os.environ["PORT"])
child = subprocess.Popen(["sleep", "300"])


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/crash":
            print("crashing on purpose", file=sys.stderr, flush=True)
            os._exit(3)
        body = json.dumps({
            "runtime": "python",
            "base_url": os.environ["CONNECT_DEV_BASE_URL"],
            "ac_local_base_url": os.environ["AC_LOCAL_BASE_URL"],
            "port": PORT,
            "secret": os.environ.get("ADDON_SECRET"),
            "pid": os.getpid(),
            "child": child.pid,
        }).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        print(f"lifecycle {self.path} from {payload['clientKey']}", flush=True)
        self.send_response(204)
        self.end_headers()

    def log_message(self, format, *args):
        print("http " + format % args, file=sys.stderr, flush=True)


def stop(*_):
    print("SIGTERM: bye", flush=True)
    child.terminate()
    sys.exit(0)


signal.signal(signal.SIGTERM, stop)
print(f"python add-on listening on {PORT}")
http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
"""


def write_project(project: Path, host_url: str, addon: str, *, port: int) -> Path:
    config = project / "connect-dev.toml"
    config.write_text(
        'descriptor = "atlassian-connect.json"\n'
        f'[addon]\nurl = "http://127.0.0.1:{port}"\n{addon}\n'
        "[proxy]\nport = 0\n"
        '[tunnel]\nprovider = "none"\n' + host_toml("jira", host_url),
        encoding="utf-8",
    )
    return config


def gone(pid: int) -> bool:
    """True when no process runs as ``pid`` (a zombie waiting to be reaped runs nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


async def addon_info(port: int) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/env") as response,
    ):
        data: dict[str, Any] = await response.json(content_type=None)
        return data


async def wait_count(
    up: Process, name: str, count: int, timeout: float = 30.0, **fields: Any
) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            found = [e for e in up.events(name) if all(e.get(k) == v for k, v in fields.items())]
            if len(found) >= count:
                return found[count - 1]
            assert up.process.returncode is None, up.lines[-20:]
            up.changed.clear()
            await up.changed.wait()


def names(up: Process) -> list[str]:
    return [json.loads(line)["event"] for line in up.lines if line.startswith("{")]


async def save_until_restart(up: Process, path: Path, text: str, restarts: int) -> dict[str, Any]:
    """Write ``path`` until `up` restarts the add-on (its file watch may still be starting)."""
    async with asyncio.timeout(20):
        while True:
            path.write_text(text, encoding="utf-8")
            with contextlib.suppress(TimeoutError):
                return await wait_count(up, "addon_restarting", restarts, timeout=2)


@contextlib.asynccontextmanager
async def supervised(project: Path, tmp_path: Path, addon: str, port: int) -> AsyncIterator[Any]:
    async with run_host() as jira:
        config = write_project(project, jira.base_url, addon, port=port)
        env = subprocess_keyring_env(tmp_path / "keyring.json")
        async with connect_dev_up(config, env) as up:
            yield up, jira


# --- end to end: `connect-dev up` runs the add-on ---------------------------------------------


@pytest.mark.timeout(120)
async def test_up_runs_a_python_addon_restarts_it_and_stops_it_after_the_uninstalls(
    project: Path, tmp_path: Path
) -> None:
    (project / "app.py").write_text(PYTHON_ADDON, encoding="utf-8")
    (project / "templates").mkdir()
    port = free_port()
    addon = (
        f'command = "{sys.executable} app.py"\n'
        'restart_on = ["*.py", "templates/**"]\n'
        'ready_path = "/healthz"\n'
        "stop_timeout = 3\n"
        f'env = {{ ADDON_SECRET = "{SECRET}" }}\n'
    )
    async with supervised(project, tmp_path, addon, port) as (up, jira):
        ready = await up.wait_event("ready")
        public_url = ready["public_url"]
        assert ready["addon_answering"] is True
        assert ready["installed"] == 1
        # Started first, answering before the install: the host's callback reached it.
        order = [n for n in names(up) if n not in ("request", "addon_output", "warning")]
        assert order[:6] == [
            "descriptor_loaded",
            "tunnel_opened",
            "addon_started",
            "addon_status",
            "registering",
            "lifecycle",
        ]
        started = up.events("addon_started")[0]
        assert started["reason"] == "startup"
        assert started["command"] == f"{sys.executable} app.py"
        assert (started["base_url"], started["port"]) == (public_url, port)
        assert started["env"][:3] == ["CONNECT_DEV_BASE_URL", "AC_LOCAL_BASE_URL", "PORT"]
        assert "ADDON_SECRET" in started["env"]
        status = up.events("addon_status")[0]
        assert status["answering"] is True
        assert status["url"] == f"http://127.0.0.1:{port}/healthz"
        assert [c.status for c in jira.record.callbacks] == [204]
        info = await addon_info(port)
        assert (info["base_url"], info["ac_local_base_url"], info["port"]) == (
            public_url,
            public_url,
            port,
        )
        assert info["secret"] == SECRET
        pids = [(info["pid"], info["child"])]
        assert started["pid"] == info["pid"]
        out = await wait_count(up, "addon_output", 1, stream="stdout")
        assert out["line"] == f"python add-on listening on {port}"
        await wait_count(up, "addon_output", 1, stream="stderr")

        # A save of a restart_on file (not of another file): SIGTERM, then a new process.
        (project / "notes.txt").write_text("not watched", encoding="utf-8")
        restarting = await save_until_restart(
            up, project / "templates" / "page.html", "<p>hi</p>", 1
        )
        assert restarting["reason"] == "files_changed"
        assert restarting["paths"] == ["templates/page.html"]
        stopped = await wait_count(up, "addon_exited", 1)
        assert (stopped["reason"], stopped["code"], stopped["forced"]) == ("restart", 0, False)
        assert "SIGTERM: bye" in stopped["last_lines"]
        await wait_count(up, "addon_started", 1, reason="files_changed")
        await wait_count(up, "addon_status", 2, answering=True)
        assert all(gone(pid) for pid in pids[-1]), pids
        info = await addon_info(port)
        pids.append((info["pid"], info["child"]))

        # kill -9: a crash; its child goes too, and it is started again.
        os.kill(info["pid"], signal.SIGKILL)
        crashed = await wait_count(up, "addon_exited", 1, reason="crashed")
        assert (crashed["code"], crashed["signal"]) == (None, "SIGKILL")
        assert crashed["restart_in"] == 0.5
        assert crashed["last_lines"], crashed
        await wait_count(up, "addon_started", 1, reason="crashed")
        await wait_count(up, "addon_status", 3, answering=True)
        await eventually(lambda: all(gone(pid) for pid in pids[-1]))
        info = await addon_info(port)
        pids.append((info["pid"], info["child"]))

        # A crash with an exit code: the code and the last lines are in the event.
        async with aiohttp.ClientSession() as session:
            with contextlib.suppress(aiohttp.ClientError):
                await session.get(f"http://127.0.0.1:{port}/crash")
        crashed = await wait_count(up, "addon_exited", 2, reason="crashed")
        assert (crashed["code"], crashed["signal"]) == (3, None)
        assert crashed["last_lines"][-1] == "crashing on purpose"
        assert crashed["restart_in"] == 1  # the pause doubles
        await wait_count(up, "addon_started", 2, reason="crashed")
        await wait_count(up, "addon_status", 4, answering=True)
        await eventually(lambda: all(gone(pid) for pid in pids[-1]))
        info = await addon_info(port)
        pids.append((info["pid"], info["child"]))
        stderr = await up.stop(signal.SIGINT)

    assert up.process.returncode == 0, stderr
    # The uninstall's callback was answered by the add-on, which was stopped only after it.
    assert [c.event for c in jira.record.callbacks][-1] == "uninstalled"
    assert jira.record.callbacks[-1].status == 204
    tail = [n for n in names(up) if n not in ("request", "addon_output")]
    assert tail[-5:] == ["lifecycle", "deregistered", "addon_exited", "tunnel_closed", "stopped"]
    last = up.events("addon_exited")[-1]
    assert (last["reason"], last["pid"], last["forced"]) == ("shutdown", info["pid"], False)
    for pid in (pid for pair in pids for pid in pair):
        assert gone(pid), f"pid {pid} outlived `up`"
    assert not (project / ".connect-dev" / "addon.json").exists()
    assert SECRET not in "\n".join(up.lines) + stderr


@pytest.mark.timeout(90)
@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
async def test_up_supervises_a_node_addon_end_to_end(project: Path, tmp_path: Path) -> None:
    app = project / "app.js"
    shutil.copy(NODE_ADDON, app)
    port = free_port()
    addon = 'command = ["node", "app.js"]\nrestart_on = ["*.js"]\n'
    async with supervised(project, tmp_path, addon, port) as (up, jira):
        ready = await up.wait_event("ready")
        assert (ready["installed"], ready["addon_answering"]) == (1, True)
        lifecycle = await up.wait_event("lifecycle", lifecycle_event="installed")
        assert (lifecycle["verified"], lifecycle["addon_status"]) == (True, 204)
        info = await addon_info(port)
        assert info["runtime"].startswith("node v")
        assert (info["base_url"], info["port"]) == (ready["public_url"], port)
        await wait_count(up, "addon_output", 1, line=f"lifecycle /installed from {jira.client_key}")
        first = [info["pid"], info["child"]]

        await save_until_restart(up, app, NODE_ADDON.read_text(encoding="utf-8") + "\n", 1)
        stopped = await wait_count(up, "addon_exited", 1)
        assert (stopped["reason"], stopped["code"]) == ("restart", 0)
        assert "node add-on: SIGTERM, closing" in stopped["last_lines"]
        await wait_count(up, "addon_status", 2, answering=True)
        await eventually(lambda: all(gone(pid) for pid in first))
        info = await addon_info(port)
        stderr = await up.stop(signal.SIGINT)

    assert up.process.returncode == 0, stderr
    assert (jira.record.callbacks[-1].event, jira.record.callbacks[-1].status) == (
        "uninstalled",
        204,
    )
    tail = [n for n in names(up) if n not in ("request", "addon_output")]
    assert tail[-4:] == ["deregistered", "addon_exited", "tunnel_closed", "stopped"]
    assert gone(info["pid"])
    assert gone(info["child"])


@pytest.mark.timeout(60)
async def test_an_addon_left_by_a_killed_up_is_stopped_by_down(
    project: Path, tmp_path: Path
) -> None:
    (project / "app.py").write_text(PYTHON_ADDON, encoding="utf-8")
    port = free_port()
    addon = f'command = ["{sys.executable}", "app.py"]\n'
    async with supervised(project, tmp_path, addon, port) as (up, _):
        await up.wait_event("ready")
        info = await addon_info(port)
        up.process.kill()  # kill -9: no teardown at all
        await up.process.wait()
        assert not gone(info["pid"])  # its own session: it outlived `up`
        assert (project / ".connect-dev" / "addon.json").exists()
        result = await asyncio.to_thread(run_cli, "down", "--config", str(project))
        assert result.returncode == 0, result.stderr
        await eventually(lambda: gone(info["pid"]) and gone(info["child"]))
    assert not (project / ".connect-dev" / "addon.json").exists()


@pytest.mark.timeout(60)
async def test_a_command_that_is_not_there_stops_up_with_the_key(project: Path) -> None:
    config = write_project(
        project, "http://127.0.0.1:9/jira", 'command = "no-such-addon-server --port 1"', port=9
    )
    result = await asyncio.to_thread(run_cli, "up", "--no-tui", "--config", str(config))
    assert result.returncode == 2, result.stderr
    assert (
        f"connect-dev: error: {config}:4: addon.command: cannot start the add-on: "
        "'no-such-addon-server' was not found"
    ) in result.stderr


# --- the process, in this event loop ----------------------------------------------------------


class ReopeningTunnel:
    """A tunnel whose process "dies" on demand and that reopens at another URL (127.0.0.1, then
    localhost: both reach the proxy)."""

    provider = "fake"

    def __init__(self) -> None:
        self.opened: list[str] = []
        self.dead = False

    async def open(self, local_url: str) -> str:
        self.dead = False
        host = "127.0.0.1" if not self.opened else "localhost"
        url = local_url.replace("127.0.0.1", host)
        self.opened.append(url)
        return url

    async def close(self) -> None:
        return None

    def exited(self) -> str | None:
        return "it died" if self.dead else None


@pytest.mark.timeout(60)
async def test_a_tunnel_reopened_at_another_url_restarts_the_addon_then_installs(
    project: Path, events: EventLog
) -> None:
    (project / "app.py").write_text(PYTHON_ADDON, encoding="utf-8")
    port = free_port()
    async with run_host() as jira:
        config = write_project(
            project, jira.base_url, f'command = ["{sys.executable}", "app.py"]', port=port
        )
        text = config.read_text(encoding="utf-8").replace(
            "[tunnel]\n", "[tunnel]\nhealth_interval = 0\n"
        )
        config.write_text(text, encoding="utf-8")
        bus = EventBus()
        bus.subscribe(events)
        tunnel = ReopeningTunnel()
        supervisor = Supervisor(load_config(config), bus, settle=0.05, tunnel=tunnel)
        stop = asyncio.Event()
        run = asyncio.create_task(supervisor.run(stop))
        try:
            await events.wait_event("ready", timeout=20)
            tunnel.dead = True
            restarting = await events.wait_event("addon_restarting", timeout=20)
            await events.wait_event("registered", count=2, timeout=20)
            info = await addon_info(port)
        finally:
            stop.set()
            code = await asyncio.wait_for(run, 30)
    assert code == 0
    new_url = tunnel.opened[1]
    assert restarting.reason == "tunnel_changed"  # type: ignore[attr-defined]
    assert restarting.detail == f"the public URL is now {new_url}"  # type: ignore[attr-defined]
    assert (info["base_url"], info["ac_local_base_url"]) == (new_url, new_url)
    order = [
        (e.name, getattr(e, "reason", ""))
        for e in events.events
        if e.name in ("addon_started", "addon_status", "registering", "tunnel_opened")
    ]
    # The hosts are installed again only once the restarted add-on answers.
    assert order[-4:] == [
        ("tunnel_opened", ""),
        ("addon_started", "tunnel_changed"),
        ("addon_status", ""),
        ("registering", "tunnel_changed"),
    ]
    assert [c.event for c in jira.record.callbacks] == ["installed", "installed", "uninstalled"]
    assert all(c.status == 204 for c in jira.record.callbacks)


def addon_config(project: Path, addon: str, *, port: int = 0) -> Any:
    path = project / "connect-dev.toml"
    path.write_text(
        f'[addon]\nurl = "http://127.0.0.1:{port or free_port()}"\n{addon}\n', encoding="utf-8"
    )
    return load_config(path)


@pytest.mark.timeout(30)
async def test_an_addon_that_never_answers_is_reported_and_a_stubborn_one_killed(
    project: Path, events: EventLog
) -> None:
    # Ignores SIGTERM and listens nowhere.
    script = "trap '' TERM; echo up; while true; do sleep 0.05; done"
    config = addon_config(
        project,
        f'command = ["sh", "-c", "{script}"]\nready_timeout = 0.5\nstop_timeout = 0.5',
    )
    addon = AddonProcess(config, events)
    await addon.start("http://127.0.0.1:1")
    assert await addon.wait_answering(0.2) is False
    status = await events.wait_event("addon_status")
    assert isinstance(status, AddonStatus)
    assert status.answering is False
    assert status.detail == "no answer within 0.5 s of its start (connection refused)"
    pid = addon.pid
    assert pid is not None
    started = time.monotonic()
    await addon.stop()
    assert 0.4 < time.monotonic() - started < 3
    exited = events.of("addon_exited")[-1]
    assert isinstance(exited, AddonExited)
    assert (exited.reason, exited.forced, exited.signal) == ("shutdown", True, "SIGKILL")
    assert exited.last_lines == ["up"]
    assert gone(pid)


@pytest.mark.timeout(30)
async def test_a_flood_of_output_is_rate_limited_and_the_drop_is_said(
    project: Path, events: EventLog
) -> None:
    script = "import sys\nfor n in range(5000): print(n)\nprint('last', file=sys.stderr)"
    (project / "flood.py").write_text(script, encoding="utf-8")
    config = addon_config(project, f'command = ["{sys.executable}", "flood.py"]')
    addon = AddonProcess(config, events)
    await addon.start("http://127.0.0.1:1")
    exited = await events.wait_event("addon_exited")
    await addon.stop()
    assert isinstance(exited, AddonExited)
    assert (exited.reason, exited.code) == ("crashed", 0)
    assert exited.last_lines[-1] == "last"
    assert len(exited.last_lines) == 20
    out = [e for e in events.of("addon_output", stream="stdout") if isinstance(e, AddonOutput)]
    shown = [e for e in out if not e.dropped]
    dropped = sum(e.dropped for e in out)
    assert shown[:3] == [
        AddonOutput(stream="stdout", line=str(n), ts=shown[n].ts) for n in range(3)
    ]
    assert len(shown) + dropped == 5000
    assert dropped > 0
    assert len(shown) < 5000 / 2
    marker = next(e for e in out if e.dropped)
    assert marker.line == f"… {marker.dropped} lines dropped"
    assert len(shown) >= LINES_PER_WINDOW


@pytest.mark.timeout(30)
async def test_without_a_command_the_url_is_probed_and_changes_are_reported(
    events: EventLog, tmp_path: Path
) -> None:
    port = free_port()
    config = addon_config(tmp_path, 'ready_path = "/health"', port=port)
    probe = AddonProbe(config, events, interval=0.1, timeout=1)
    try:
        assert await probe.check() is False
        task = asyncio.create_task(probe.run())
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            await events.wait_event("addon_status", count=2, timeout=15)
        finally:
            process.terminate()
            await process.wait()
        await events.wait_event("addon_status", count=3, timeout=15)
        task.cancel()
    finally:
        await probe.close()
    statuses = [(e.answering, e.detail) for e in events.of("addon_status")]  # type: ignore[attr-defined]
    assert statuses == [(False, "connection refused"), (True, ""), (False, "connection refused")]
    assert events.of("addon_status")[0].url == f"http://127.0.0.1:{port}/health"  # type: ignore[attr-defined]


async def test_a_probe_that_answers_at_start_says_nothing(events: EventLog, tmp_path: Path) -> None:
    async with serve(text_app()) as url:
        path = tmp_path / "connect-dev.toml"
        path.write_text(f'[addon]\nurl = "{url}"\n', encoding="utf-8")
        probe = AddonProbe(load_config(path), events)
        try:
            assert await probe.check() is True
        finally:
            await probe.close()
    assert events.events == []


# --- the pieces ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("src/**/*.py", "src/app.py", True),
        ("src/**/*.py", "src/a/b/app.py", True),
        ("src/**/*.py", "app.py", False),
        ("src/**/*.py", "src/app.pyc", False),
        ("templates/**", "templates/page.html", True),
        ("templates/**", "templates/a/page.html", True),
        ("templates/**", "templates/.page.html.swp", False),  # an editor's swap file
        ("*.py", "app.py", True),
        ("*.py", "src/app.py", False),
        ("app.js", "app.js", True),
        ("**/*.js", "a/node_modules/x.js", False),
        ("**/*.js", ".connect-dev/x.js", False),
        ("**/*.js", "lib/x.js", True),
        ("lib/?.[jt]s", "lib/a.ts", True),
        ("lib/[!a].js", "lib/a.js", False),
    ],
)
def test_restart_on_globs(tmp_path: Path, pattern: str, path: str, matches: bool) -> None:
    assert GlobSet(tmp_path, [pattern]).matches(path) is matches


def test_restart_on_watches_only_the_directories_it_needs(tmp_path: Path) -> None:
    (tmp_path / "src" / "deep").mkdir(parents=True)
    (tmp_path / "templates").mkdir()
    globs = GlobSet(tmp_path, ["src/**/*.py", "src/deep/*.py", "*.toml", "missing/*.py", "app.js"])
    # missing/ does not exist: the project is watched (recursively) for it to appear, and that
    # covers every other directory.
    assert globs.roots() == ([tmp_path], [])
    globs = GlobSet(tmp_path, ["src/**/*.py", "src/deep/*.py", "*.toml", "app.js"])
    assert globs.roots() == ([tmp_path / "src"], [tmp_path])
    assert GlobSet(tmp_path, ["src/*/x.py"]).roots() == ([tmp_path / "src"], [])


def test_output_lines_are_cleaned() -> None:
    assert clean_line("\x1b[32mGET /\x1b[0m 200\r") == "GET / 200"
    assert clean_line("title\x1b]0;hacked\x07 bell\x07") == "title bell"
    long = clean_line("x" * 5000)
    assert long.endswith("… (1000 more characters)")


def test_addon_port() -> None:
    assert addon_port("http://localhost:3000/app") == 3000
    assert addon_port("http://localhost") == 80
    assert addon_port("https://localhost") == 443


def test_the_events_in_text() -> None:
    assert format_event(
        AddonStarted(pid=42, command="python app.py", base_url="https://x.example", port=3000)
    ) == (
        "addon       started python app.py (pid 42) with PORT=3000, "
        "CONNECT_DEV_BASE_URL=https://x.example"
    )
    assert format_event(AddonOutput(stream="stderr", line="Traceback")) == "addon err   Traceback"
    assert format_event(
        AddonExited(pid=42, code=1, reason="crashed", last_lines=["a", "boom"], restart_in=0.5,
                    ran_seconds=2.04)
    ) == (
        "addon       CRASHED: exit code 1 after 2.0 s (pid 42); starting it again in 0.5 s\n"
        "             last output: boom"
    )  # fmt: skip
    assert format_event(AddonExited(pid=42, code=None, signal="SIGKILL", reason="shutdown",
                                    forced=True)) == (
        "addon       stopped (pid 42) (killed: it was still running after SIGTERM and the "
        "[addon] stop_timeout)"
    )  # fmt: skip
    assert format_event(
        AddonStatus(answering=False, url="http://localhost:3000/", detail="connection refused",
                    hint="Start it.")
    ) == (
        "addon       NOT answering at http://localhost:3000/: connection refused\n"
        "             hint: Start it."
    )  # fmt: skip
    assert (
        format_event(
            AddonRestarting(reason="files_changed", detail="app.py changed", paths=["app.py"])
        )
        == "addon       restarting: app.py changed"
    )


def test_the_state_and_the_panel_title() -> None:
    state = State.initial([])
    assert addon_title(state.addon) == "Add-on"
    state = reduce(state, AddonStarted(pid=7, command="node app.js"))
    assert addon_title(state.addon) == "Add-on · pid 7 · ⠿ starting"
    state = reduce(state, AddonStatus(answering=True, url="u", seconds=0.3))
    assert addon_title(state.addon) == "Add-on · pid 7 · ● answering"
    state = reduce(state, AddonExited(pid=7, code=1, restart_in=0.5))
    assert addon_title(state.addon) == "Add-on · ✖ exited (exit code 1)"
    state = reduce(state, AddonStarted(pid=8, command="node app.js", reason="crashed"))
    assert addon_title(state.addon) == "Add-on · pid 8 · ⠿ starting · restarted 1 time"
    # Without a command, `ready` carries the probe's answer.
    state = reduce(State.initial([]), Ready(addon_answering=False))
    assert state.addon.answering is False


def test_addon_keys_in_the_config(tmp_path: Path) -> None:
    path = tmp_path / "connect-dev.toml"
    config = parse_config(
        '[addon]\ncommand = "npm run dev -- --port 3000"\ncwd = "server"\n'
        'restart_on = ["src/**"]\nready_path = "/healthz"\nready_timeout = 10\n'
        'stop_timeout = 2\n[addon.env]\nAPI_TOKEN = "secret-token-123"\n',
        path,
    )
    assert config.addon.command == ("npm", "run", "dev", "--", "--port", "3000")
    assert config.addon.cwd == tmp_path / "server"
    assert config.addon.restart_on == ("src/**",)
    assert (config.addon.ready_path, config.addon.ready_timeout, config.addon.stop_timeout) == (
        "/healthz",
        10.0,
        2.0,
    )
    assert [name for name, _ in config.addon.env] == ["API_TOKEN"]
    assert "secret-token-123" not in repr(config)
    assert parse_config("", path).addon == AddonConfig()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[addon]\nrestart_on = ["*.py"]\n', "2: addon.restart_on: is used only with command"),
        ('[addon]\ncommand = "a \'b"\n', '2: addon.command: "a \'b" cannot be split'),
        ("[addon]\ncommand = []\n", "2: addon.command: must name the program"),
        ('[addon]\ncommand = "a"\nenv = { X = 1 }\n', "3: addon.env.X: must be a string"),
        ('[addon]\ncommand = "a"\n[addon.env]\nA = "1"\nB = 2\n', "5: addon.env.B: must be a"),
        (
            '[addon]\ncommand = "a"\nenv = { TOKEN = "abc\\u0000" }\n',
            "3: addon.env.TOKEN: holds a NUL character",
        ),
        ('[addon]\ncommand = "a"\nready_path = "health"\n', "3: addon.ready_path: 'health'"),
        ('[addon]\ncommand = "a"\nrestart_on = ["/etc/*"]\n', "3: addon.restart_on: '/etc/*'"),
        ('[addon]\ncommand = "a"\nstop_timeout = 0\n', "3: addon.stop_timeout: must be more"),
    ],
)
def test_addon_config_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, tmp_path / "connect-dev.toml")
    assert f"connect-dev.toml:{message}" in str(info.value)
    assert "abc" not in str(info.value)


async def test_the_dashboard_panel_shows_the_output_with_stream_and_time(tmp_path: Path) -> None:
    from connect_devloop.tui import DashboardApp
    from connect_devloop.tui.addon_output import AddonOutputPanel
    from connect_devloop.tui.event_log import EventLog
    from connect_devloop.tui.header import DescriptorHeader

    def text(widget: Any) -> str:
        return "\n".join("".join(s.text for s in line).rstrip() for line in widget.lines)

    def rendered(widget_type: Any) -> str:
        console = Console(width=100, file=io.StringIO(), record=True, color_system=None)
        console.print(app.query_one(widget_type).content)
        return console.export_text()

    path = tmp_path / "connect-dev.toml"
    path.write_text('[addon]\ncommand = "node app.js"\n', encoding="utf-8")
    app = DashboardApp(load_config(path), daemon=None)
    async with app.run_test(size=(100, 40)) as pilot:
        panel = app.query_one(AddonOutputPanel)
        assert panel.display is False  # nothing to show yet
        ts = time.mktime((2026, 1, 2, 3, 4, 5, 0, 0, -1))
        app.feed(
            AddonStarted(pid=7, command="node app.js", ts=ts),
            AddonOutput(stream="stdout", line="listening on 3000", ts=ts),
            AddonOutput(stream="stderr", line="DeprecationWarning: x", ts=ts),
            AddonStatus(answering=True, url="http://localhost:3000/", seconds=0.2, ts=ts),
            Ready(addon_answering=True, ts=ts),
        )
        await eventually(lambda: panel.display and bool(panel.lines))
        await pilot.pause()
        assert panel.border_title == "Add-on · pid 7 · ● answering"
        assert text(panel).splitlines() == [
            "03:04:05 ──── started node app.js (pid 7)",
            "03:04:05 out listening on 3000",
            "03:04:05 err DeprecationWarning: x",
            "03:04:05 ──── answers at http://localhost:3000/ after 0.2 s",
        ]
        assert "listening on 3000" not in text(app.query_one(EventLog))
        app.feed(AddonStatus(answering=False, url="http://localhost:3000/", detail="refused"))
        await eventually(lambda: "add-on not answering" in rendered(DescriptorHeader))
